"""Scratch CNN on Fashion-MNIST (issue 4): test top-1 error, throughput and peak memory.

    python bench/learn_scratch.py [--arch vgg_small] [--epochs 3] [--train N] [--device cuda]

Needs Debian `dataset-fashion-mnist`. Prints one markdown table row; writes the learning curve to
docs/img/learn_scratch_<arch>.png.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from mmindex.evaluate import metrics
from mmindex.learn import TrainConfig, train
from mmindex.learn.checkpoint import load_bundle
from mmindex.learn.data import load_fashion_mnist
from mmindex.learn.features import decode_pixels

DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="vgg_small")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train", type=int, default=60000, help="first N training images")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--schedule", default="cosine")
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    a = ap.parse_args()
    out = Path(tempfile.mkdtemp()) / "fmnist.mmdet"
    cfg = TrainConfig(mode="scratch", arch=a.arch, epochs=a.epochs, lr=a.lr, batch_size=a.batch_size,
                      schedule=a.schedule, dropout=a.dropout, l2=5e-5, penalty_from=1, patience=0, val_fraction=1 / 12,
                      seed=0)
    t0 = time.perf_counter()
    rep = train(f"fashion-mnist:train:{a.train}", out, cfg, device=a.device)
    wall = time.perf_counter() - t0
    test = load_fashion_mnist("test")
    b = load_bundle(out)
    x, test = decode_pixels(test, 28, 1)
    import torch

    scores = b.detector.scores(torch.from_numpy(x)).numpy()
    err1 = metrics.top_k_error(scores, test.classes, 1)
    err5 = metrics.top_k_error(scores, test.classes, 5)
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    png = DOCS_IMG / f"learn_scratch_{a.arch}.png"
    shutil.copy(rep.curves, png)
    print("| arch | train imgs | epochs | test top-1 err | test top-5 err | train s | img/s | peak RSS MB | T |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {a.arch} | {rep.train_size} | {rep.epochs_run} | {100 * err1:.2f}% | {100 * err5:.2f}% | "
          f"{rep.seconds:.0f} | {rep.images_per_s:.0f} | {rep.peak_rss_mb:.0f} | "
          f"{rep.calibration.get('temperature', 1.0):.2f} |")
    print(f"wall {wall:.0f} s; curve {png}; history {rep.history}")


if __name__ == "__main__":
    main()
