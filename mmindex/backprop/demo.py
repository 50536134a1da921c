"""Train a small net with the engine on Fashion-MNIST in well under a minute: the learning curve, and its PNG.

    mmindex learn-demo [--n-train 10000] [--epochs 6] [--out out/backprop-demo.png]
    python -m mmindex.backprop.demo            (the defaults, written to backprop-demo.png)

    from mmindex.backprop.demo import run_demo
    result = run_demo("curve.png", n_train=1000, epochs=2)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mmindex.backprop.data import load_fashion_mnist
from mmindex.backprop.graph import Sequential
from mmindex.backprop.losses import SoftmaxCrossEntropy
from mmindex.backprop.modules import Dropout, Linear, ReLU
from mmindex.backprop.optim import SGD, EpochStats, History, Penalty, fit, step_lr
from mmindex.errors import DataError

log = logging.getLogger(__name__)
NETWORK = "MLP 784-256-128-10"
EPOCH_HEADER = "epoch     lr    loss  train acc  test acc   seconds"


def plot_history(history: History, path: Path, title: str) -> None:
    """Training loss and train/test accuracy against the epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = history.column("epoch")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    a1.plot(ep, history.column("train_loss"), "o-")
    a1.set(xlabel="epoch", ylabel="training loss E", title=title)
    a2.plot(ep, [100 * v for v in history.column("train_acc")], "o-", label="train")
    a2.plot(ep, [100 * v for v in history.column("val_acc")], "s--", label="test")
    a2.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    a2.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


@dataclass
class DemoResult:
    """What `run_demo` did: the learning curve (one `EpochStats` per epoch) and where its PNG went."""

    history: History
    out: Path
    parameters: int
    images: int
    seconds: float


def run_demo(out: str | Path = "backprop-demo.png", n_train: int = 10000, epochs: int = 6,
             on_epoch: Callable[[EpochStats], None] | None = None) -> DemoResult:
    """Train an MLP 784-256-128-10 on `n_train` Fashion-MNIST images for `epochs` epochs, test it on 2000,
    and write the learning curve to `out`. Raises `DatasetMissing` when the images are not installed."""
    if n_train < 1 or epochs < 1:
        raise DataError("the demo needs n_train >= 1 and epochs >= 1")
    out = Path(out)
    data = load_fashion_mnist(n_train=n_train, n_test=2000)
    # the lecture's recipe: ReLU, cross-entropy, SGD on shuffled mini-batches, a step schedule,
    # dropout, and a little L2 switched on after a couple of epochs
    net = Sequential(Linear(784, 256, rng=0), ReLU(), Dropout(0.2, rng=1), Linear(256, 128, rng=2), ReLU(),
                     Linear(128, 10, rng=3))
    log.info("%s (%s parameters) on %d Fashion-MNIST images", NETWORK, f"{net.n_params():,}", len(data.x_train))
    t0 = time.perf_counter()
    history = fit(net, SoftmaxCrossEntropy(), SGD(net, 0.05, momentum=0.9), data.x_train, data.y_train,
                  epochs=epochs, batch_size=128, schedule=lambda e: step_lr(e, 0.05, step=4),
                  penalty=Penalty(l2=1e-4, start_epoch=2), validation=(data.x_test, data.y_test), on_epoch=on_epoch)
    seconds = time.perf_counter() - t0
    plot_history(history, out, f"{NETWORK.split()[0]} on Fashion-MNIST (mmindex.backprop)")
    return DemoResult(history, out, net.n_params(), len(data.x_train), seconds)


def epoch_line(s: EpochStats) -> str:
    """One row of the learning-curve table whose header is `EPOCH_HEADER`."""
    return (f"{s.epoch:5d} {s.lr:6.3f} {s.train_loss:7.4f} {100 * s.train_acc:9.2f}% {100 * s.val_acc:8.2f}% "
            f"{s.seconds:8.1f}")


if __name__ == "__main__":  # `python -m mmindex.backprop.demo`, with the defaults; `mmindex learn-demo` has options
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = run_demo()  # fit logs each epoch
    log.info("trained in %.1f s; learning curve written to %s", result.seconds, result.out)
