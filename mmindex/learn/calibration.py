"""Calibrated scores: detector outputs become probabilities whose threshold means something.

Both are fitted on the validation split, after training, by minimising the negative log-likelihood
with L-BFGS; they are monotone, so rankings (AP, top-k) do not change.
- Temperature scaling (Guo et al. 2017) for softmax heads: p = softmax(z / T), one scalar T > 0.
- Platt scaling (Platt 1999) for sigmoid heads: p_i = σ(a_i·z_i + b_i), one (a, b) per label.
"""

from __future__ import annotations

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
