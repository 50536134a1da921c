"""Learning-rate schedules: pure functions of the epoch (nanoGPT's `get_lr` style), no optimizer state.

The lecture's policy is the step decay: "constant during a number of epochs, then divide by a given
factor". Cosine annealing is offered as the smooth alternative. Both may start with a linear warm-up.
"""

from __future__ import annotations

import math

SCHEDULES = ("step", "cosine", "constant")


def step_decay(epoch: float, base_lr: float, every: int, factor: float) -> float:
    """η(t) = base_lr / factor^⌊epoch / every⌋: constant for `every` epochs, then divided by `factor`."""
    if every <= 0:
        return base_lr
    return base_lr / factor ** math.floor(epoch / every)


def cosine(epoch: float, base_lr: float, total: int, min_lr: float = 0.0) -> float:
    """η(t) = min_lr + (base_lr − min_lr)·(1 + cos(π·epoch/total))/2, from base_lr at 0 to min_lr at `total`."""
    t = min(max(epoch / max(total, 1), 0.0), 1.0)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


def learning_rate(epoch: float, base_lr: float, schedule: str, *, total: int, every: int = 10,
                  factor: float = 10.0, warmup: float = 0.0) -> float:
    """The LR at a (fractional) epoch for `schedule` in SCHEDULES, after an optional linear warm-up."""
    if schedule == "step":
        lr = step_decay(epoch, base_lr, every, factor)
    elif schedule == "cosine":
        lr = cosine(epoch, base_lr, total)
    elif schedule == "constant":
        lr = base_lr
    else:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if warmup > 0 and epoch < warmup:
        lr *= (epoch + 1e-9) / warmup
    return lr
