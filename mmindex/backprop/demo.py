"""Train a small net with the engine on Fashion-MNIST in well under a minute, print the learning curve, write a PNG.

    python -m mmindex.backprop.demo [--n-train 10000] [--epochs 6] [--out backprop-demo.png]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mmindex.backprop.data import DatasetMissing, load_fashion_mnist
from mmindex.backprop.graph import Sequential
from mmindex.backprop.losses import SoftmaxCrossEntropy
from mmindex.backprop.modules import Dropout, Linear, ReLU
from mmindex.backprop.optim import SGD, EpochStats, History, Penalty, fit, step_lr


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--out", type=Path, default=Path("backprop-demo.png"))
    a = ap.parse_args(argv)
    try:
        data = load_fashion_mnist(n_train=a.n_train, n_test=2000)
    except DatasetMissing as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    # the lecture's recipe: ReLU, cross-entropy, SGD on shuffled mini-batches, a step schedule,
    # dropout, and a little L2 switched on after a couple of epochs
    net = Sequential(Linear(784, 256, rng=0), ReLU(), Dropout(0.2, rng=1), Linear(256, 128, rng=2), ReLU(),
                     Linear(128, 10, rng=3))
    print(f"MLP 784-256-128-10 ({net.n_params():,} parameters) on {len(data.x_train)} Fashion-MNIST images")
    print("epoch     lr    loss  train acc  test acc   seconds")

    def show(s: EpochStats) -> None:
        print(f"{s.epoch:5d} {s.lr:6.3f} {s.train_loss:7.4f} {100 * s.train_acc:9.2f}% {100 * s.val_acc:8.2f}% "
              f"{s.seconds:8.1f}", flush=True)

    t0 = time.perf_counter()
    history = fit(net, SoftmaxCrossEntropy(), SGD(net, 0.05, momentum=0.9), data.x_train, data.y_train,
                  epochs=a.epochs, batch_size=128, schedule=lambda e: step_lr(e, 0.05, step=4),
                  penalty=Penalty(l2=1e-4, start_epoch=2), validation=(data.x_test, data.y_test), on_epoch=show)
    plot_history(history, a.out, "MLP on Fashion-MNIST (mmindex.backprop)")
    print(f"trained in {time.perf_counter() - t0:.1f} s; learning curve written to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
