"""Loss functions E = C(X_N, O): `forward(pred, target) -> float` and `backward() -> dE/dX_N`.

The loss of a batch is the mean of the per-sample losses (reduction="mean", as PyTorch, so that the learning
rate does not depend on the batch size), or their sum (reduction="sum", the lecture's E(W) = Σ_i E(W, I_i, O_i)).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

#: Every loss class by name; the tests are generated from it.
LOSSES: dict[str, type[Loss]] = {}


class Loss:
    """Base class: C(X_N, O) for a batch, and its gradient dE/dX_N = ∂C(X_N, O)/∂X_N."""

    registry: ClassVar[dict[str, type[Loss]]] = LOSSES

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        LOSSES[cls.__name__] = cls

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', not {reduction!r}")
        self.reduction = reduction

    def _scale(self, n: int) -> float:
        return 1.0 / n if self.reduction == "mean" else 1.0

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        """E = C(X_N, O) over the batch."""
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        """dE/dX_N for the last `forward`."""
        raise NotImplementedError

    def __call__(self, pred: np.ndarray, target: np.ndarray) -> float:
        return self.forward(pred, target)

    def accuracy(self, pred: np.ndarray, target: np.ndarray) -> float | None:
        """Fraction of correct predictions, where the loss defines one (None otherwise)."""
        return None


def _one_hot(target: np.ndarray, n: int, dtype) -> np.ndarray:
    """Integer class ids → one-hot rows; float targets (one-hot or soft) pass through."""
    if np.issubdtype(target.dtype, np.integer):
        out = np.zeros((len(target), n), dtype=dtype)
        out[np.arange(len(target)), target] = 1
        return out
    return target.astype(dtype, copy=False)


def log_softmax(y: np.ndarray) -> np.ndarray:
    """log Z_i = y_i − log Σ_j e^(y_j), with the maximum subtracted first (log-sum-exp, never overflows)."""
    s = y - y.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def softmax(y: np.ndarray) -> np.ndarray:
    """Softmax Z_i = e^(y_i) / Σ_j e^(y_j)."""
    return np.exp(log_softmax(y))


class MSE(Loss):
    """Squared error E = ½ Σ_p (f_p(θ, x) − y_p)² per sample (the lecture's multi-label loss)."""

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        self.diff, self.s = pred - target, self._scale(len(pred))
        return float(0.5 * np.sum(self.diff**2) * self.s)  # E = ½ Σ (X_N − O)²

    def backward(self) -> np.ndarray:
        return self.diff * self.s  # dE/dX_N = X_N − O

    def accuracy(self, pred: np.ndarray, target: np.ndarray) -> float | None:
        if pred.ndim == 2 and pred.shape[1] > 1:
            return float(np.mean(pred.argmax(1) == target.argmax(1)))
        return None


class SoftmaxCrossEntropy(Loss):
    """Softmax then cross-entropy, for exclusive classes: L = −Σ_i l_i log p_i (= −log p_i0 for one class).

    `pred` are the scores y (logits); `target` is class ids (B,) or one-hot / probability rows (B, C).
    """

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        logp = log_softmax(pred)  # log p_i, with p = softmax(y)
        self.l, self.p, self.s = _one_hot(target, pred.shape[1], pred.dtype), np.exp(logp), self._scale(len(pred))
        return float(-np.sum(self.l * logp) * self.s)  # cross-entropy: L = Σ_i −(l_i log p_i)

    def backward(self) -> np.ndarray:
        # softmax + cross-entropy: dL/dy_i = p_i − l_i (when Σ_i l_i = 1)
        return (self.p * self.l.sum(axis=1, keepdims=True) - self.l) * self.s

    def accuracy(self, pred: np.ndarray, target: np.ndarray) -> float | None:
        t = target if np.issubdtype(target.dtype, np.integer) else target.argmax(1)
        return float(np.mean(pred.argmax(1) == t))


class SigmoidCrossEntropy(Loss):
    """Sigmoid then cross-entropy per label, for non-exclusive labels (multi-label); soft targets allowed:
    L = Σ_i −(l_i log p_i + (1 − l_i) log(1 − p_i)), p_i = 1 / (1 + e^(−y_i)).
    """

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        self.y, self.l, self.s = pred, target.astype(pred.dtype, copy=False), self._scale(len(pred))
        # stable form of the sum above: max(y, 0) − y·l + log(1 + e^(−|y|))
        loss = np.maximum(pred, 0) - pred * self.l + np.log1p(np.exp(-np.abs(pred)))
        return float(np.sum(loss) * self.s)

    def backward(self) -> np.ndarray:
        p = 0.5 * (1.0 + np.tanh(0.5 * self.y))
        return (p - self.l) * self.s  # dL/dy_i = p_i − l_i

    def accuracy(self, pred: np.ndarray, target: np.ndarray) -> float | None:
        return float(np.mean((pred > 0) == (target > 0.5)))
