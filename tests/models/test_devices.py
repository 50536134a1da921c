"""`--device`: where the model runs. This machine has no GPU, so the tests check what a CPU-only machine must do:
"auto" runs on the CPU and indexes as "cpu" does, "cuda" is refused in one line saying why, and the decoding
processes a GPU run uses give what the threads give."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest

from mmindex.config import IngestConfig
from mmindex.errors import MediaError, ModelError
from mmindex.extract.reader import read_all
from mmindex.media.scan import scan
from mmindex.models import devices
from mmindex.models.loader import LazyModel
from tests.conftest import run_cli

pytestmark = pytest.mark.skipif(devices.CUDA_PROVIDER in ort.get_available_providers(),
                                reason="these check a machine without ONNX Runtime's GPU build")


def test_a_gpu_asked_for_on_a_machine_without_one_is_refused_saying_why(tmp_path, sample_photos):
    for command in (["add", str(sample_photos), "--index", str(tmp_path / "index")], ["classify", str(sample_photos)]):
        proc = run_cli(*command, "--device", "cuda", "-q", check=False)
        assert proc.returncode == 1, proc.stderr
        assert "--device cuda" in proc.stderr and "onnxruntime-gpu" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    bad = run_cli("add", str(sample_photos), "--index", str(tmp_path / "index"), "--device", "gpu", check=False)
    assert bad.returncode == 2 and "unknown device 'gpu'" in bad.stderr


def test_auto_runs_on_the_cpu_and_indexes_as_cpu_does(tmp_path, sample_photos, photo_index):
    """The photo index was built with the default device, auto: its embeddings are --device cpu's."""
    run_cli("add", str(sample_photos), "--index", str(tmp_path / "cpu"), "--device", "cpu", "-q")
    model = LazyModel("efficientnet_lite0", device="auto")
    assert model.runtime.device == "cpu"
    hits = {}
    for name, index in (("auto", photo_index), ("cpu", tmp_path / "cpu")):
        doc = json.loads(run_cli("search", "--index", str(index), "--concept", "espresso", "--json").stdout)
        hits[name] = [(h["path"].rsplit("/", 1)[1], round(h["score"], 5)) for h in doc["hits"]]
    assert hits["auto"] == hits["cpu"] and hits["cpu"]


def test_cuda_on_the_onnx_runtime_without_its_gpu_build_names_the_build():
    with pytest.raises(ModelError, match="no CUDA provider"):
        devices.onnx_session("unused.onnx", None, "cuda:1")
    with pytest.raises(ModelError, match="unknown device"):
        devices.check("cuda:x")
    assert not devices.may_be_gpu("auto") and devices.may_be_gpu("cuda:0") and not devices.may_be_gpu("cpu")


def test_decoding_processes_give_what_threads_give(tmp_path, sample_photos):
    """A GPU run decodes in processes: same frames, same errors, same order as the threads of a CPU run."""
    folder = tmp_path / "media"
    shutil.copytree(sample_photos, folder)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    items = list(scan([folder]))
    data_config = LazyModel("efficientnet_lite0").data_config
    config = IngestConfig(batch_size=2)
    threads = list(read_all(items, {}, data_config, config))
    processes = list(read_all(items, {}, data_config, config, processes=2))
    assert [i.path for i, _ in threads] == [i.path for i, _ in processes] == [i.path for i in items]
    for (_, a), (_, b) in zip(threads, processes, strict=True):
        if isinstance(a, MediaError):
            assert isinstance(b, MediaError) and str(a) == str(b)
            continue
        assert a.sha256 == b.sha256
        np.testing.assert_array_equal(a.segments[0].frames[0], b.segments[0].frames[0])
    assert sum(isinstance(r, MediaError) for _, r in processes) == 1
