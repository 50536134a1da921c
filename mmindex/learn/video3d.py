"""3D convolutional networks for video clips (issue 9), trained with the learning package's pieces.

    from mmindex.learn.video3d import ClipConfig, train_clips
    report = train_clips(train_clips_npz, "motion.mmclip", ClipConfig(arch="c3d", epochs=10))

The lecture: a convolution kernel is (D+2)-dimensional for D-dimensional data; for video D = 3 (time, height,
width), so a `Conv3d` kernel is (out planes, in planes, kt, kh, kw) and slides along time as well as space.

Architectures (`ARCHS`), all taking clips (B, T, C, H, W) and giving class logits:
- `c3d`: a small C3D (Tran et al., ICCV 2015): 3×3×3 kernels with stride 1 everywhere, the first pooling
  spatial only (1×2×2) so that the first layers keep the temporal signal, later poolings 2×2×2; widths
  w, 2w, 4w, 4w, 8w (C3D: 64 … 512, 8 convolutions, fc 4096; here 5, global average pooling and a linear head).
  Batch normalisation, absent from C3D, lets it train from scratch in a few epochs.
- `r3d_18`, `r2plus1d_18`: torchvision's video ResNets (Tran et al., CVPR 2018): R3D-18 with 3×3×3 kernels,
  R(2+1)D-18 with each 3×3×3 factored into a 1×3×3 spatial and a 3×1×1 temporal convolution. Built from
  torchvision's own blocks; `width` 64 with 3 channels is torchvision's model tensor for tensor, and smaller
  widths scale every layer (64-128-256-512 → w-2w-4w-8w) for small inputs and CPUs. Random initialisation.
- `frame2d_mean`: the baseline. The same stack as `c3d` with 3×3 2D kernels runs on each frame alone and its
  features are averaged over time before the head; the average cannot see frame order, so it must fail on
  labels that only motion carries (see `learn.clips`).

Training (`train_clips`) is `learn.fit`, the one training loop, on clips: seeded, Adam or SGD with momentum, the
LR from `schedules.learning_rate` set on every step, softmax cross-entropy (`fit.loss_fn`), the best validation
epoch kept, early stopping, the learning curves; the model is written with `checkpoint.atomic_save`. Inputs are
standardised per channel with the training set's mean and deviation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from mmindex.errors import DataError, DetectorError
from mmindex.extract.inputs import ModelInput
from mmindex.learn.checkpoint import atomic_save
from mmindex.learn.clips import ClipData, load_clips
from mmindex.learn.fit import (
    Batches,
    LearningCurves,
    Schedule,
    StepProgress,
    TrainReport,
    Validation,
    fit,
    holdout_split,
    loss_fn,
    make_optimizer,
    resolve_device,
    seed_everything,
)
from mmindex.learn.heads import Head
from mmindex.learn.schedules import SCHEDULES
from mmindex.registry import Registry

#: clip networks by name: fn(in_channels, width) -> a trunk with `out_dim`, mapping (B, C, T, H, W) to
#: features; metadata `min_input` is the smallest clip (T, H, W) it takes
ARCHS: Registry[Callable[[int, int], nn.Module]] = Registry("clip architecture", DataError)
FORMAT, VERSION = "mmindex-clip-model", 1
#: progress(epoch, epochs, step, steps, train_loss, val_accuracy or None) after each mini-batch and epoch.
ClipProgress = Callable[[int, int, int, int, float, float | None], None]


def _conv_bn_relu(conv: type[nn.Module], c_in: int, c_out: int) -> list[nn.Module]:
    norm = nn.BatchNorm3d if conv is nn.Conv3d else nn.BatchNorm2d
    return [conv(c_in, c_out, 3, padding=1, bias=False), norm(c_out), nn.ReLU(inplace=True)]


class C3D(nn.Module):
    """The small C3D above: (B, C, T, H, W) → pooled features (B, 8·width)."""

    def __init__(self, in_channels: int, width: int = 16):
        super().__init__()
        w, c = width, nn.Conv3d
        self.features = nn.Sequential(
            *_conv_bn_relu(c, in_channels, w), nn.MaxPool3d((1, 2, 2)),  # C3D's pool1: keep time at first
            *_conv_bn_relu(c, w, 2 * w), nn.MaxPool3d(2),
            *_conv_bn_relu(c, 2 * w, 4 * w), *_conv_bn_relu(c, 4 * w, 4 * w), nn.MaxPool3d(2),
            *_conv_bn_relu(c, 4 * w, 8 * w), nn.AdaptiveAvgPool3d(1), nn.Flatten())
        self.out_dim = 8 * w

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


class FrameMean(nn.Module):
    """The order-blind baseline: `c3d`'s stack with 2D kernels per frame, features averaged over time."""

    def __init__(self, in_channels: int, width: int = 16):
        super().__init__()
        w, c = width, nn.Conv2d
        self.features = nn.Sequential(
            *_conv_bn_relu(c, in_channels, w), nn.MaxPool2d(2),
            *_conv_bn_relu(c, w, 2 * w), nn.MaxPool2d(2),
            *_conv_bn_relu(c, 2 * w, 4 * w), *_conv_bn_relu(c, 4 * w, 4 * w), nn.MaxPool2d(2),
            *_conv_bn_relu(c, 4 * w, 8 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_dim = 8 * w

    def forward(self, x: Tensor) -> Tensor:
        b, t = x.shape[0], x.shape[2]
        frames = x.transpose(1, 2).flatten(0, 1)  # (B·T, C, H, W): every frame on its own
        return self.features(frames).view(b, t, -1).mean(1)  # the mean is the same for any order of the frames


def video_resnet(arch: str, in_channels: int = 3, width: int = 64) -> nn.Module:
    """torchvision's R3D-18 or R(2+1)D-18 trunk (no classifier: `fc` is the identity, `out_dim` 8·width)."""
    from torchvision.models.video.resnet import BasicBlock, Conv2Plus1D, Conv3DSimple, VideoResNet

    class ScaledVideoResNet(VideoResNet):
        def __init__(self, conv: type[nn.Module], stem: nn.Module):
            nn.Module.__init__(self)  # VideoResNet.__init__ fixes the widths at 64; its layer builder is reused
            self.inplanes, self.stem = width, stem
            self.layer1 = self._make_layer(BasicBlock, conv, width, 2, stride=1)
            self.layer2 = self._make_layer(BasicBlock, conv, 2 * width, 2, stride=2)
            self.layer3 = self._make_layer(BasicBlock, conv, 4 * width, 2, stride=2)
            self.layer4 = self._make_layer(BasicBlock, conv, 8 * width, 2, stride=2)
            self.avgpool, self.fc, self.out_dim = nn.AdaptiveAvgPool3d((1, 1, 1)), nn.Identity(), 8 * width
            for m in self.modules():  # torchvision's initialisation
                if isinstance(m, nn.Conv3d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm3d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)

    if arch == "r3d_18":  # torchvision's BasicStem
        stem = nn.Sequential(nn.Conv3d(in_channels, width, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
                             nn.BatchNorm3d(width), nn.ReLU(inplace=True))
        return ScaledVideoResNet(Conv3DSimple, stem)
    if arch == "r2plus1d_18":  # torchvision's R2Plus1dStem: 45 = 64·45/64 mid planes, factored 7×7 then 3
        mid = max(1, round(45 * width / 64))
        stem = nn.Sequential(nn.Conv3d(in_channels, mid, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False),
                             nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
                             nn.Conv3d(mid, width, (3, 1, 1), (1, 1, 1), (1, 0, 0), bias=False),
                             nn.BatchNorm3d(width), nn.ReLU(inplace=True))
        return ScaledVideoResNet(Conv2Plus1D, stem)
    raise DataError(f"arch must be one of {', '.join(ARCHS)}, not {arch!r}")


# c3d pools time twice and space three times by 2, hence its smallest clip
ARCHS.add("c3d", C3D, min_input=(4, 8, 8))
ARCHS.add("r3d_18", lambda in_channels, width: video_resnet("r3d_18", in_channels, width), min_input=(1, 1, 1))
ARCHS.add("r2plus1d_18", lambda in_channels, width: video_resnet("r2plus1d_18", in_channels, width),
          min_input=(1, 1, 1))
ARCHS.add("frame2d_mean", FrameMean, min_input=(1, 8, 8))


class ClipClassifier(nn.Module):
    """One of ARCHS + a linear head over clips (B, T, C, H, W), standardised per channel."""

    def __init__(self, arch: str, in_channels: int, num_classes: int, width: int = 16, dropout: float = 0.0):
        super().__init__()
        self.arch = arch
        self.body: nn.Module = ARCHS.get(arch)(in_channels, width)
        self.head = Head(self.body.out_dim, num_classes, "linear", dropout=dropout)
        self.register_buffer("mu", torch.zeros(in_channels))
        self.register_buffer("sd", torch.ones(in_channels))

    def set_normalisation(self, x: np.ndarray, limit: int = 2000) -> None:
        """Per-channel mean and deviation over (up to `limit`) training clips, in the data's own units."""
        sample = x[:limit].astype(np.float32)
        self.mu.copy_(torch.from_numpy(sample.mean((0, 1, 3, 4))))
        self.sd.copy_(torch.from_numpy(sample.std((0, 1, 3, 4))).clamp(min=1e-3))

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, L) of clips (B, T, C, H, W), any numeric dtype."""
        x = (x.float() - self.mu[:, None, None]) / self.sd[:, None, None]
        return self.head(self.body(x.transpose(1, 2)))  # Conv3d wants (B, C, T, H, W)

    @torch.inference_mode()
    def logits_eval(self, x: Tensor, batch: int = 128) -> Tensor:
        """Logits in evaluation mode, computed on the model's device in batches, returned on the CPU."""
        self.eval()
        dev = self.mu.device
        return torch.cat([self(x[i:i + batch].to(dev)).cpu() for i in range(0, len(x), batch)])

    def scores(self, x: Tensor, batch: int = 128) -> Tensor:
        """Softmax probabilities in evaluation mode (CPU tensor)."""
        return self.logits_eval(x, batch).softmax(1)


def check_input(arch: str, shape: tuple[int, ...]) -> None:
    """Raise `DataError` naming the smallest clip that works when clips (T, C, H, W) are too small for `arch`."""
    t, _, h, w = shape
    need = ARCHS.entry(arch).metadata["min_input"]
    if t < need[0] or h < need[1] or w < need[2]:
        raise DataError(f"clips of {t} frames of {h}×{w} are too small for {arch}: it needs at least {need[0]} "
                        f"frames of {need[1]}×{need[2]} pixels")


@dataclass
class ClipConfig:
    """Options of `train_clips`. `width` scales every layer (r3d_18 / r2plus1d_18 at 64 = torchvision's)."""

    arch: str = "c3d"
    width: int = 16
    dropout: float = 0.0
    epochs: int = 15
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"  # adam | sgd (with momentum)
    momentum: float = 0.9
    schedule: str = "cosine"
    weight_decay: float = 0.0
    patience: int = 5  # early stopping after this many epochs without a better validation accuracy (0: never)
    val_fraction: float = 0.2
    seed: int = 0

    def validate(self) -> ClipConfig:
        """Raise `DataError` for an option no run can use."""
        checks = [(self.arch in ARCHS, f"arch must be one of {', '.join(ARCHS)}"),
                  (self.optimizer in ("adam", "sgd"), "optimizer must be adam or sgd"),
                  (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
                  (self.width >= 1 and self.epochs >= 1 and self.batch_size >= 2, "width, epochs ≥ 1, batch ≥ 2"),
                  (self.lr > 0 and self.weight_decay >= 0 and self.patience >= 0, "lr > 0, weight decay ≥ 0"),
                  (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
                  (0 < self.val_fraction < 1, "val_fraction must be in (0, 1)")]
        for ok, why in checks:
            if not ok:
                raise DataError(f"bad training option: {why}")
        return self


#: the one report type of `learn.fit` (issue 18); the old name still works
ClipReport = TrainReport


def _check_data(config: ClipConfig, data, val) -> tuple[ClipData, ClipData]:
    """(train, validation) clips; a seeded split of the training clips when `val` is None. Raises `DataError`."""
    ds = data if isinstance(data, ClipData) else load_clips(data)
    if val is None:
        ds, vs = holdout_split(ds, config.val_fraction, config.seed, min_train=2, what="clips")
    else:
        vs = val if isinstance(val, ClipData) else load_clips(val)
    if vs.shape != ds.shape or vs.labels != ds.labels:
        raise DataError(f"validation clips {vs.shape} {vs.labels} differ from training clips {ds.shape} {ds.labels}")
    check_input(config.arch, ds.shape)
    return ds, vs


def train_clips(data: str | os.PathLike | ClipData, out: str | os.PathLike, config: ClipConfig | None = None, *,
                val: str | os.PathLike | ClipData | None = None, progress: ClipProgress | None = None,
                curves: bool = True, device: str = "auto") -> TrainReport:
    """Train `config.arch` on clips (else a seeded split of them validates), keep the best epoch, write `out`.

    device: "auto" (CUDA when PyTorch sees a GPU), "cpu" or "cuda[:N]"; the model is saved for the CPU.
    Raises `DataError` for unusable data or options, before any training. Writes `<out>.curves.png` unless
    `curves` is False. The report's `clips_per_s` is the rate of the training steps, validation excluded.
    """
    config = (config or ClipConfig()).validate()
    seed_everything(config.seed)
    ds, vs = _check_data(config, data, val)
    dev = resolve_device(device)
    n_classes = len(ds.labels)
    model = ClipClassifier(config.arch, ds.shape[1], n_classes, config.width, config.dropout)
    model.set_normalisation(ds.x)
    model.to(dev)
    y, yv = torch.from_numpy(ds.y), torch.from_numpy(vs.y)
    onehot = lambda ids: nn.functional.one_hot(ids, n_classes).float()  # noqa: E731 — softmax CE's targets
    callbacks = [*([StepProgress(progress)] if progress else []),
                 *([LearningCurves(f"{out}.curves.png", f"{Path(out).stem} ({config.arch}, width {config.width})")]
                   if curves else [])]
    validation = Validation(Batches((torch.from_numpy(vs.x),), onehot(yv), 128),
                            lambda z: float((z.argmax(1).cpu() == yv).float().mean()), "val_accuracy")
    report = fit(model, Batches((torch.from_numpy(ds.x),), onehot(y), config.batch_size, min_size=2), validation,
                 lambda z, t: loss_fn("softmax", z, t), make_optimizer(model.parameters(), config),
                 Schedule(config.lr, config.schedule, config.epochs), epochs=config.epochs, seed=config.seed,
                 patience=config.patience, callbacks=callbacks, device=dev)
    model.cpu().eval()
    t, c, h, w = ds.shape
    given = ModelInput("clip", frames=t, channels=c, size=h, width=w, rate=ds.fps,
                       unit=255.0 if ds.x.dtype == np.uint8 else 1.0)
    atomic_save({"format": FORMAT, "version": VERSION, "config": asdict(config), "labels": ds.labels,
                 "clip_shape": list(ds.shape), "state": model.state_dict(), "input": given.to_json(),
                 "metrics": {"val_accuracy": report.best_metric, "best_epoch": report.best_epoch}}, out)
    return replace(report, name=Path(out).stem, out=str(out), mode="clip", arch=config.arch, loss="softmax",
                   labels=ds.labels, input_shape=list(ds.shape))


def load_clip_model(path: str | os.PathLike) -> tuple[ClipClassifier, dict]:
    """The model saved by `train_clips` (evaluation mode, CPU) and its header; raises `DetectorError`."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 — torch raises many types for a missing or corrupt file
        raise DetectorError(f"cannot read clip model {path}: {exc}") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT or blob.get("version") != VERSION:
        raise DetectorError(f"{path} is not a {FORMAT} v{VERSION} file")
    cfg = blob["config"]
    model = ClipClassifier(cfg["arch"], blob["clip_shape"][1], len(blob["labels"]), cfg["width"], cfg["dropout"])
    model.load_state_dict(blob["state"])
    model.eval()
    return model, {k: v for k, v in blob.items() if k != "state"}


def clip_input(blob: dict, model: ClipClassifier) -> ModelInput:
    """What a saved clip model takes: its recorded input, or for a file written before issue 18 its clip shape at
    the video's own rate, in the units its normalisation shows (a mean above 1.5: 0–255 frames)."""
    if blob.get("input"):
        return ModelInput.from_dict(json.loads(blob["input"]))
    t, c, h, w = blob["clip_shape"]
    return ModelInput("clip", frames=t, channels=c, size=h, width=w, unit=255.0 if float(model.mu.max()) > 1.5 else 1.0)


def evaluate_clips(model: str | os.PathLike | ClipClassifier, data: str | os.PathLike | ClipData,
                   labels: list[str] | None = None) -> dict:
    """Accuracy and confusion matrix (rows: true class) of a model (or its file) on labelled clips."""
    from mmindex.evaluate.reports import confusion_matrix  # deferred: matplotlib

    if not isinstance(model, ClipClassifier):
        model, header = load_clip_model(model)
        labels = header["labels"]
    ds = data if isinstance(data, ClipData) else load_clips(data)
    n_out = model.head.net[-1].out_features
    if ds.x.shape[2] != model.mu.numel() or int(ds.y.max()) >= n_out:
        raise DataError(f"the clips have {ds.x.shape[2]} channels and class ids up to {int(ds.y.max())}; the "
                        f"model wants {model.mu.numel()} channels and {n_out} classes")
    check_input(model.arch, ds.shape)
    pred = model.scores(torch.from_numpy(ds.x)).argmax(1).numpy()
    cm = confusion_matrix(ds.y, pred, n_out)
    return {"arch": model.arch, "clips": len(ds), "accuracy": float((pred == ds.y).mean()),
            "labels": labels or ds.labels, "confusion": cm.tolist()}
