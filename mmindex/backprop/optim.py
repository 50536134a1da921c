"""Training: W(t + 1) = W(t) − η(t) · dE/dW, on shuffled mini-batches, with a step schedule and L1/L2 penalties."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from mmindex.backprop.losses import Loss
from mmindex.backprop.modules import Module

log = logging.getLogger(__name__)


class SGD:
    """Stochastic gradient descent with optional momentum and weight decay (PyTorch's conventions):

    v ← μ·v + (dE/dW + λ·W);  W ← W − η·v.  With μ = λ = 0 this is the lecture's W = W − η · dE/dW.
    `params_and_grads` is a module or (W, dE/dW) pairs of arrays, updated in place.
    """

    def __init__(self, params_and_grads: Module | Iterable[tuple[np.ndarray, np.ndarray]], lr: float,
                 momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        if isinstance(params_and_grads, Module):
            m = params_and_grads
            params_and_grads = [(m.params[k], m.grads[k]) for k in m.params]
        self.pairs = list(params_and_grads)
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.velocity = [np.zeros_like(p) for p, _ in self.pairs] if momentum else []

    def step(self) -> None:
        """Apply one update with the accumulated gradients."""
        for i, (w, g) in enumerate(self.pairs):
            d = g + self.weight_decay * w if self.weight_decay else g
            if self.momentum:
                v = self.velocity[i]
                v *= self.momentum
                v += d
                d = v
            w -= self.lr * d  # update: W = W − η · dE/dW

    def zero_grad(self) -> None:
        """Reset every accumulated gradient."""
        for _, g in self.pairs:
            g[...] = 0


def step_lr(epoch: int, lr0: float, step: int = 10, factor: float = 10.0) -> float:
    """Step schedule: η constant during `step` epochs, then divided by `factor` (epoch counts from 0)."""
    return lr0 / factor ** (epoch // step)


@dataclass
class Penalty:
    """L1 and L2 penalties λ1·Σ|W| + ½λ2·Σ W² on the weights (not the biases), switched on at `start_epoch`
    ("best to turn it on after a couple of epochs"). Their gradients λ1·sign(W) + λ2·W join dE/dW."""

    l1: float = 0.0
    l2: float = 0.0
    start_epoch: int = 0

    @staticmethod
    def is_weight(name: str) -> bool:
        """Weights are W, U and K matrices; biases B, b and PReLU's α are left alone."""
        return name.rsplit(".", 1)[-1][:1] in ("W", "U", "K")

    def add_gradients(self, model: Module, epoch: int) -> None:
        """Add the penalty's gradient to the weights' accumulated gradients, from `start_epoch` on."""
        if epoch < self.start_epoch or not (self.l1 or self.l2):
            return
        params, grads = model.params, model.grads
        for k, w in params.items():
            if self.is_weight(k):
                grads[k] += self.l1 * np.sign(w) + self.l2 * w


@dataclass
class EpochStats:
    """One row of the learning curve."""

    epoch: int
    lr: float
    train_loss: float
    train_acc: float | None
    seconds: float
    val_loss: float | None = None
    val_acc: float | None = None


@dataclass
class History:
    """The learning curve returned by `fit`."""

    epochs: list[EpochStats] = field(default_factory=list)

    def column(self, name: str) -> list:
        """One field of every epoch, e.g. `history.column("val_acc")`."""
        return [getattr(e, name) for e in self.epochs]


def evaluate(model: Module, loss: Loss, x: np.ndarray, y: np.ndarray, batch_size: int = 1000
             ) -> tuple[float, float | None]:
    """Mean loss and accuracy of `model` in prediction mode (restores the previous mode)."""
    was_training = model.training
    model.eval()
    total, correct, n_acc = 0.0, 0.0, 0
    for i in range(0, len(x), batch_size):
        pred = model.forward(x[i : i + batch_size])
        total += loss.forward(pred, y[i : i + batch_size]) * (len(pred) if loss.reduction == "mean" else 1)
        acc = loss.accuracy(pred, y[i : i + batch_size])
        if acc is not None:
            correct, n_acc = correct + acc * len(pred), n_acc + len(pred)
    model.train(was_training)
    return total / len(x), (correct / n_acc if n_acc else None)


def fit(model: Module, loss: Loss, optimizer: SGD, x: np.ndarray, y: np.ndarray, epochs: int,
        batch_size: int = 64, schedule: Callable[[int], float] | None = None, penalty: Penalty | None = None,
        validation: tuple[np.ndarray, np.ndarray] | None = None, rng: np.random.Generator | int | None = 0,
        on_epoch: Callable[[EpochStats], None] | None = None) -> History:
    """Train on shuffled mini-batches: forward, loss, backward, accumulate, update (the lecture's recipe).

    `schedule(epoch)` gives η for each epoch (e.g. `lambda e: step_lr(e, 0.1, 5)`). The order of the samples
    is `rng.permutation(len(x))` for each epoch, so another framework can replay it. Each epoch's
    loss and accuracy go to the log and to `on_epoch`; the learning curve is returned.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    history = History()
    for epoch in range(epochs):
        if schedule is not None:
            optimizer.lr = schedule(epoch)
        model.train()
        t0, total, correct, n_acc = time.perf_counter(), 0.0, 0.0, 0
        for idx in np.array_split(rng.permutation(len(x)), max(1, -(-len(x) // batch_size))):
            xb, yb = x[idx], y[idx]
            optimizer.zero_grad()
            pred = model.forward(xb)  # forward pass: X_n = F_n(W_n, X_{n−1})
            total += loss.forward(pred, yb) * (len(idx) if loss.reduction == "mean" else 1)  # E = C(X_N, O)
            model.backward(loss.backward())  # data and parameter backward passes
            if penalty is not None:
                penalty.add_gradients(model, epoch)
            optimizer.step()  # W = W − η Σ_i dE/dW (W, I_i, O_i)
            acc = loss.accuracy(pred, yb)
            if acc is not None:
                correct, n_acc = correct + acc * len(idx), n_acc + len(idx)
        stats = EpochStats(epoch + 1, optimizer.lr, total / len(x), correct / n_acc if n_acc else None,
                           time.perf_counter() - t0)
        if validation is not None:
            stats.val_loss, stats.val_acc = evaluate(model, loss, *validation)
        history.epochs.append(stats)
        log.info("epoch %d lr %.4g loss %.4f acc %s val_acc %s (%.1f s)", stats.epoch, stats.lr, stats.train_loss,
                 stats.train_acc, stats.val_acc, stats.seconds)
        if on_epoch is not None:
            on_epoch(stats)
    return history
