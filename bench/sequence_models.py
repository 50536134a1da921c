"""Temporal models (issue 3): Elman, Jordan, LSTM, GRU and the mean-pooling baseline on an order task built
from Fashion-MNIST: each sequence holds one sneaker, one ankle boot and distractors of the other eight
classes; the label says whether the sneaker comes first. Both labels hold the same bag of frames, so mean
pooling is at chance by construction. Frames are a fixed random projection of the raw pixels.

    .venv/bin/python bench/sequence_models.py [--train 5000] [--test 2000] [--lengths 10,30] [--dim 64] [--epochs 15]
    .venv/bin/python bench/sequence_models.py --write-npz out/  # only write out/order-{train,test}.npz

Needs Debian `dataset-fashion-mnist`. Sequences are made from the training images, tested on sequences of
the test images. Prints a markdown table; writes learning curves to docs/img/.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mmindex.learn.data import load_fashion_mnist
from mmindex.learn.sequence import (
    ARCHS,
    SequenceConfig,
    evaluate_sequence,
    frame_features,
    load_sequence_model,
    order_task,
    save_sequences,
    train_sequence,
)

DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"
SNEAKER, ANKLE_BOOT = 7, 9


def features() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    tr, te = load_fashion_mnist("train"), load_fashion_mnist("test")
    return np.stack(tr.sources), tr.classes, np.stack(te.sources), te.classes


def make_data(a: argparse.Namespace, length: int, images=None):
    """(train, test) order-task sequences; disjoint images (Fashion-MNIST's own train/test split)."""
    xtr, ytr, xte, yte = images if images is not None else features()
    ftr, fte = frame_features(xtr, a.dim or None), frame_features(xte, a.dim or None)
    names = ("ankle boot before sneaker", "sneaker before ankle boot")
    kw = dict(length=length, first=SNEAKER, second=ANKLE_BOOT, names=names)
    return order_task(ftr, ytr, a.train, seed=1, **kw), order_task(fte, yte, a.test, seed=2, **kw)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=5000, help="Training sequences (a fifth is held out).")
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--lengths", default="10,30", help="Frames per sequence, one table block per length.")
    ap.add_argument("--dim", type=int, default=64, help="Random projection size; 0 = raw 784 pixels.")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1,
                    help="PyTorch threads (tiny models: on a shared machine more threads wait on each other).")
    ap.add_argument("--write-npz", type=Path, default=None,
                    help="Write order-{train,test}.npz (first of --lengths) here and stop.")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    lengths = [int(v) for v in a.lengths.split(",")]
    images = features()
    if a.write_npz:
        train, test = make_data(a, lengths[0], images)
        a.write_npz.mkdir(parents=True, exist_ok=True)
        save_sequences(a.write_npz / "order-train.npz", train)
        save_sequences(a.write_npz / "order-test.npz", test)
        print(f"wrote {a.write_npz / 'order-train.npz'} and order-test.npz: x {train.x.shape}, y (N,)")
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-seq-"))
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    print(f"order task: {a.train} training sequences (of which 20% validate), {a.test} test sequences, "
          f"frames of {a.dim or 784} features, hidden {a.hidden}, {a.epochs} epochs, Adam, cosine LR, clip 1\n")
    print("| T | model | parameters | test accuracy | val accuracy | best epoch | clipped steps | train s |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    histories: dict[int, dict[str, list[dict]]] = {}
    for length in lengths:
        train, test = make_data(a, length, images)
        histories[length] = {}
        for arch in ARCHS:
            cfg = SequenceConfig(arch=arch, hidden=a.hidden, epochs=a.epochs, clip=1.0, seed=0)
            t0 = time.perf_counter()
            rep = train_sequence(train, tmp / f"{arch}.mmseq", cfg, curves=arch == "lstm" and length == lengths[0])
            seconds = time.perf_counter() - t0
            acc = evaluate_sequence(tmp / f"{arch}.mmseq", test)["accuracy"]
            n_params = sum(p.numel() for p in load_sequence_model(tmp / f"{arch}.mmseq")[0].parameters())
            histories[length][arch] = rep.history
            if rep.curves:
                shutil.copy(rep.curves, DOCS_IMG / "sequence_lstm_curves.png")
            name = "mean pooling + MLP" if arch == "mean" else arch
            print(f"| {length} | {name} | {n_params:,} | **{acc:.3f}** | {rep.best_metric:.3f} | {rep.best_epoch} | "
                  f"{rep.clipped_steps}/{rep.steps} | {seconds:.0f} |", flush=True)

    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot's import
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(lengths), 2, figsize=(9, 3.2 * len(lengths)), dpi=100, squeeze=False)
    for (l, r), length in zip(axes, lengths, strict=True):
        for arch, hist in histories[length].items():
            epochs = [h["epoch"] for h in hist]
            l.plot(epochs, [h["train_loss"] for h in hist], "o-", ms=3, label=arch)
            r.plot(epochs, [h["val_metric"] for h in hist], "o-", ms=3, label=arch)
        l.set(xlabel="epoch", ylabel="training loss", title=f"T = {length} frames")
        r.set(xlabel="epoch", ylabel="validation accuracy", ylim=(0.4, 1.0), title=f"T = {length} frames")
        r.legend(fontsize=8)
    fig.suptitle("Order task (sneaker before ankle boot?) on Fashion-MNIST frames")
    fig.tight_layout()
    fig.savefig(DOCS_IMG / "sequence_models.png")
    plt.close(fig)
    print(f"\nwrote {DOCS_IMG / 'sequence_models.png'} and {DOCS_IMG / 'sequence_lstm_curves.png'}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
