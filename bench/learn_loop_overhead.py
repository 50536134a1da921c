"""The training loop's own cost (issue 18): small seeded runs with tiny steps, where per-step overhead would show.

    .venv/bin/python bench/learn_loop_overhead.py [--runs 5]
    PYTHONPATH=/path/to/other/tree .venv/bin/python bench/learn_loop_overhead.py   # the same with other code

A scratch LeNet on the 300 committed Fashion-MNIST images (tests/fixtures; 240 train, 60 validate), 5 epochs of
batches of 16, and a GRU (hidden 16) on 2,000 sequences of a small order task, 3 epochs of batches of 16; one
thread. Prints the best of `--runs` runs of each (the loop's `seconds`: training and validation).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from mmindex.learn import TrainConfig, train
from mmindex.learn import sequence as S

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "fmnist-train.npz"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench-loop-"))
    cfg = TrainConfig(mode="scratch", arch="lenet", epochs=5, lr=0.05, batch_size=16, patience=0)
    rng = np.random.default_rng(0)
    protos = rng.standard_normal((5, 8)).astype(np.float32) * 2
    classes = rng.integers(0, 5, 4000)
    frames = protos[classes] + 0.3 * rng.standard_normal((4000, 8)).astype(np.float32)
    seqs = S.order_task(frames, classes, 2000, length=5, first=0, second=1, seed=1)
    seq_cfg = S.SequenceConfig(arch="gru", hidden=16, epochs=3, batch_size=16)
    images, sequences = [], []
    for _ in range(a.runs):
        images.append(train(str(FIXTURE), tmp / "lenet.mmdet", cfg, curves=False).seconds)
        sequences.append(S.train_sequence(seqs, tmp / "gru.mmseq", seq_cfg, curves=False).seconds)
    print(f"scratch lenet, 240 images × 5 epochs, batch 16: best {min(images):.3f} s; "
          f"gru, 1,600 sequences × 3 epochs, batch 16: best {min(sequences):.3f} s")


if __name__ == "__main__":
    main()
