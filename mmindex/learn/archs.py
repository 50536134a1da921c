"""Small-input architectures for `--mode scratch`: LeNet and the AlexNet / VGG / ResNet / DenseNet
families scaled down to 28×28 grey images (Fashion-MNIST size), trained from random weights.

They have their own registry (`ARCHS`, `@register_arch`, `create_arch`, `list_archs`) rather than
`mmindex.models`' one: the models registry lists ImageNet backbones that can build an index
(1000 classes, RGB at 224 px, `mmindex add --model`), and a random 28×28 network cannot. Like that
registry, a duplicate name is an error and callers never import a network class.

Every network maps (B, in_chans, S, S) to pooled features (B, embed_dim) through `features`; the
trained detector adds its own head (`mmindex.learn.heads.Head`), as in the probe and finetune modes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from mmindex.errors import ModelError
from mmindex.registry import Registry

#: builders `fn(in_chans) -> SmallNet` by name
ARCHS: Registry[Callable[[int], SmallNet]] = Registry("architecture", ModelError)


class SmallNet(nn.Module):
    """A feature extractor (B, C, S, S) → (B, embed_dim); `name` and `embed_dim` describe it."""

    def __init__(self, name: str, features: nn.Module, embed_dim: int):
        super().__init__()
        self.name = name
        self.features = features
        self.embed_dim = embed_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


def register_arch(fn: Callable[[int], SmallNet]) -> Callable[[int], SmallNet]:
    """Register a builder `fn(in_chans) -> SmallNet` under its function name (a duplicate raises)."""
    return ARCHS.add(fn.__name__, fn)


def list_archs() -> list[str]:
    """Names of the registered small architectures, sorted."""
    return sorted(ARCHS)


def create_arch(name: str, in_chans: int = 1) -> SmallNet:
    """Build a registered architecture with random weights. `ModelError` names the known ones."""
    return ARCHS.get(name)(in_chans)


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


@register_arch
def lenet(in_chans: int = 1) -> SmallNet:
    """LeNet-5 (LeCun et al. 1998): two 5×5 conv + max-pool stages, then 120 and 84 units; 84-d features."""
    f = nn.Sequential(
        nn.Conv2d(in_chans, 6, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(inplace=True), nn.Linear(120, 84), nn.ReLU(inplace=True),
    )
    return SmallNet("lenet", f, 84)


@register_arch
def alexnet_small(in_chans: int = 1) -> SmallNet:
    """AlexNet's shape at 28 px: five conv layers (three pools), two dropout-regularised FC layers; 512-d."""
    f = nn.Sequential(
        nn.Conv2d(in_chans, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(64, 96, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(96, 96, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(96, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Flatten(),
        nn.Dropout(0.5), nn.Linear(64 * 3 * 3, 512), nn.ReLU(inplace=True),
        nn.Dropout(0.5), nn.Linear(512, 512), nn.ReLU(inplace=True),
    )
    return SmallNet("alexnet_small", f, 512)


@register_arch
def vgg_small(in_chans: int = 1) -> SmallNet:
    """VGG's pattern (pairs of 3×3 conv + BN, then max-pool) at 28 px: 16-16-M-32-32-M-64-M, FC 256; 256-d.

    The default scratch architecture. Its widths are a quarter of a 64-channel VGG stage so that an
    epoch of Fashion-MNIST fits a few CPU minutes (about 230 training images/s on 2 loaded cores).
    """
    f = nn.Sequential(
        *_conv(in_chans, 16), *_conv(16, 16), nn.MaxPool2d(2),
        *_conv(16, 32), *_conv(32, 32), nn.MaxPool2d(2),
        # The adaptive pool is the identity at 28 px and lets larger inputs (56 px mosaics) keep a 3×3 grid.
        *_conv(32, 64), nn.MaxPool2d(2), nn.AdaptiveMaxPool2d(3), nn.Flatten(),
        nn.Dropout(0.25), nn.Linear(64 * 3 * 3, 256, bias=False), nn.BatchNorm1d(256), nn.ReLU(inplace=True),
    )
    return SmallNet("vgg_small", f, 256)


class _Basic(nn.Module):
    """ResNet's basic block: two 3×3 conv + BN with an identity (or 1×1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(*_conv(cin, cout, 3, stride), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(cout))
        self.short = (nn.Identity() if stride == 1 and cin == cout else
                      nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.body(x) + self.short(x))


@register_arch
def resnet_small(in_chans: int = 1) -> SmallNet:
    """A ResNet-8 for 28 px: stem, three stages of one basic block (32, 64/2, 128/2), global pool; 128-d."""
    f = nn.Sequential(*_conv(in_chans, 32), _Basic(32, 32, 1), _Basic(32, 64, 2), _Basic(64, 128, 2),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return SmallNet("resnet_small", f, 128)


class _Dense(nn.Module):
    """A DenseNet block: each layer (BN-ReLU-conv 3×3) sees the concatenation of all earlier maps."""

    def __init__(self, cin: int, growth: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(nn.BatchNorm2d(cin + i * growth), nn.ReLU(inplace=True),
                          nn.Conv2d(cin + i * growth, growth, 3, padding=1, bias=False)) for i in range(layers))

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = torch.cat([x, layer(x)], 1)
        return x


@register_arch
def densenet_small(in_chans: int = 1) -> SmallNet:
    """A DenseNet for 28 px: growth 12, three blocks of 4 layers with 1×1-conv + avg-pool transitions; 120-d."""
    g, n = 12, 4
    c0 = 24
    c1 = c0 + n * g  # 72
    c2 = c1 // 2 + n * g  # 84
    c3 = c2 // 2 + n * g  # 90
    f = nn.Sequential(
        nn.Conv2d(in_chans, c0, 3, padding=1, bias=False), _Dense(c0, g, n),
        nn.BatchNorm2d(c1), nn.ReLU(inplace=True), nn.Conv2d(c1, c1 // 2, 1, bias=False), nn.AvgPool2d(2),
        _Dense(c1 // 2, g, n),
        nn.BatchNorm2d(c2), nn.ReLU(inplace=True), nn.Conv2d(c2, c2 // 2, 1, bias=False), nn.AvgPool2d(2),
        _Dense(c2 // 2, g, n), nn.BatchNorm2d(c3), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )
    return SmallNet("densenet_small", f, c3)
