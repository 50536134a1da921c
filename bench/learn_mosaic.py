"""Multi-label 2×2 Fashion-MNIST mosaics (issue 4): a scratch CNN with a sigmoid head against the same
CNN with a softmax head, test MAP.

    python bench/learn_mosaic.py [--train 20000] [--test 5000] [--epochs 10] [--device auto]

Each 56×56 mosaic holds four test (or training) images and is labelled with the set of classes it
contains (1 to 4 labels). Training mosaics are made of training images only, test mosaics of test
images only. Needs Debian `dataset-fashion-mnist`. Prints a markdown table; writes the learning
curves to docs/img/learn_mosaic_scratch_<loss>.png.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from mmindex.evaluate import metrics
from mmindex.learn import TrainConfig, train
from mmindex.learn.checkpoint import load_bundle
from mmindex.learn.data import FASHION_MNIST_LABELS, load_fashion_mnist, mosaics

DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=20000, help="training mosaics")
    ap.add_argument("--test", type=int, default=5000, help="test mosaics")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--arch", default="vgg_small")
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-mosaic-"))
    tr, te = load_fashion_mnist("train"), load_fashion_mnist("test")
    xtr, ytr = mosaics(np.stack(tr.sources), tr.classes, a.train, 10, seed=1)
    xte, yte = mosaics(np.stack(te.sources), te.classes, a.test, 10, seed=2)
    np.savez(tmp / "train.npz", images=xtr, labels=ytr, label_names=np.array(FASHION_MNIST_LABELS))
    x = torch.from_numpy(xte[:, None].astype(np.float32) / 255.0)
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    print("| head (scratch CNN, 2x2 mosaics) | train mosaics | epochs | test MAP | train s | img/s |")
    print("|---|---|---|---|---|---|")
    for loss in ("sigmoid", "softmax"):
        cfg = TrainConfig(mode="scratch", arch=a.arch, input_size=56, loss=loss, epochs=a.epochs, lr=0.05,
                          batch_size=128, schedule="cosine", l2=5e-5, penalty_from=1, patience=0, seed=0)
        out = tmp / f"mosaic-{loss}.mmdet"
        rep = train(str(tmp / "train.npz"), out, cfg, name=f"mosaic_{loss}", device=a.device)
        shutil.copy(rep.curves, DOCS_IMG / f"learn_mosaic_scratch_{loss}.png")
        scores = load_bundle(out).detector.scores(x).numpy()
        test_map = metrics.mean_average_precision(scores, yte > 0.5)
        print(f"| {loss} | {rep.train_size} | {rep.epochs_run} | {test_map:.4f} | {rep.seconds:.0f} | "
              f"{rep.images_per_s:.0f} |", flush=True)


if __name__ == "__main__":
    main()
