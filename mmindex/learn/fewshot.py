"""The few-shot recipe for probe detectors (issue 17): a linear head fitted in full batch, its L2 chosen by
cross-validation on the training set.

With 5 to a few hundred images per concept, the lecture's recipe (SGD on standardised features, a
small fixed L2, early stopping on a validation split of a handful of images) over-fits and saturates:
scores of 1e-42 that float16 index columns store as ties. On the same frozen features, an L2-regularised
logistic regression does much better. This module fits exactly that, and writes the solution into the
detector's own linear head, so bundles, `evaluate` and `apply` are unchanged:

    input        the stored embeddings as they are (already L2-normalised by the backbone): the detector's
                 normalisation is set to the identity (standardising them was worse with few images)
    objective    mean cross-entropy + ‖W‖² / (2·C·N), the bias unpenalised: scikit-learn's
                 `LogisticRegression(C)` objective (½‖W‖² + C·Σ loss) divided by C·N, so the optimum is the
                 same (tested); per-label sigmoid (one-vs-rest) or softmax, soft targets allowed
    solver       full-batch L-BFGS in float64 (PyTorch), warm-started along the C path
    C            chosen among `C_GRID` by k-fold cross-validation on the training set (the lowest out-of-fold
                 cross-entropy: smooth where out-of-fold MAP ties, and a little better on Fashion-MNIST's
                 validation images); with too few images per label to fold, `DEFAULT_C`

Measured on Fashion-MNIST validation images (docs/benchmarks.md, "Few-shot concepts"), it beats
scikit-learn's default `LogisticRegression()` at every size from 5 to 100 positives per concept, and
prototype and cosine-kNN scores by far. Larger sets, MLP heads, MSE, finetune and scratch keep the
lecture's SGD recipe.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmindex.learn.fit import Callback, Validation, evaluate, loss_fn
from mmindex.learn.model import Detector
from mmindex.learn.report import TrainReport

#: Training images up to which `recipe auto` fits probe detectors with this recipe (full batch stays cheap).
MAX_IMAGES = 5000
#: Inverse L2 strengths tried by cross-validation (scikit-learn's C), and the one used when it cannot run.
C_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)
DEFAULT_C = 10.0
FOLDS = 5
#: L-BFGS iterations per cross-validation fit: enough to rank the C values, not to converge to 1e-10.
CV_ITERATIONS = 300
LOSSES = ("sigmoid", "softmax")


@dataclass
class LinearFit:
    """A fitted linear head: logits = x @ weight.T + bias, and how C was chosen."""

    weight: np.ndarray  # (L, D)
    bias: np.ndarray  # (L,)
    c: float
    folds: int  # 0: C was not cross-validated (too few images per label)
    cv_loss: dict[float, float] = field(default_factory=dict)  # out-of-fold cross-entropy per C tried
    history: list[dict] = field(default_factory=list)  # per chunk of L-BFGS iterations of the final fit
    seconds: float = 0.0


def applies(mode: str, head: str, loss: str, recipe: str, n_train: int) -> bool:
    """Whether a run fits its head with this recipe: `recipe` "fewshot", or "auto" with at most `MAX_IMAGES`
    training images, for a probe with a linear head and a sigmoid or softmax loss."""
    if recipe == "sgd" or mode != "probe" or head != "linear" or loss not in LOSSES:
        return False
    return recipe == "fewshot" or n_train <= MAX_IMAGES


def cross_entropy(z: Tensor, t: Tensor, loss: str) -> Tensor:
    """Mean over items of the summed per-label sigmoid cross-entropy, or of the softmax cross-entropy."""
    if loss == "sigmoid":
        return F.binary_cross_entropy_with_logits(z, t, reduction="sum") / len(z)
    return -(t / t.sum(1, keepdim=True).clamp(min=1e-12) * z.log_softmax(1)).sum(1).mean()


def _objective(x: Tensor, t: Tensor, w: Tensor, b: Tensor, loss: str, c: float) -> Tensor:
    return cross_entropy(x @ w.T + b, t, loss) + w.square().sum() / (2 * c * len(x))


def fit_logistic(x: Tensor, targets: Tensor, loss: str, c: float, init: tuple[Tensor, Tensor] | None = None,
                 max_iter: int = 1000, dtype: torch.dtype = torch.float64, on_chunk=None) -> tuple[Tensor, Tensor]:
    """(weight (L, D), bias (L,)) minimising `_objective` by full-batch L-BFGS (float64: scikit-learn's optimum
    to its tolerance; float32 is twice as fast, for cross-validation).

    `on_chunk(iterations, w, b)` is called after every 25 iterations (the final fit's learning curve).
    """
    x, t = x.to(dtype), targets.to(dtype)
    w = (init[0].to(dtype).clone() if init else torch.zeros(t.shape[1], x.shape[1], dtype=dtype))
    b = (init[1].to(dtype).clone() if init else torch.zeros(t.shape[1], dtype=dtype))
    w.requires_grad_(True)
    b.requires_grad_(True)
    chunk = 25
    exact = dtype == torch.float64  # float32: a looser stop, which its rounding can reach
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=chunk, history_size=20, tolerance_grad=1e-9 if exact else 1e-5,
                            tolerance_change=1e-12 if exact else 1e-7, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        value = _objective(x, t, w, b, loss, c)
        value.backward()
        return value

    done, last, tol = 0, None, 1e-10 if exact else 1e-6
    while done < max_iter:
        value = float(opt.step(closure).detach())
        done += chunk
        if on_chunk:
            on_chunk(done, w.detach(), b.detach())
        if last is not None and abs(last - value) <= tol * max(1.0, abs(value)):
            break  # L-BFGS stopped moving: converged
        last = value
    return w.detach(), b.detach()


def _folds(targets: np.ndarray, multilabel: bool, seed: int) -> list[np.ndarray] | None:
    """Validation index sets of a stratified k-fold split (k ≤ `FOLDS`), or None when a label has under 2 positives
    or 2 negatives. Strata: the class (exclusive classes), or each item's rarest positive label, items with none
    forming a stratum of their own (label sets: a single taught concept spreads its few positives over the folds)."""
    relevant = targets > 0.5
    positives = relevant.sum(0)
    k = int(min(FOLDS, positives.min(), (~relevant).sum(0).min()))
    if k < 2:
        return None
    if multilabel:
        key = np.where(relevant.any(1), np.where(relevant, positives, np.inf).argmin(1), -1)
    else:
        key = targets.argmax(1)
    rng = np.random.default_rng(seed)
    fold, start = np.empty(len(targets), int), int(rng.integers(k))
    for stratum in np.unique(key):
        idx = rng.permutation(np.flatnonzero(key == stratum))
        fold[idx] = (np.arange(len(idx)) + start) % k  # round robin, continued across strata: folds of equal size
        start += len(idx)
    return [np.flatnonzero(fold == f) for f in range(k)]


def choose_c(x: Tensor, targets: Tensor, loss: str, multilabel: bool, seed: int = 0) -> tuple[float, int, dict]:
    """(C, folds, out-of-fold cross-entropy per C): the C of `C_GRID` whose out-of-fold logits have the lowest
    cross-entropy; (`DEFAULT_C`, 0, {}) when some label has too few images to fold."""
    folds = _folds(targets.numpy(), multilabel, seed)
    if folds is None:
        return DEFAULT_C, 0, {}
    oof = {c: torch.zeros(targets.shape) for c in C_GRID}
    for held in folds:
        keep = np.setdiff1d(np.arange(len(targets)), held)
        init = None
        for c in C_GRID:  # increasing C: each fit starts from the previous, more regularised, solution
            init = fit_logistic(x[keep], targets[keep], loss, c, init, max_iter=CV_ITERATIONS, dtype=torch.float32)
            oof[c][held] = x[held] @ init[0].T + init[1]
    cv = {c: float(cross_entropy(oof[c], targets, loss)) for c in C_GRID}
    return min(C_GRID, key=cv.__getitem__), len(folds), cv


@contextmanager
def one_thread() -> Iterator[None]:
    """PyTorch on one thread for the duration: these full-batch problems are small (a few thousand rows), so
    threads cost more in synchronisation than they save, and on a busy CPU a fit took 20× longer with two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fit_head(x: Tensor, targets: Tensor, loss: str, multilabel: bool, seed: int = 0,
             on_val=None) -> LinearFit:
    """Choose C by cross-validation, then fit the linear head on all of (x (N, D) features, targets (N, L) in
    [0, 1]); loss "sigmoid" or "softmax"; multilabel: label sets rather than exclusive classes (the folds' strata).

    `on_val(w, b) -> (val_loss, val_metric)`, if given, fills the final fit's history (one entry per 25
    L-BFGS iterations, each a full pass over the data: an "epoch" of the learning curves)."""
    with one_thread():
        return _fit_head(x, targets, loss, multilabel, seed, on_val)


def _fit_head(x: Tensor, targets: Tensor, loss: str, multilabel: bool, seed: int, on_val) -> LinearFit:
    t0 = time.perf_counter()
    c, k, cv = choose_c(x, targets, loss, multilabel, seed)
    history: list[dict] = []
    xd, td = x.double(), targets.double()

    def on_chunk(iterations, w, b):
        if on_val is None:
            return
        val_loss, val_metric = on_val(w.float(), b.float())
        history.append({"epoch": len(history) + 1, "iterations": iterations, "lr": 1.0,
                        "train_loss": float(_objective(xd, td, w, b, loss, c)), "val_loss": val_loss,
                        "val_metric": val_metric})

    w, b = fit_logistic(x, targets, loss, c, on_chunk=on_chunk)
    return LinearFit(w.float().numpy(), b.float().numpy(), c, k, cv, history, time.perf_counter() - t0)


def fit_detector(model: Detector, x: Tensor, targets: Tensor, val: Validation, multilabel: bool, seed: int = 0,
                 callbacks: Sequence[Callback] = ()) -> TrainReport:
    """Fit a probe detector's linear head by this recipe, on the CPU, in place of `fit`'s SGD loop.

    The detector's normalisation becomes the identity (the head reads the stored embeddings as they are). The
    report's history has one "epoch" per 25 L-BFGS iterations of the final fit (each a full pass over the data),
    with the validation loss and metric; `recipe` says what was done. Callbacks get `on_end` (learning curves).
    """
    model.cpu()
    model.mean.zero_()
    model.std.fill_(1.0)

    def on_val(w: Tensor, b: Tensor) -> tuple[float, float]:
        _set_head(model, w, b)
        return evaluate(model, val, lambda z, t: loss_fn(model.loss, z, t), torch.device("cpu"))

    fitted = fit_head(x, targets, model.loss, multilabel, seed, on_val)
    _set_head(model, torch.from_numpy(fitted.weight), torch.from_numpy(fitted.bias))
    model.eval()
    last = fitted.history[-1] if fitted.history else {}
    epochs = len(fitted.history)
    report = TrainReport(
        parameters=sum(p.numel() for p in model.parameters()), train_size=len(x), val_size=val.batches.size,
        metric_name=val.name, best_metric=last.get("val_metric", float("nan")), best_epoch=epochs, epochs_run=epochs,
        steps=epochs, history=fitted.history, seconds=fitted.seconds,
        items_per_s=len(x) * epochs / fitted.seconds if fitted.seconds > 0 else 0.0,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        recipe={"name": "fewshot", "C": fitted.c, "cv_folds": fitted.folds,
                "cv_loss": {str(c): round(v, 4) for c, v in fitted.cv_loss.items()}})
    for cb in callbacks:
        report = cb.on_end(report)
    return report


def _set_head(model: Detector, w: Tensor, b: Tensor) -> None:
    linear = model.head.net[-1]
    with torch.no_grad():
        linear.weight.copy_(w)
        linear.bias.copy_(b)


def refit(model: Detector, x: Tensor, targets: Tensor, c: float) -> None:
    """Fit the head again with the chosen C on (x, targets): `train` gives it the training and the validation images
    when it split the validation images off the user's own (with 5 images per class, one in five is held out).
    The calibration fitted on the held-out images is kept: the refit's logits are on the same scale."""
    with one_thread():
        w, b = fit_logistic(x, targets, model.loss, c)
    _set_head(model, w.float(), b.float())
