"""Shot-boundary evaluation (precision/recall/F1) and test clips with known transitions.

Matching follows TRECVID's shot-boundary task, simplified: a reference cut at frame f (the first
frame of the new shot) is found by a detected transition that covers any frame within f ± tolerance;
a reference gradual transition [a, b] is found by a detected transition overlapping [a - tol, b + tol].
Each reference and each detection is matched at most once (greedy, nearest first). Scores are given
per kind (a detection counts for the kind it claims) and for all transitions regardless of kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mmindex.media.shots import Transition


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F1 with the counts they come from."""

    tp: int
    n_detected: int
    n_reference: int

    @property
    def precision(self) -> float:
        return self.tp / self.n_detected if self.n_detected else 1.0

    @property
    def recall(self) -> float:
        return self.tp / self.n_reference if self.n_reference else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _gap(a: Transition, b: Transition) -> int:
    """Frames between two transitions' spans (0 when they overlap)."""
    return max(0, a.start - b.end, b.start - a.end)


def _match(detected: Sequence[Transition], reference: Sequence[Transition], tolerance: int) -> list[tuple[int, int]]:
    pairs = sorted(
        (_gap(d, r), i, j)
        for i, d in enumerate(detected)
        for j, r in enumerate(reference)
        if _gap(d, r) <= tolerance
    )
    used_d, used_r, out = set(), set(), []
    for _, i, j in pairs:
        if i not in used_d and j not in used_r:
            used_d.add(i)
            used_r.add(j)
            out.append((i, j))
    return out


def evaluate(detected: Sequence[Transition], reference: Sequence[Transition], tolerance: int = 2) -> dict[str, PRF]:
    """Scores for "cut", "gradual" and "all". Reference kinds matter only for the per-kind scores."""
    out = {"all": PRF(len(_match(detected, reference, tolerance)), len(detected), len(reference))}
    for kind in ("cut", "gradual"):
        det = [d for d in detected if d.kind == kind]
        ref = [r for r in reference if r.kind == kind]
        out[kind] = PRF(len(_match(det, ref, tolerance)), len(det), len(ref))
    return out


def boundaries_to_transitions(frames: Sequence[int]) -> list[Transition]:
    """A reference list of shot starts, like scikit-video's [0, 30, 76, ...], as cuts (frame 0 is no transition)."""
    return [Transition(f, f, "cut") for f in frames if f > 0]


# --- clips with known transitions, made from the bundled photos -------------------------------------

@dataclass(frozen=True)
class ClipSpec:
    """A test clip: shots of `shot_frames` frames each, joined by `transitions`.

    Each transition is ("cut", 0), ("dissolve", n) or ("fade", n): a fade is n frames out to black,
    2 black frames and n frames in, counted as one gradual transition.
    """

    photos: tuple[str, ...]
    shot_frames: tuple[int, ...]
    transitions: tuple[tuple[str, int], ...]
    size: tuple[int, int] = (160, 120)
    fps: int = 15


def _shot_frames(photo: np.ndarray, n: int, size: tuple[int, int], rng: np.random.Generator) -> list[np.ndarray]:
    """A slow pan and zoom over the photo (a "Ken Burns" shot), so that shots are not still images."""
    img = Image.fromarray(photo).convert("RGB")
    w, h = img.size
    cw0, cw1 = (w * rng.uniform(0.6, 0.8) for _ in range(2))
    x0, y0 = rng.uniform(0, w - cw0), rng.uniform(0, h - cw0 * 0.75)
    x1, y1 = rng.uniform(0, w - cw1), rng.uniform(0, h - cw1 * 0.75)
    frames = []
    for k in range(n):
        t = k / max(1, n - 1)
        cw = cw0 + (cw1 - cw0) * t
        x, y = x0 + (x1 - x0) * t, y0 + (y1 - y0) * t
        box = (x, y, x + cw, y + cw * 0.75)
        frames.append(np.asarray(img.resize(size, Image.Resampling.BILINEAR, box=box)))
    return frames


def render_clip(spec: ClipSpec, seed: int = 0) -> tuple[list[np.ndarray], list[Transition]]:
    """The frames (RGB uint8) of a clip and its reference transitions (frame numbers of the clip)."""
    from mmindex.samples import photo_array  # noqa: PLC0415 (scikit-image is needed only here)

    rng = np.random.default_rng(seed)
    cache: dict[str, np.ndarray] = {}
    shots = []
    for name, n in zip(spec.photos, spec.shot_frames, strict=True):
        if name not in cache:
            cache[name] = photo_array(name)
        shots.append(_shot_frames(cache[name], n, spec.size, rng))
    frames: list[np.ndarray] = list(shots[0])
    reference = []
    for (kind, n), shot in zip(spec.transitions, shots[1:], strict=True):
        if kind == "cut":
            reference.append(Transition(len(frames), len(frames), "cut"))
            frames.extend(shot)
            continue
        # The transition eats the last n frames of the shot before and the first n of the next one.
        tail, head = frames[-n:], shot[:n]
        del frames[-n:]
        start = len(frames)
        if kind == "dissolve":
            for k in range(n):
                a = (k + 1) / (n + 1)
                frames.append(((1 - a) * tail[k] + a * head[k]).round().astype(np.uint8))
        elif kind == "fade":
            frames.extend((tail[k] * (1 - (k + 1) / (n + 1))).round().astype(np.uint8) for k in range(n))
            frames.extend([np.zeros_like(tail[0])] * 2)
            frames.extend((head[k] * ((k + 1) / (n + 1))).round().astype(np.uint8) for k in range(n))
        else:
            raise ValueError(f"unknown transition kind {kind!r}")
        reference.append(Transition(start, len(frames) - 1, "gradual"))
        frames.extend(shot[n:])
    return frames, reference


def write_video(path: str | Path, frames: Sequence[np.ndarray], fps: int = 15, codec: str = "libx264",
                container_options: dict[str, str] | None = None) -> None:
    """Encode RGB frames with PyAV (H.264 by default)."""
    import av  # noqa: PLC0415

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for arr in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def make_clip(path: str | Path, spec: ClipSpec, seed: int = 0) -> list[Transition]:
    """Render and encode a clip; return its reference transitions."""
    frames, reference = render_clip(spec, seed)
    write_video(path, frames, spec.fps)
    return reference


PHOTO_NAMES = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "china", "flower")

# The clips the tests and bench/shots_f1.py measure: each photo follows a different one, shots of
# 1.5 to 3 s at 15 fps, dissolves of 4 to 15 frames, fades of 2 × 5 to 8 frames.
CUTS_CLIP = ClipSpec(
    photos=("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "china", "flower", "coffee", "rocket",
            "chelsea", "china", "astronaut"),
    shot_frames=(30, 24, 36, 28, 40, 26, 32, 25, 30, 38, 27, 30),
    transitions=(("cut", 0),) * 11,
)
GRADUAL_CLIP = ClipSpec(
    photos=("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "china", "flower", "astronaut", "coffee",
            "rocket", "chelsea", "china"),
    shot_frames=(40, 36, 44, 38, 45, 40, 42, 36, 40, 44, 38, 40),
    transitions=(("dissolve", 10), ("fade", 6), ("dissolve", 15), ("dissolve", 5), ("fade", 8),
                 ("dissolve", 12), ("dissolve", 8), ("fade", 5), ("dissolve", 14), ("dissolve", 6),
                 ("dissolve", 10)),
)
MIXED_CLIP = ClipSpec(
    photos=("flower", "rocket", "china", "chelsea", "motorcycle", "coffee", "astronaut", "flower", "china"),
    shot_frames=(36, 30, 40, 28, 44, 32, 40, 30, 36),
    transitions=(("cut", 0), ("dissolve", 12), ("cut", 0), ("fade", 6), ("dissolve", 8), ("cut", 0),
                 ("dissolve", 4), ("cut", 0)),
)
CLIPS = {"cuts": CUTS_CLIP, "gradual": GRADUAL_CLIP, "mixed": MIXED_CLIP}


def random_spec(seed: int, n_shots: int = 10) -> ClipSpec:
    """A held-out clip (not used to set the thresholds): random photos, shot lengths and transitions."""
    rng = np.random.default_rng(seed)
    photos = [str(rng.choice(PHOTO_NAMES))]
    while len(photos) < n_shots:
        name = str(rng.choice(PHOTO_NAMES))
        if name != photos[-1]:
            photos.append(name)
    kinds = rng.choice(["cut", "dissolve", "fade"], size=n_shots - 1, p=[0.4, 0.4, 0.2])
    transitions = tuple((str(k), 0 if k == "cut" else int(rng.integers(4, 16 if k == "dissolve" else 9)))
                        for k in kinds)
    return ClipSpec(tuple(photos), tuple(int(x) for x in rng.integers(25, 50, size=n_shots)), transitions)
