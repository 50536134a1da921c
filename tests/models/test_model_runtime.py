"""Runtime: ONNX Runtime agrees with PyTorch, the export is cached by weights, and "auto" falls back."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from mmindex.errors import ModelError
from mmindex.models import Runtime, create_model


@pytest.fixture(scope="module")
def lite0():
    return create_model("efficientnet_lite0")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("mmindex-cache")


@pytest.fixture(scope="module")
def onnx_runtime(lite0, cache):
    return Runtime(lite0, backend="onnx", threads=2, cache_dir=cache)


@pytest.fixture(scope="module")
def batch(photo_batch, lite0):
    """The two photos plus two noise images: (4, 3, 224, 224) float32."""
    noise = np.random.default_rng(0).normal(size=(2, 3, 224, 224)).astype(np.float32)
    return np.concatenate([photo_batch(lite0.data_config), noise])


def test_onnx_agrees_with_torch(onnx_runtime, lite0, batch):
    assert onnx_runtime.backend == "onnx"
    probs, emb = onnx_runtime.run(batch)
    tprobs, temb = Runtime(lite0, backend="torch").run(batch)
    assert probs.dtype == emb.dtype == np.float32
    assert probs.shape == (4, 1000) and emb.shape == (4, 1280)
    assert np.abs(probs - tprobs).max() < 1e-4
    assert (np.sum(emb * temb, axis=1) / np.linalg.norm(temb, axis=1) > 0.9999).all()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert probs[1].argmax() == 967  # espresso


def test_onnx_has_a_dynamic_batch_axis(onnx_runtime, batch):
    p1, e1 = onnx_runtime.run(batch[:1])
    p4, e4 = onnx_runtime.run(batch)
    assert p1.shape == (1, 1000) and e1.shape == (1, 1280)
    np.testing.assert_allclose(p1[0], p4[0], atol=1e-5)


def test_torch_engine_matches_the_module(lite0, batch):
    rt = Runtime(lite0, backend="torch")
    assert rt.backend == "torch" and rt.onnx_path is None
    probs, emb = rt.run(batch)
    with torch.inference_mode():
        tp, te = lite0(torch.from_numpy(batch))
    np.testing.assert_allclose(probs, tp.numpy(), atol=1e-5)
    np.testing.assert_allclose(emb, te.numpy(), atol=1e-5)


def test_export_is_cached_and_not_redone(onnx_runtime, lite0, cache, monkeypatch):
    path = onnx_runtime.onnx_path
    assert path == cache / "onnx" / f"efficientnet_lite0-{lite0.weights_id}.onnx"
    assert path.is_file() and not list(path.parent.glob("*.tmp"))
    mtime = path.stat().st_mtime_ns

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    again = Runtime(lite0, backend="onnx", cache_dir=cache)
    assert again.backend == "onnx" and again.onnx_path == path
    assert path.stat().st_mtime_ns == mtime


def test_cache_key_changes_with_the_weights(onnx_runtime, lite0, cache, tmp_path, batch):
    sd = {k: v.clone() for k, v in lite0.net.state_dict().items()}
    sd["classifier.bias"][1] += 5.0  # boost class 1 (goldfish): different weights, different id
    path = tmp_path / "lite0-tuned.pth"
    torch.save(sd, path)
    tuned = create_model("efficientnet_lite0", weights=str(path))
    assert tuned.weights_id != lite0.weights_id
    rt = Runtime(tuned, backend="onnx", cache_dir=cache)
    assert rt.onnx_path != onnx_runtime.onnx_path and rt.onnx_path.is_file() and onnx_runtime.onnx_path.is_file()
    # The cached export of the original weights was not reused: class 1 gains about e^5 in odds.
    assert (rt.run(batch)[0][:, 1] > 20 * onnx_runtime.run(batch)[0][:, 1]).all()


def test_random_weights_are_not_cached(tmp_path, batch):
    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", weights=None)
    rt = Runtime(model, backend="onnx", cache_dir=tmp_path)
    assert rt.backend == "onnx" and not (tmp_path / "onnx").exists()
    probs, _ = rt.run(batch[:2])
    np.testing.assert_allclose(probs, Runtime(model, backend="torch").run(batch[:2])[0], atol=1e-4)


def test_auto_falls_back_to_torch_when_export_fails(lite0, tmp_path, monkeypatch, caplog, batch):
    def broken(*args, **kwargs):
        raise RuntimeError("exporter broke")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with caplog.at_level(logging.WARNING, logger="mmindex.models.runtime"):
        rt = Runtime(lite0, backend="auto", cache_dir=tmp_path)
    assert rt.backend == "torch"
    assert any("falling back to PyTorch" in r.message and "exporter broke" in r.message for r in caplog.records)
    assert not list((tmp_path / "onnx").glob("*"))  # no half-written file left behind
    assert rt.run(batch[:1])[0].shape == (1, 1000)
    with pytest.raises(ModelError, match="exporter broke"):
        Runtime(lite0, backend="onnx", cache_dir=tmp_path)


def test_auto_uses_onnx_when_it_works(onnx_runtime, lite0, cache):
    assert Runtime(lite0, cache_dir=cache).backend == "onnx"


def test_corrupt_cached_export_is_redone(onnx_runtime, lite0, tmp_path):
    target = tmp_path / "onnx" / onnx_runtime.onnx_path.name
    target.parent.mkdir()
    target.write_bytes(b"truncated")
    rt = Runtime(lite0, backend="onnx", cache_dir=tmp_path)
    assert rt.backend == "onnx" and target.stat().st_size > 1_000_000


def test_bad_engine_and_bad_batch_raise(onnx_runtime, lite0):
    with pytest.raises(ModelError, match="unknown runtime"):
        Runtime(lite0, backend="tensorrt")
    with pytest.raises(ModelError, match=r"\(B, 3, 224, 224\)"):
        onnx_runtime.run(np.zeros((1, 3, 240, 240), np.float32))
