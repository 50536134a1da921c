"""Calibrated scores: detector outputs become probabilities whose threshold means something.

Both are fitted on the validation split, after training, by minimising the negative log-likelihood
with L-BFGS; they are monotone, so rankings (AP, top-k) do not change.
- Temperature scaling (Guo et al. 2017) for softmax heads: p = softmax(z / T), one scalar T > 0.
- Platt scaling (Platt 1999) for sigmoid heads: p_i = σ(a_i·z_i + b_i), one (a, b) per label.
A fitted scaling is kept only if it lowers the expected calibration error on the validation split
(`fit_calibration`): a better likelihood on a few images can still mean worse-calibrated scores (issue 17).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def fit_temperature(logits: Tensor, classes: Tensor, steps: int = 100) -> float:
    """T minimising the cross-entropy of softmax(logits / T) on (logits (N, C), classes (N,))."""
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=steps, line_search_fn="strong_wolfe")
    logits = logits.detach().float()

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), classes)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().exp())
    return t if 1e-3 < t < 1e3 else 1.0


def fit_platt(logits: Tensor, targets: Tensor, steps: int = 100) -> tuple[Tensor, Tensor]:
    """(a, b), each (C,), minimising the binary cross-entropy of σ(a·z + b) per label on (N, C) logits."""
    c = logits.shape[1]
    a = torch.ones(c, requires_grad=True)
    b = torch.zeros(c, requires_grad=True)
    opt = torch.optim.LBFGS([a, b], lr=0.1, max_iter=steps, line_search_fn="strong_wolfe")
    z, y = logits.detach().float(), targets.detach().float()

    def closure():
        opt.zero_grad()
        # A small L2 pull towards the identity keeps labels with few validation positives sane.
        loss = F.binary_cross_entropy_with_logits(a * z + b, y) + 1e-3 * ((a - 1).square().sum() + b.square().sum())
        loss.backward()
        return loss

    opt.step(closure)
    a_, b_ = a.detach(), b.detach()
    if not (torch.isfinite(a_).all() and torch.isfinite(b_).all()):
        return torch.ones(c), torch.zeros(c)
    return a_.clamp(min=1e-3), b_


def expected_calibration_error(probs: Tensor, correct: Tensor, bins: int = 15) -> float:
    """ECE: Σ_bins |accuracy − confidence| weighted by the bin's share of samples (confidence = top prob)."""
    conf = probs.detach().float()
    edges = torch.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += float(m.float().mean() * (correct[m].float().mean() - conf[m].mean()).abs())
    return ece


@dataclass
class Calibration:
    """A scaling fitted on validation logits, and the validation ECE without and with it.

    method: "temperature" (softmax; ECE of the top label) or "platt" (sigmoid; ECE over every (item, label)
    pair, each probability against its 0/1 target). `ece_after` is measured out of fold (see `fit_calibration`)."""

    method: str
    ece_before: float
    ece_after: float
    temperature: float = 1.0
    platt_a: Tensor | None = None
    platt_b: Tensor | None = None

    @property
    def kept(self) -> bool:
        """Keep the scaling only if it lowers the validation ECE."""
        return self.ece_after < self.ece_before

    def summary(self) -> dict:
        """What the report and the bundle record: the method, whether it was kept, ECE before and after."""
        out = {"method": self.method, "kept": self.kept, "ece_before": self.ece_before, "ece_after": self.ece_after}
        return out | ({"temperature": self.temperature} if self.method == "temperature" else {})


def _fit(z: Tensor, targets: Tensor, method: str) -> dict:
    if method == "temperature":
        return {"temperature": fit_temperature(z, targets.argmax(1))}
    a, b = fit_platt(z, targets)
    return {"platt_a": a, "platt_b": b}


def _probabilities(z: Tensor, method: str, params: dict) -> Tensor:
    """The scaled probabilities; the identity scaling for empty `params`."""
    if method == "temperature":
        return (z / params.get("temperature", 1.0)).softmax(1)
    return torch.sigmoid(params.get("platt_a", 1.0) * z + params.get("platt_b", 0.0))


def _ece(p: Tensor, targets: Tensor, method: str) -> float:
    if method == "temperature":
        return expected_calibration_error(p.max(1).values, p.argmax(1) == targets.argmax(1))
    return expected_calibration_error(p.flatten(), (targets > 0.5).flatten())


def fit_calibration(logits: Tensor, targets: Tensor, loss: str, multilabel: bool, seed: int = 0) -> Calibration | None:
    """Temperature scaling for a softmax head on exclusive classes, Platt scaling for a sigmoid head, fitted on
    (logits (N, C), targets (N, C)); None for other heads (MSE, softmax on label sets).

    Its ECE is measured out of fold: fitted on one random half of the items and measured on the other, and the
    other way round; measured on the items it was fitted on, a scaling looks better than it is (a few validation
    images are all it has). The scaling returned is fitted on every item; with fewer than 2 items it is not kept."""
    z, targets = logits.detach().float(), targets.detach().float()
    if loss == "softmax" and not multilabel:
        method = "temperature"
    elif loss == "sigmoid":
        method = "platt"
    else:
        return None
    before = _ece(_probabilities(z, method, {}), targets, method)
    if len(z) < 2:
        return Calibration(method, before, before)
    order = torch.randperm(len(z), generator=torch.Generator().manual_seed(seed))
    halves = (order[: len(z) // 2], order[len(z) // 2:])
    after = torch.empty_like(z)
    for fit_on, measure_on in (halves, halves[::-1]):
        after[measure_on] = _probabilities(z[measure_on], method, _fit(z[fit_on], targets[fit_on], method))
    return Calibration(method, before, _ece(after, targets, method), **_fit(z, targets, method))
