"""The training loop: the lecture's recipe, end to end, from a dataset spec to a detector bundle.

    shuffled mini-batches → forward → loss (+ L1/L2 once switched on) → backward → SGD with momentum
    at the scheduled LR per parameter group → validation metric each epoch → early stopping,
    checkpoint (resumable), best weights kept → calibration on the validation split → bundle + curves.

The lecture's update, W(t+1) = W(t) − η(t)·∂E/∂W, is `torch.optim.SGD` (with momentum); η(t) comes from
`schedules.learning_rate`, a pure function of the (fractional) epoch, set on every step.
"""

from __future__ import annotations

import copy
import math
import os
import random
import resource
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmindex.errors import DataError, DetectorError
from mmindex.learn import calibration, data, features
from mmindex.learn.checkpoint import atomic_save, save_bundle
from mmindex.learn.config import TrainConfig
from mmindex.learn.model import Detector
from mmindex.learn.schedules import learning_rate

#: progress(epoch, epochs, step, steps, loss, metric) — metric is the last validation value or None.
ProgressFn = Callable[[int, int, int, int, float, float | None], None]


@dataclass
class TrainReport:
    """What a training run did and measured. `metric` is validation top-1 accuracy (classes) or MAP (labels)."""

    name: str
    out: str
    mode: str
    loss: str
    labels: list[str]
    train_size: int
    val_size: int
    metric_name: str
    best_metric: float
    best_epoch: int
    epochs_run: int
    history: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    images_per_s: float = 0.0
    peak_rss_mb: float = 0.0
    curves: str | None = None
    calibration: dict = field(default_factory=dict)
    split_made: bool = False


def seed_everything(seed: int) -> None:
    """Python, NumPy and PyTorch generators: the same seed gives the same run on the same machine."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" → CUDA when PyTorch sees a GPU, else the CPU; otherwise the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise DataError(f"unknown device {device!r}: use auto, cpu or cuda[:N]") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DataError("--device cuda: PyTorch sees no GPU here")
    return dev


def holdout_split(ds, fraction: float, seed: int, *, min_train: int, what: str) -> tuple:
    """(train, validation) of a data set with `len` and `subset(indices)`: a seeded random `fraction` of it
    (at least one item) held out, not stratified (image data sets use the stratified `data.split`).

    Raises `DataError` ("N <what> are too few …") when fewer than `min_train` items would be left to train on.
    """
    order = np.random.default_rng(seed).permutation(len(ds))
    n_val = max(1, round(len(ds) * fraction))
    if len(ds) - n_val < min_train:
        raise DataError(f"{len(ds)} {what} are too few to hold out a validation split")
    return ds.subset(order[n_val:]), ds.subset(order[:n_val])


def make_optimizer(params: Iterable[Tensor], config) -> torch.optim.Optimizer:
    """Adam (`config.optimizer == "adam"`), else SGD with `config.momentum`, at `config.lr` with
    `config.weight_decay` (a `SequenceConfig` or a `ClipConfig`)."""
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def prepare_inputs(config: TrainConfig, ds: data.Dataset, progress=None, expect_weights: str | None = None,
                   device: torch.device | None = None) -> tuple[Tensor, data.Dataset, str | None]:
    """Model inputs for a dataset in `config.mode`: (X, the dataset without unreadable images, weights id).

    Probe features are computed on `device` when it is a GPU (PyTorch there; ONNX Runtime on the CPU)."""
    if config.mode == "probe":
        x, ds, wid = features.extract_features(ds, config.backbone, progress, device=device)
        if expect_weights is not None and wid != expect_weights:
            raise DetectorError(f"the detector was trained on {config.backbone} weights {expect_weights}; "
                                f"the installed weights are {wid}")
        return torch.from_numpy(x), ds, wid
    if config.mode == "scratch":
        x, ds = features.decode_pixels(ds, config.input_size, config.channels)
        return torch.from_numpy(x), ds, None
    from mmindex.models.registry import get_entry  # deferred: the backbone registry builds PyTorch models

    entry = get_entry(config.backbone)  # unknown backbone: ModelError before decoding anything
    x, ds = features.decode_for_backbone(ds, entry.data_config)
    return torch.from_numpy(x), ds, None


def resolve_loss(config: TrainConfig, ds: data.Dataset) -> str:
    if config.loss != "auto":
        return config.loss
    return "sigmoid" if ds.multilabel else "softmax"


def loss_fn(kind: str, logits: Tensor, targets: Tensor) -> Tensor:
    """Softmax CE L = −Σ l_i log p_i (soft targets allowed); sigmoid CE summed per label; or MSE."""
    if kind == "softmax":
        t = targets / targets.sum(1, keepdim=True).clamp(min=1e-12)
        return -(t * logits.log_softmax(1)).sum(1).mean()
    if kind == "sigmoid":
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(1).mean()
    return F.mse_loss(logits, targets)


def validation_metric(scores: np.ndarray, ds: data.Dataset) -> float:
    """Top-1 accuracy for exclusive classes, MAP over labels for multi-label sets."""
    from mmindex.evaluate import metrics  # deferred: PyTorch, through mmindex.learn

    if ds.multilabel:
        return metrics.mean_average_precision(scores, ds.targets > 0.5)
    return 1.0 - metrics.top_k_error(scores, ds.classes, 1)


def _penalised(model: Detector) -> list[Tensor]:
    """Weights that L1/L2 act on: matrices and kernels, not biases or normalisation scales."""
    return [p for n, p in model.named_parameters() if p.dim() > 1]


# Over 60 lines: one of the three epoch loops (images, clips, sequences) that a single `fit` will
# replace (issue 18); split now, it would be split differently then.
def train(data_spec: str, out: str | os.PathLike, config: TrainConfig | None = None, *, val_spec: str | None = None,
          name: str | None = None, resume: bool = False, progress: ProgressFn | None = None,
          feature_progress=None, curves: bool = True, device: str = "auto") -> TrainReport:
    """Train a detector on `data_spec` (see `mmindex.learn.data`) and write its bundle to `out`.

    device: "auto" (CUDA when PyTorch sees a GPU, else the CPU), "cpu" or "cuda[:N]". It is where the
    loop runs and probe features are computed; the bundle is always saved for the CPU.

    The checkpoint `<out>.ckpt` is written after every epoch and removed at the end; `resume` continues
    from it. Raises `DataError` for unusable data, before any training.
    """
    config = (config or TrainConfig()).validate()
    out = Path(out).expanduser()
    name = name or out.stem
    seed_everything(config.seed)
    ds = data.load_dataset(data_spec).check()
    val = data.load_dataset(val_spec, ds.labels).check() if val_spec else None
    if val is None:
        ds, val = data.split(ds, config.val_fraction, config.seed)
    loss_kind = resolve_loss(config, ds)
    dev = resolve_device(device)
    x, ds, wid = prepare_inputs(config, ds, feature_progress, device=dev)
    xv, val, _ = prepare_inputs(config, val, feature_progress, device=dev)
    y, yv = torch.from_numpy(ds.targets), torch.from_numpy(val.targets)

    model = Detector(config, ds.labels, loss_kind, x.shape[1] if config.mode == "probe" else None)
    model.set_normalisation(x[: min(len(x), 20000)])
    model.to(dev)
    head = list(model.head.parameters())
    body = [p for p in model.network.parameters() if p.requires_grad]
    scale = config.backbone_lr if config.mode == "finetune" else 1.0
    groups = [{"params": head, "scale": 1.0}] + ([{"params": body, "scale": scale}] if body else [])
    opt = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)

    ckpt = Path(f"{out}.ckpt")
    history: list[dict] = []
    start, best, best_epoch, best_state, bad_epochs = 0, -math.inf, -1, None, 0
    if resume and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)  # our own file: it holds RNG states
        if state["config"] != config.to_json() or state["labels"] != ds.labels:
            raise DataError(f"{ckpt} was written by a run with other options or data; delete it or drop --resume")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, history, best, best_epoch, best_state, bad_epochs = (
            state["epoch"] + 1, state["history"], state["best"], state["best_epoch"], state["best_state"],
            state["bad_epochs"])
        torch.set_rng_state(state["torch_rng"])

    gen = torch.Generator().manual_seed(config.seed)
    for _ in range(start):  # the same shuffles as an uninterrupted run
        torch.randperm(len(x), generator=gen)
    steps = max(1, math.ceil(len(x) / config.batch_size))
    t0, trained, metric = time.perf_counter(), 0, (history[-1]["val_metric"] if history else None)
    for epoch in range(start, config.epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total, seen = 0.0, 0
        for step in range(steps):
            idx = order[step * config.batch_size:(step + 1) * config.batch_size]
            if len(idx) < 2 and step > 0:
                continue  # batch norm cannot use a batch of one
            lr = learning_rate(epoch + step / steps, config.lr, config.schedule, total=config.epochs,
                               every=config.step_every, factor=config.step_factor, warmup=config.warmup)
            for g in opt.param_groups:
                g["lr"] = lr * g["scale"]
            loss = loss_fn(loss_kind, model.logits(x[idx].to(dev, non_blocking=True)), y[idx].to(dev))
            if epoch >= config.penalty_from and (config.l2 or config.l1):
                w = _penalised(model)
                if config.l2:
                    loss = loss + config.l2 * sum(p.square().sum() for p in w)
                if config.l1:
                    loss = loss + config.l1 * sum(p.abs().sum() for p in w)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
            if progress:
                progress(epoch, config.epochs, step + 1, steps, total / seen, metric)
        trained += seen
        scores = model.scores(xv).numpy()
        metric = validation_metric(scores, val)
        with torch.inference_mode():
            model.eval()
            val_loss = float(sum(loss_fn(loss_kind, model.logits(xv[i:i + 512].to(dev)), yv[i:i + 512].to(dev))
                                 * len(yv[i:i + 512]) for i in range(0, len(xv), 512)) / max(len(xv), 1))
        history.append({"epoch": epoch + 1, "lr": lr, "train_loss": total / max(seen, 1), "val_loss": val_loss,
                        "val_metric": metric})
        if progress:
            progress(epoch, config.epochs, steps, steps, total / max(seen, 1), metric)
        if metric > best:
            best, best_epoch, bad_epochs = metric, epoch + 1, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
        atomic_save({"config": config.to_json(), "labels": ds.labels, "model": model.state_dict(),
                     "optimizer": opt.state_dict(), "epoch": epoch, "history": history, "best": best,
                     "best_epoch": best_epoch, "best_state": best_state, "bad_epochs": bad_epochs,
                     "torch_rng": torch.get_rng_state()}, ckpt)
        if config.patience and bad_epochs >= config.patience:
            break
    seconds = time.perf_counter() - t0

    if best_state is not None:
        model.load_state_dict(best_state)
    model.cpu().eval()  # calibration, the bundle and `apply` run on the CPU
    cal = _calibrate(model, xv, val, loss_kind) if config.calibrate else {}
    final = validation_metric(model.scores(xv).numpy(), val)
    metric_name = "val_map" if val.multilabel else "val_top1_accuracy"
    save_bundle(out, name, model, wid, x.shape[1] if config.mode == "probe" else None,
                {metric_name: final, "best_epoch": best_epoch, "train_size": len(ds), "val_size": len(val),
                 **cal})
    ckpt.unlink(missing_ok=True)
    png = None
    if curves and history:
        from mmindex.evaluate.reports import learning_curves  # deferred: matplotlib

        png = str(learning_curves(history, f"{out}.curves.png", metric_name, title=f"{name} ({config.mode})"))
    return TrainReport(name, str(out), config.mode, loss_kind, ds.labels, len(ds), len(val), metric_name, final,
                       best_epoch, len(history), history, ds.skipped + val.skipped, seconds,
                       trained / seconds if seconds > 0 else 0.0,
                       resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, png, cal, val_spec is None)


def _calibrate(model: Detector, xv: Tensor, val: data.Dataset, loss_kind: str) -> dict:
    """Fit temperature (softmax) or Platt (sigmoid) scaling on the validation split; report ECE before/after."""
    with torch.no_grad():  # not inference_mode: the logits feed the calibration's own autograd
        z = torch.cat([model.logits(xv[i:i + 512]) for i in range(0, len(xv), 512)])
    if loss_kind == "softmax" and not val.multilabel:
        classes = torch.from_numpy(val.classes)
        before = z.softmax(1)
        t = calibration.fit_temperature(z, classes)
        model.temperature.fill_(t)
        after = (z / t).softmax(1)
        ece = [calibration.expected_calibration_error(p.max(1).values, p.argmax(1) == classes) for p in (before, after)]
        return {"temperature": t, "ece_before": ece[0], "ece_after": ece[1]}
    if loss_kind == "sigmoid":
        a, b = calibration.fit_platt(z, torch.from_numpy(val.targets))
        model.platt_a.copy_(a)
        model.platt_b.copy_(b)
        return {"platt": "fitted per label"}
    return {}
