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

Training (`train_clips`) is the loop of `learn.train` / `learn.sequence` for clips: seeded, Adam or SGD with
momentum, the LR from `schedules.learning_rate` set on every step, softmax cross-entropy (`train.loss_fn`),
the best validation epoch kept, early stopping, the model written with `checkpoint.atomic_save` and the
learning curves with `evaluate.reports.learning_curves`. Inputs are standardised per channel with the
training set's mean and deviation.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from mmindex.errors import DataError, DetectorError
from mmindex.learn.checkpoint import atomic_save
from mmindex.learn.clips import ClipData, load_clips
from mmindex.learn.heads import Head
from mmindex.learn.schedules import SCHEDULES, learning_rate
from mmindex.learn.train import holdout_split, loss_fn, make_optimizer, resolve_device, seed_everything
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


@dataclass
class ClipReport:
    """What `train_clips` did and measured; `best_metric` is the validation accuracy of the kept epoch."""

    arch: str
    out: str
    labels: list[str]
    clip_shape: list[int]
    parameters: int
    train_size: int
    val_size: int
    best_metric: float
    best_epoch: int
    epochs_run: int
    seconds: float
    clips_per_s: float  # training throughput: forward + backward + update, validation excluded
    device: str
    history: list[dict] = field(default_factory=list)
    curves: str | None = None
    metric_name: str = "val_accuracy"


def _val_pass(model: ClipClassifier, x: Tensor, y: Tensor, n_classes: int) -> tuple[float, float]:
    """(loss, accuracy) on a held-out set."""
    z = model.logits_eval(x)
    loss = loss_fn("softmax", z, nn.functional.one_hot(y, n_classes).float())
    return float(loss), float((z.argmax(1) == y).float().mean())


# Over 60 lines: one of the three epoch loops (images, clips, sequences) that a single `fit` will
# replace (issue 18); split now, it would be split differently then.
def train_clips(data: str | os.PathLike | ClipData, out: str | os.PathLike, config: ClipConfig | None = None, *,
                val: str | os.PathLike | ClipData | None = None, progress: ClipProgress | None = None,
                curves: bool = True, device: str = "auto") -> ClipReport:
    """Train `config.arch` on clips (else a seeded split of them validates), keep the best epoch, write `out`.

    device: "auto" (CUDA when PyTorch sees a GPU), "cpu" or "cuda[:N]"; the model is saved for the CPU.
    Raises `DataError` for unusable data or options, before any training. Writes `<out>.curves.png` unless
    `curves` is False.
    """
    config = (config or ClipConfig()).validate()
    seed_everything(config.seed)
    ds = data if isinstance(data, ClipData) else load_clips(data)
    if val is None:
        ds, vs = holdout_split(ds, config.val_fraction, config.seed, min_train=2, what="clips")
    else:
        vs = val if isinstance(val, ClipData) else load_clips(val)
    if vs.shape != ds.shape or vs.labels != ds.labels:
        raise DataError(f"validation clips {vs.shape} {vs.labels} differ from training clips {ds.shape} {ds.labels}")
    check_input(config.arch, ds.shape)
    dev = resolve_device(device)
    n_classes = len(ds.labels)
    model = ClipClassifier(config.arch, ds.shape[1], n_classes, config.width, config.dropout)
    model.set_normalisation(ds.x)
    model.to(dev)
    opt = make_optimizer(model.parameters(), config)
    x, y = torch.from_numpy(ds.x), torch.from_numpy(ds.y)
    xv, yv = torch.from_numpy(vs.x), torch.from_numpy(vs.y)
    gen = torch.Generator().manual_seed(config.seed)
    steps = math.ceil(len(ds) / config.batch_size)
    history: list[dict] = []
    best, best_epoch, best_state, bad_epochs = -math.inf, 0, None, 0
    train_s, trained, metric, t0 = 0.0, 0, None, time.perf_counter()
    for epoch in range(config.epochs):
        perm = torch.randperm(len(ds), generator=gen)
        total, seen = 0.0, 0
        model.train()
        for step in range(steps):
            idx = perm[step * config.batch_size:(step + 1) * config.batch_size]
            if len(idx) < 2:
                continue  # batch norm cannot use a batch of one
            ts = time.perf_counter()
            lr = learning_rate(epoch + step / steps, config.lr, config.schedule, total=config.epochs)
            for g in opt.param_groups:
                g["lr"] = lr
            target = nn.functional.one_hot(y[idx], n_classes).float().to(dev)
            loss = loss_fn("softmax", model(x[idx].to(dev, non_blocking=True)), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)  # float() waits for the GPU, so train_s is honest
            seen += len(idx)
            train_s += time.perf_counter() - ts
            if progress:
                progress(epoch, config.epochs, step + 1, steps, total / seen, metric)
        trained += seen
        val_loss, metric = _val_pass(model, xv, yv, n_classes)
        history.append({"epoch": epoch + 1, "lr": lr, "train_loss": total / max(seen, 1), "val_loss": val_loss,
                        "val_metric": metric})
        if progress:
            progress(epoch, config.epochs, steps, steps, total / max(seen, 1), metric)
        if metric > best:
            best, best_epoch, best_state, bad_epochs = metric, epoch + 1, copy.deepcopy(model.state_dict()), 0
        else:
            bad_epochs += 1
            if config.patience and bad_epochs >= config.patience:
                break
    seconds = time.perf_counter() - t0
    if best_state is not None:
        model.load_state_dict(best_state)
    model.cpu().eval()
    n_params = sum(p.numel() for p in model.parameters())
    atomic_save({"format": FORMAT, "version": VERSION, "config": asdict(config), "labels": ds.labels,
                 "clip_shape": list(ds.shape), "state": model.state_dict(),
                 "metrics": {"val_accuracy": best, "best_epoch": best_epoch}}, out)
    png = None
    if curves and history:
        from mmindex.evaluate.reports import learning_curves  # deferred: matplotlib

        png = str(learning_curves(history, f"{out}.curves.png", "val_accuracy",
                                  title=f"{Path(out).stem} ({config.arch}, width {config.width})"))
    return ClipReport(config.arch, str(out), ds.labels, list(ds.shape), n_params, len(ds), len(vs), best, best_epoch,
                      len(history), seconds, trained / train_s if train_s > 0 else 0.0, str(dev), history, png)


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
