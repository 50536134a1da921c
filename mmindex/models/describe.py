"""Count a registered network's units, weights and connections layer by layer, from the network itself.

The counts follow the lecture's AlexNet "conv5" example:
- units of a layer = the size of its output tensor (13 × 13 × 256 = 43,264 for conv5);
- weights = its kernel's size, without biases (384 × 256 × 3 × 3 = 884,736) and with them (884,992);
- connections = grid locations × weights of one unit set (excluding biases), a unit set being the units
  of one grid location, one per output map: 13 × 13 × 884,736 = 149,520,384 for conv5.
  A fully connected layer has one grid location, so its connections are its weights. Summed over the
  convolutional and fully connected layers, connections are the multiply-adds of one forward pass (the
  "FLOPs" that torchvision and most papers quote).

Nothing is computed for real: the network is built on PyTorch's "meta" device, where tensors have
shapes but no data, and forward hooks record every layer's output shape. Describing VGG-19 therefore
takes a fraction of a second and no memory.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from mmindex.errors import ModelError
from mmindex.models.registry import get_entry

#: Layers whose weights form a kernel: their connections are the multiply-adds of the forward pass.
KERNEL_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_INPUT = re.compile(r"\s*(\d+)\s*[x×,]\s*(\d+)\s*[x×,]\s*(\d+)\s*")


@dataclass(frozen=True)
class Layer:
    """One call of a layer during the forward pass (a layer run twice gives two rows)."""

    name: str  # the module's dotted name in the network, e.g. "features.10"
    kind: str  # its class, e.g. "Conv2d"
    output_shape: tuple[int, ...]  # without the batch dimension, e.g. (256, 13, 13)
    units: int  # size of the output tensor
    weights: int  # parameters other than biases
    weights_with_biases: int
    connections: int  # grid locations × weights of one unit set (0 for layers without weights)
    kernel: bool  # a convolution or fully connected layer
    label: str = ""  # kernel layers numbered in call order as the papers do: conv1 ... conv5, fc6 ... fc8


@dataclass
class Description:
    """A network's per-layer table and its totals, at one input shape."""

    model: str
    input_shape: tuple[int, int, int]  # (C, H, W)
    layers: list[Layer] = field(default_factory=list)
    params: int = 0  # every parameter of the network (trainable or not), biases included
    macs: int = 0  # multiply-adds of one forward pass = connections of the kernel layers
    weighted_layers: int = 0  # convolution and fully connected layer calls

    def layer(self, name: str) -> Layer:
        """The first row of the layer called `name`; `ModelError` listing the kernel layers if there is none."""
        for row in self.layers:
            if row.name == name:
                return row
        names = ", ".join(r.name for r in self.layers if r.kernel)
        raise ModelError(f"{self.model} has no layer {name!r}; its kernel layers: {names}")

    def to_dict(self) -> dict:
        """A JSON-ready dict (shapes as lists)."""
        return asdict(self)


def parse_input(text: str) -> tuple[int, int, int]:
    """'3x227x227' (or '3×227×227', '3,227,227') -> (3, 227, 227); `ModelError` if it is not that."""
    m = _INPUT.fullmatch(text or "")
    if not m or min(int(g) for g in m.groups()) < 1:
        raise ModelError(f"input shape {text!r} is not CxHxW with positive sizes, e.g. 3x224x224")
    return int(m[1]), int(m[2]), int(m[3])


def _meta_network(name: str) -> nn.Module:
    """The registered backbone's network (`Backbone.net`, with its library's layer names) built on the meta
    device: shapes only, no weights, no initialisation cost."""
    entry = get_entry(name)
    with torch.device("meta"):
        return entry.build().net.eval()


def _trace(net: nn.Module, shape: tuple[int, int, int]) -> list[Layer]:
    """Run `net` on a (1, *shape) meta tensor and return one row per call of a layer that owns parameters or
    changes its input's shape. Raises what the forward pass raises."""
    rows: list[Layer] = []
    names = {m: n for n, m in net.named_modules()}

    def hook(module: nn.Module, inputs: tuple, output: object) -> None:
        if not isinstance(output, torch.Tensor):
            return
        params = list(module.named_parameters(recurse=False))
        in_shape = tuple(inputs[0].shape) if inputs and isinstance(inputs[0], torch.Tensor) else None
        if not params and in_shape == tuple(output.shape):
            return  # activations, dropout, normalisation without weights: nothing to count
        weights = sum(p.numel() for n, p in params if n != "bias")
        biases = sum(p.numel() for n, p in params if n == "bias")
        out_shape = tuple(output.shape[1:])
        grid = math.prod(out_shape[1:]) if len(out_shape) > 1 else 1
        kernel = isinstance(module, KERNEL_LAYERS)
        label = ""
        if kernel:
            label = f"{'fc' if isinstance(module, nn.Linear) else 'conv'}{sum(r.kernel for r in rows) + 1}"
        rows.append(Layer(names.get(module, "?"), type(module).__name__, out_shape, math.prod(out_shape), weights,
                          weights + biases, grid * weights, kernel, label))

    leaves = [m for m in net.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            net(torch.zeros((1, *shape), device="meta"))
    finally:
        for h in handles:
            h.remove()
    return rows


def _runs(net: nn.Module, shape: tuple[int, int, int]) -> bool:
    try:
        _trace(net, shape)
        return True
    except (RuntimeError, ValueError, IndexError):
        return False


def smallest_input(name: str, channels: int = 3, limit: int = 4096) -> int | None:
    """The smallest square side S at which the model runs on a (channels, S, S) input, or None up to `limit`.

    Assumes, as holds for these networks, that a size that works keeps working when it grows.
    """
    net = _meta_network(name)
    hi = 1
    while not _runs(net, (channels, hi, hi)):
        if hi >= limit:
            return None
        hi = min(2 * hi, limit)
    lo = hi // 2  # fails (or 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _runs(net, (channels, mid, mid)):
            hi = mid
        else:
            lo = mid
    return hi


def describe_model(name: str, input_shape: tuple[int, int, int] | None = None) -> Description:
    """Units, weights and connections of every layer of registered model `name` at `input_shape` (C, H, W).

    The default input is the model's own (3 × input_size × input_size). `ModelError` for an unknown model,
    a wrong number of channels, or an input too small for the network (naming the smallest that works).
    """
    entry = get_entry(name)
    size = entry.data_config.input_size
    shape = tuple(input_shape) if input_shape is not None else (3, size, size)
    if len(shape) != 3 or min(shape) < 1:
        raise ModelError(f"input shape {shape} is not (C, H, W) with positive sizes")
    net = _meta_network(name)
    try:
        rows = _trace(net, shape)
    except (RuntimeError, ValueError, IndexError) as e:
        c, h, w = shape
        if c != 3 and _runs(net, (3, h, w)):
            raise ModelError(f"{name} takes 3 input channels (RGB), not {c}") from None
        smallest = smallest_input(name, c)
        if smallest is not None and min(h, w) < smallest:
            raise ModelError(f"input {c}x{h}x{w} is too small for {name}: the smallest that works is "
                             f"{c}x{smallest}x{smallest}") from None
        raise ModelError(f"{name} cannot run on a {c}x{h}x{w} input: {str(e).splitlines()[0]}") from None
    kernels = [r for r in rows if r.kernel]
    return Description(name, shape, rows, params=sum(p.numel() for p in net.parameters()),
                       macs=sum(r.connections for r in kernels), weighted_layers=len(kernels))
