"""Issue 20, item 1: a run from the cached ONNX export never imports PyTorch, timm or transformers.

The sidecar (models/exports.py) is written by the first run that builds the model; the shared test cache has
it once the session's photo index is built. The CLI test runs each command in one fresh process and checks
`sys.modules` after each: the rule is about imports, not timing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmindex.models import exports
from mmindex.models.loader import LazyModel
from tests.conftest import run_cli

MODEL = "efficientnet_lite0"

_CHECK = r"""
import json, sys
import uvicorn

served = []
uvicorn.run = lambda app, **options: served.append(app)  # `serve` builds its app; nothing listens
from mmindex.cli import main

report = []
for args in json.loads(sys.argv[1]):
    try:
        main(args, standalone_mode=False)
        failed = None
    except SystemExit as exc:
        failed = f"exit {exc.code}"
    if args[0] == "serve":  # one search through the app `serve` made
        from fastapi.testclient import TestClient
        response = TestClient(served[-1]).get("/api/search", params={"concept": "espresso"})
        failed = failed or (None if response.status_code == 200 else f"HTTP {response.status_code}")
    loaded = sorted(m for m in ("torch", "timm", "transformers") if m in sys.modules)
    report.append({"args": args, "failed": failed, "loaded": loaded})
print("REPORT " + json.dumps(report))
"""


@pytest.fixture(scope="module")
def warm_cache(photo_index) -> Path:
    """The shared cache, after the photo index was built (model exported) and one text query (bank cached)."""
    run_cli("search", "--index", str(photo_index), "--text", "a cup of coffee", "--json")
    return Path(os.environ["MMINDEX_CACHE"])


def test_the_first_run_leaves_a_sidecar_that_describes_the_export(warm_cache):
    from mmindex.models import model_info
    from mmindex.models.registry import get_entry
    from mmindex.models.weights import file_digest

    info = exports.find(MODEL)
    assert info is not None, sorted(p.name for p in (warm_cache / "onnx").iterdir())
    assert info.onnx.parent == warm_cache / "onnx" and info.onnx.is_file()
    assert info.weights_id == file_digest(get_entry(MODEL).default_weights.path())
    assert info.onnx.name == f"{MODEL}-{info.weights_id}.onnx"
    card = model_info(MODEL)
    assert (info.embed_dim, info.num_classes) == (card["embed_dim"], card["num_classes"])
    assert (info.data_config.input_size, info.data_config.mean) == (card["input_size"], card["mean"])
    assert exports.options_key() in exports.sidecar_path(MODEL).name  # the session options are in the key


def test_the_cached_runtime_runs_the_same_graph_the_same_way(warm_cache, photo_batch):
    from mmindex.models import Runtime, create_model

    cached = LazyModel(MODEL, threads=1).runtime
    assert isinstance(cached, exports.CachedRuntime)
    built = Runtime(create_model(MODEL), threads=1)
    assert built.backend == "onnx" and built.onnx_path == cached.onnx_path
    batch = photo_batch(cached.backbone.data_config)
    for a, b in zip(cached.run(batch), built.run(batch), strict=True):
        np.testing.assert_array_equal(a, b)
    mine, theirs = cached._session.get_session_options(), built._session.get_session_options()
    for attr in ("intra_op_num_threads", "inter_op_num_threads", "graph_optimization_level"):
        assert getattr(mine, attr) == getattr(theirs, attr)
    key = "session.intra_op.allow_spinning"
    assert mine.get_session_config_entry(key) == theirs.get_session_config_entry(key) == "0"


def test_the_torch_backend_never_uses_the_export(warm_cache):
    assert LazyModel(MODEL).export is not None
    assert LazyModel(MODEL, backend="torch").export is None


def test_a_changed_weights_file_or_a_garbled_sidecar_is_not_used(warm_cache, tmp_path, caplog):
    info = exports.find(MODEL)
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / info.onnx.name).symlink_to(info.onnx)
    weights = tmp_path / "weights.pth"
    shutil.copyfile(info.weights_file, weights)
    exports.record(info, tmp_path / "onnx" / info.onnx.name, str(weights), tmp_path)
    found = exports.find(MODEL, tmp_path)
    assert found is not None and found.weights_file == str(weights.resolve())
    os.utime(weights, ns=(found.weights_mtime_ns + 10**9, found.weights_mtime_ns + 10**9))
    assert exports.find(MODEL, tmp_path) is None  # reinstalled weights: build the model again
    sidecar = exports.sidecar_path(MODEL, tmp_path)
    sidecar.write_text("{not json")
    assert exports.find(MODEL, tmp_path) is None
    assert "ignoring the ONNX cache sidecar" in caplog.text
    # random weights and exports outside the cache folder leave no sidecar
    sidecar.unlink()
    exports.record(info, info.onnx, str(weights), tmp_path)
    assert not sidecar.exists()


def test_cli_commands_import_no_torch_from_a_warm_cache(warm_cache, photo_index, sample_photos, tmp_path):
    index = tmp_path / "one"
    one = sample_photos / "coffee.jpg"
    shutil.copytree(photo_index, tmp_path / "photos-index")
    commands = [
        ["add", str(one), "--index", str(index), "-q"],  # creates the index
        ["add", str(sample_photos / "chelsea.jpg"), "--index", str(index), "-q"],  # adds to it
        ["search", "--concept", "espresso", "--index", str(index)],
        ["search", "--concept", "cup", "--like", "1", "--index", str(index)],
        ["search", "--like", str(sample_photos / "rocket.jpg"), "--index", str(index)],  # a file not indexed
        ["search", "--text", "a cup of coffee", "--index", str(tmp_path / "photos-index")],
        ["info", "--index", str(index)],
        ["info", "--json", "--index", str(index)],
        ["classify", str(one)],
        ["serve", "--index", str(index)],
    ]
    proc = subprocess.run([sys.executable, "-c", _CHECK, json.dumps(commands)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.split("REPORT ", 1)[1])
    assert [r["failed"] for r in report] == [None] * len(commands), report
    assert [r for r in report if r["loaded"]] == [], "these commands imported PyTorch, timm or transformers"
