"""One training loop for images, sequences and clips (issue 18): `fit` and its pieces; it returns
one `TrainReport` (`learn.report`).

    val = Validation(Batches((xv,), yv, 512), accuracy_of_logits, "val_accuracy")
    report = fit(model, Batches((x,), y, 128, min_size=2), val, lambda z, t: loss_fn("softmax", z, t), optimizer,
                 Schedule(0.1, "step", total=30), epochs=30, patience=5,
                 callbacks=[StepProgress(bar_update), LearningCurves("m.mmdet.curves.png")])

The lecture's recipe, whatever the input:

    shuffled mini-batches (a seeded generator, reshuffled every epoch) → forward → loss (+ a penalty) → backward
    → [the gradient's global norm clipped] → optimiser step at the scheduled LR of each parameter group
    → validation loss and metric each epoch → the best epoch's weights kept → early stopping

The lecture's update, W(t+1) = W(t) − η(t)·∂E/∂W, is the optimiser's step (SGD with momentum, or Adam); η(t) comes
from `schedules.learning_rate`, a pure function of the (fractional) epoch, set on every step. What differs between
kinds of model is built by the callers and handed in: `learn.train` (detectors on images or features: L1/L2 from
an epoch on, a checkpoint every epoch, calibration), `learn.sequence` (recurrent networks: back-propagation
through time with clipping) and `learn.video3d` (3D CNNs over clips).
"""

from __future__ import annotations

import copy
import math
import random
import resource
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmindex.errors import DataError
from mmindex.learn.report import TrainReport
from mmindex.learn.schedules import learning_rate

#: loss(logits, targets) → a scalar tensor
LossFn = Callable[[Tensor, Tensor], Tensor]
#: progress(epoch, epochs, step, steps, loss, metric) — metric is the last validation value or None.
ProgressFn = Callable[[int, int, int, int, float, float | None], None]


# ---- the pieces ------------------------------------------------------------------------------------------------

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


def loss_fn(kind: str, logits: Tensor, targets: Tensor) -> Tensor:
    """Softmax CE L = −Σ l_i log p_i (soft targets allowed); sigmoid CE summed per label; or MSE."""
    if kind == "softmax":
        t = targets / targets.sum(1, keepdim=True).clamp(min=1e-12)
        return -(t * logits.log_softmax(1)).sum(1).mean()
    if kind == "sigmoid":
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(1).mean()
    return F.mse_loss(logits, targets)


@dataclass
class Batches:
    """Aligned tensors in mini-batches: `inputs` (what the model is called with) and `targets` (what the loss
    compares its logits with). A batch under `min_size` items is skipped unless it is an epoch's first
    (batch normalisation cannot use a batch of one)."""

    inputs: tuple[Tensor, ...]
    targets: Tensor
    batch_size: int
    min_size: int = 1

    def __post_init__(self) -> None:
        lengths = {len(t) for t in self.inputs}
        if self.batch_size < 1 or self.size == 0 or lengths != {self.size}:
            rows = " and ".join(map(str, sorted(lengths)))
            raise DataError(f"batches need items, a batch size ≥ 1 and inputs as long as the targets: inputs of "
                            f"{rows} rows, {self.size} targets, batch size {self.batch_size}")

    @property
    def size(self) -> int:
        return len(self.targets)

    def __len__(self) -> int:
        return max(1, math.ceil(self.size / self.batch_size))

    def take(self, idx: Tensor | slice, device: torch.device) -> tuple[tuple[Tensor, ...], Tensor]:
        """(inputs, targets) of the items `idx`, on `device`."""
        return tuple(t[idx].to(device, non_blocking=True) for t in self.inputs), self.targets[idx].to(device)

    def shuffled(self, gen: torch.Generator) -> Iterator[tuple[int, Tensor]]:
        """(step, indices) of one epoch, in a new random order drawn from `gen`."""
        order = torch.randperm(self.size, generator=gen)
        for step in range(len(self)):
            idx = order[step * self.batch_size:(step + 1) * self.batch_size]
            if len(idx) >= self.min_size or step == 0:
                yield step, idx

    def in_order(self) -> Iterator[slice]:
        return (slice(i, i + self.batch_size) for i in range(0, self.size, self.batch_size))


@dataclass
class Validation:
    """The held-out batches (in order; `batch_size` is the evaluation chunk) and the metric of their logits
    (on the model's device), named `name`; the best epoch is the one with the highest metric."""

    batches: Batches
    metric: Callable[[Tensor], float]
    name: str = "val_metric"


@dataclass(frozen=True)
class Schedule:
    """The LR as a pure function of the (fractional) epoch: `schedules.learning_rate` with these settings, set on
    every step. A parameter group's "scale" (1 when absent) multiplies it: finetune's backbone learns slower."""

    lr: float
    kind: str = "step"
    total: int = 1
    every: int = 10
    factor: float = 10.0
    warmup: float = 0.0

    def at(self, epoch: float) -> float:
        return learning_rate(epoch, self.lr, self.kind, total=self.total, every=self.every, factor=self.factor,
                             warmup=self.warmup)

    def set(self, optimizer: torch.optim.Optimizer, epoch: float) -> float:
        """Set every group's LR for this point of training; returns the unscaled LR."""
        lr = self.at(epoch)
        for g in optimizer.param_groups:
            g["lr"] = lr * g.get("scale", 1.0)
        return lr


@dataclass
class LoopState:
    """Where a run stands after `epoch` epochs: what a checkpoint saves and `fit(start=...)` resumes from."""

    epochs: int
    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best: float = -math.inf
    best_epoch: int = 0
    best_state: dict | None = None
    bad_epochs: int = 0


class Callback:
    """Hooks of `fit`; each does nothing unless overridden."""

    def on_step(self, epoch: int, epochs: int, step: int, steps: int, train_loss: float,
                metric: float | None) -> None:
        """After each mini-batch (`step` counts from 1), and once more after validation with its new metric."""

    def on_epoch(self, state: LoopState) -> None:
        """After each epoch's validation, once the best epoch is updated (`state.history[-1]` is this epoch)."""

    def on_end(self, report: TrainReport) -> TrainReport:
        """After the last epoch, with the best weights back in the model; may return a changed report."""
        return report


class StepProgress(Callback):
    """Calls `progress(epoch, epochs, step, steps, loss, metric)`: what a progress bar (the CLI's rich bars) reads."""

    def __init__(self, progress: ProgressFn):
        self.progress = progress

    def on_step(self, epoch, epochs, step, steps, train_loss, metric) -> None:
        self.progress(epoch, epochs, step, steps, train_loss, metric)


class EpochProgress(Callback):
    """Calls `progress(epoch, epochs, train_loss, val_metric)` after each epoch (epoch counts from 0)."""

    def __init__(self, progress: Callable[[int, int, float, float], None]):
        self.progress = progress

    def on_epoch(self, state: LoopState) -> None:
        last = state.history[-1]
        self.progress(state.epoch - 1, state.epochs, last["train_loss"], last["val_metric"])


class LearningCurves(Callback):
    """Draws the training and validation loss, the metric and the LR per epoch to `path` (a PNG) at the end."""

    def __init__(self, path: str | Path, title: str = ""):
        self.path, self.title = Path(path), title

    def on_end(self, report: TrainReport) -> TrainReport:
        if not report.history:
            return report
        from mmindex.evaluate.reports import learning_curves  # deferred: matplotlib

        self.path.parent.mkdir(parents=True, exist_ok=True)
        png = learning_curves(report.history, self.path, report.metric_name, title=self.title)
        return replace(report, curves=str(png))


# ---- the loop ----------------------------------------------------------------------------------------------------

def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: tuple[Tensor, ...], targets: Tensor,
               loss: LossFn, *, clip: float | None = None, penalty: Callable[[Tensor, int], Tensor] | None = None,
               epoch: int = 0) -> tuple[Tensor, float | None]:
    """One mini-batch: forward, loss (+ `penalty(loss, epoch)`), backward, [clip], update.

    clip: the largest global gradient norm (0: measured, not clipped; None: not even measured). Returns the loss
    (a detached tensor: reading it waits for the device) and the gradient norm before clipping (or None).
    """
    model.train()
    value = loss(model(*inputs), targets)
    if penalty is not None:
        value = penalty(value, epoch)
    optimizer.zero_grad(set_to_none=True)
    value.backward()
    norm = None
    if clip is not None:
        # g ← g · min(1, clip / ‖g‖): the direction is kept, the step is bounded (Pascanu et al., 2013)
        norm = float(nn.utils.clip_grad_norm_(model.parameters(), clip if clip > 0 else math.inf))
    optimizer.step()
    return value.detach(), norm


def evaluate(model: nn.Module, val: Validation, loss: LossFn, device: torch.device) -> tuple[float, float]:
    """(loss, metric) of the held-out batches, in evaluation mode, without gradients."""
    model.eval()
    b = val.batches
    with torch.inference_mode():
        logits = torch.cat([model(*b.take(idx, device)[0]) for idx in b.in_order()])
        return float(loss(logits, b.targets.to(device))), float(val.metric(logits))


@dataclass
class _Epochs:
    """What `fit` was given, and the clock and counters of its training steps."""

    model: nn.Module
    train: Batches
    loss: LossFn
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    clip: float | None
    penalty: Callable[[Tensor, int], Tensor] | None
    callbacks: Sequence[Callback]
    device: torch.device
    step_seconds: float = 0.0
    items: int = 0
    clipped: int = 0

    def run(self, epoch: int, epochs: int, gen: torch.Generator, metric: float | None) -> dict:
        """One epoch of training steps; its history record without the validation figures."""
        steps, total, seen, norms, lr = len(self.train), 0.0, 0, [], self.schedule.at(epoch)
        for step, idx in self.train.shuffled(gen):
            t = time.perf_counter()
            lr = self.schedule.set(self.optimizer, epoch + step / steps)
            inputs, targets = self.train.take(idx, self.device)
            value, norm = train_step(self.model, self.optimizer, inputs, targets, self.loss, clip=self.clip,
                                     penalty=self.penalty, epoch=epoch)
            total += float(value) * len(idx)  # float() waits for the device, so the step's time is honest
            seen += len(idx)
            self.step_seconds += time.perf_counter() - t
            if norm is not None:
                norms.append(norm)
                self.clipped += bool(self.clip and norm > self.clip)
            for cb in self.callbacks:
                cb.on_step(epoch, epochs, step + 1, steps, total / seen, metric)
        self.items += seen
        record = {"epoch": epoch + 1, "lr": lr, "train_loss": total / max(seen, 1)}
        if self.clip is not None:
            record |= {"grad_norm": float(np.mean(norms)),
                       "clipped": float(np.mean([n > self.clip for n in norms])) if self.clip else 0.0}
        return record


def _keep_best(model: nn.Module, state: LoopState, metric: float) -> None:
    """A better metric (NaN never is) keeps a copy of the weights; otherwise one more epoch without progress."""
    if metric > state.best:
        state.best, state.best_epoch, state.bad_epochs = metric, state.epoch, 0
        state.best_state = copy.deepcopy(model.state_dict())
    else:
        state.bad_epochs += 1


def fit(model: nn.Module, train: Batches, val: Validation, loss: LossFn, optimizer: torch.optim.Optimizer,
        schedule: Schedule, *, epochs: int, seed: int = 0, patience: int = 0, clip: float | None = None,
        penalty: Callable[[Tensor, int], Tensor] | None = None, callbacks: Sequence[Callback] = (),
        device: torch.device | str = "cpu", start: LoopState | None = None) -> TrainReport:
    """Train `model` (already on `device`) for up to `epochs` epochs; return with the best epoch's weights in it.

    Each epoch draws a new order of `train` from a generator seeded with `seed`, so the same seed (with the
    global generators seeded before the model was built: `seed_everything`) gives the same run. patience:
    stop after this many epochs without a better validation metric (0: never). clip: see `train_step`.
    penalty(loss, epoch): the loss with a weight penalty added (L1/L2 from some epoch on). start: a
    `LoopState` to resume from (its epochs are not run again, and their shuffles are drawn and skipped).
    """
    if epochs < 1:
        raise DataError(f"epochs must be ≥ 1, not {epochs}")
    dev = torch.device(device)
    state = start or LoopState(epochs)
    state.epochs = epochs
    loop = _Epochs(model, train, loss, optimizer, schedule, clip, penalty, callbacks, dev)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(state.epoch):  # the shuffles an uninterrupted run drew
        torch.randperm(train.size, generator=gen)
    metric = state.history[-1]["val_metric"] if state.history else None
    t0 = time.perf_counter()
    for epoch in range(state.epoch, epochs):
        record = loop.run(epoch, epochs, gen, metric)
        val_loss, metric = evaluate(model, val, loss, dev)
        state.history.append(record | {"val_loss": val_loss, "val_metric": metric})
        for cb in callbacks:
            cb.on_step(epoch, epochs, len(train), len(train), record["train_loss"], metric)
        state.epoch = epoch + 1
        _keep_best(model, state, metric)
        for cb in callbacks:
            cb.on_epoch(state)
        if patience and state.bad_epochs >= patience:
            break
    seconds = time.perf_counter() - t0
    if state.best_state is not None:  # None only if every validation metric was NaN
        model.load_state_dict(state.best_state)
    report = TrainReport(
        metric_name=val.name, best_metric=state.best, best_epoch=state.best_epoch, epochs_run=len(state.history),
        steps=len(train) * len(state.history), clipped_steps=loop.clipped, history=state.history, seconds=seconds,
        items_per_s=loop.items / seconds if seconds > 0 else 0.0,
        train_items_per_s=loop.items / loop.step_seconds if loop.step_seconds > 0 else 0.0,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, device=str(dev),
        parameters=sum(p.numel() for p in model.parameters()), train_size=train.size, val_size=val.batches.size)
    for cb in callbacks:
        report = cb.on_end(report)
    return report
