"""One clip per shot against several pooled (`mmindex apply --clips-per-shot N`, issue 18), on shots longer than a clip
in which the motion happens in one part only.

A C3D-like model is trained through `mmindex train-clips` on generated motion clips (8 frames of 24×24 at 8 frames a
second; Fashion-MNIST photos moving left or right, zooming in or out), as tests/e2e/test_video_apply_cli.py does. The
shots to search are the paired test clips (photos the model never saw), each made a 3-second video of 24 frames: the
8 moving frames placed in a seeded-random third of the shot (start, middle or end) and the object still for the
other 16 frames (its first or last frame held). One clip around the middle of a shot sees the motion only when it
happens in the middle; three clips spread over the shot see every third. The same index is applied with 1, then
with N clips a shot; AP of each label's ranking of all shots is printed as a markdown table.

    .venv/bin/python bench/clips_per_shot.py                 # defaults: --train 640 --test 96 --clips 3, a few minutes
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from mmindex import Engine
from mmindex.evaluate.metrics import average_precision_ranked
from mmindex.learn.clips import MOTIONS, ClipData, motion_task, save_clips, write_videos

FRAMES, SIZE, FPS = 8, 24, 8.0
ROOT = Path(__file__).resolve().parents[1]


def long_shots(test: ClipData, seed: int) -> tuple[ClipData, list[str]]:
    """Each clip as a shot three times as long: its frames in a random third, the first or last frame held in the
    others. Returns the shots and where the motion is in each."""
    rng = np.random.default_rng(seed)
    where = rng.integers(0, 3, len(test))
    shots = []
    for clip, part in zip(test.x, where, strict=True):
        still_before, still_after = [clip[:1]] * (FRAMES * part), [clip[-1:]] * (FRAMES * (2 - part))
        shots.append(np.concatenate([*still_before, clip, *still_after]))
    return ClipData(np.stack(shots), test.y, test.labels, FPS), [("start", "middle", "end")[p] for p in where]


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "mmindex.cli", *args], check=True, cwd=ROOT)


def ap_per_label(index: Path, model: str, labels: dict[str, str], segments: int) -> dict[str, float]:
    """AP of each label's ranking of every segment (a video the shot detector cut in two counts twice)."""
    out = {}
    for label in MOTIONS:
        ranked = [labels.get(h.path) == label
                  for h in Engine(index).search([f"{model}:{label}"], k=segments, remember=False)]
        out[label] = average_precision_ranked(ranked, sum(ranked))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=640, help="training clips")
    parser.add_argument("--test", type=int, default=96, help="shots to search (even)")
    parser.add_argument("--clips", type=int, default=3, help="clips a shot to compare with one")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mmindex-clips-") as tmp:
        tmp = Path(tmp)
        train, test = motion_task(str(ROOT / "tests/fixtures/fmnist-train.npz"), args.train, args.test,
                                  frames=FRAMES, size=SIZE, seed=args.seed)
        train.fps = FPS
        save_clips(tmp / "train.npz", train)
        cli("train-clips", str(tmp / "train.npz"), "--arch", "c3d", "--width", "4", "--epochs", "3", "--batch-size",
            "16", "--lr", "0.01", "--seed", str(args.seed), "--out", str(tmp / "motion.mmclip"), "-q")
        shots, where = long_shots(test, args.seed)
        labels = dict(write_videos(shots, tmp / "videos", fps=FPS))
        index = tmp / "idx"
        cli("add", str(tmp / "videos"), "--index", str(index), "-q")
        segments = Engine(index).counts()["segments"]
        results = {}
        for n in (1, args.clips):
            cli("apply", str(tmp / "motion.mmclip"), "--index", str(index), "--clips-per-shot", str(n), "-q")
            results[n] = ap_per_label(index, "motion", labels, segments)
    parts = {p: where.count(p) for p in ("start", "middle", "end")}
    print(f"{len(labels)} videos of 24 frames ({segments} segments), motion at the start/middle/end: "
          f"{parts['start']}/{parts['middle']}/{parts['end']}; C3D-like trained on {args.train} clips of 8 frames\n")
    print(f"| label | 1 clip a shot | {args.clips} clips a shot, mean |")
    print("|---|---:|---:|")
    for label in MOTIONS:
        print(f"| {label} | {results[1][label]:.3f} | {results[args.clips][label]:.3f} |")
    print(f"| mean | {np.mean(list(results[1].values())):.3f} | {np.mean(list(results[args.clips].values())):.3f} |")


if __name__ == "__main__":
    main()
