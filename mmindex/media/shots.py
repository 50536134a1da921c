"""Shot-boundary detection, keyframe choice and TRECVID master shot reference (msb) import.

The detector reads a stream of small RGB frames (``ANALYSIS_SIZE``) and keeps only a ring buffer of
``2·w + 1`` frames' features plus a few floats per analysed frame, so memory stays bounded whatever
the video's length. Per analysed frame i it measures:

* ``d1[i]``: histogram distance between frames i-1 and i (HSV, 8×4×4 bins, half the L1 distance,
  so 0 = same colours and 1 = no colour in common);
* ``e[c]``: histogram distance between frames c-w and c+w around each centre c;
* ``alpha[c]``, ``resid[c]``: frame c's 16×12 grey thumbnail projected on the line between the
  thumbnails of c-w and c+w. In a dissolve or a fade every frame is a blend of its neighbours,
  so it lies on that line (small residual) about half-way along it (alpha ≈ 0.5). Camera or
  object motion changes the colours too, but a moving frame is not a blend of its neighbours.

Decisions (the thresholds are the module's constants; docs/video.md explains them):

* **cut** at i: ``d1[i]`` exceeds an adaptive threshold, the local median + ``CUT_K`` local MADs of
  ``d1`` over ±``WINDOW_S`` seconds (at least ``CUT_MIN``), and is ``CUT_RATIO`` times the largest
  ``d1`` of its ±2 neighbours (a cut is one spike; a dissolve spreads the same change out);
* **gradual** around c: ``e[c]`` exceeds its own adaptive threshold (median + ``GRAD_K`` MADs, at
  least ``GRAD_MIN``), ``alpha`` is within ``ALPHA_RANGE``, ``resid`` is below ``RESID_MAX`` and no cut
  is within w. Consecutive centres form one transition, widened while ``d1`` stays above the noise.
* A fade out to black and in again gives two blends with dark frames between; dark frames between
  two transitions are merged with them into one gradual transition.
"""

from __future__ import annotations

import math
import re
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from mmindex.errors import MediaError
from mmindex.registry import Registry

ANALYSIS_SIZE = (64, 48)  # frames are analysed at this size (width, height)
WINDOW_S = 4.0  # adaptive thresholds use the statistics of ± this many seconds
HALF_SPAN_S = 0.4  # w, in seconds: gradual transitions are compared across frames c-w and c+w
CUT_MIN, CUT_K, CUT_RATIO = 0.2, 5.0, 2.5
GRAD_MIN, GRAD_K, GRAD_Q = 0.25, 4.0, 0.25
NOISE_K, NMS_RATIO = 2.0, 0.9
MIN_SHOT_S = 0.3  # transitions closer than this are one transition (a fade's out and in halves)
ALPHA_RANGE, RESID_MAX = (0.25, 0.75), 0.35
DARK_LUMA, DARK_STD = 0.1, 0.05  # a frame this dark and flat is part of a fade, never a shot
KEYFRAME_SPACING_S, MAX_KEYFRAMES = 10.0, 8
MAX_RATE_KEYFRAMES = 64  # with a keyframe rate: a shot's keyframes are bounded all the same


@dataclass(frozen=True)
class Transition:
    """Frames ``start..end`` (inclusive) are the transition; a cut has start == end == first frame of the new shot."""

    start: int
    end: int
    kind: str  # "cut" or "gradual"

    @property
    def boundary(self) -> int:
        """The first frame of the next shot: the cut frame, or the middle of a gradual transition."""
        return self.start if self.kind == "cut" else (self.start + self.end + 1) // 2


@dataclass(frozen=True)
class Shot:
    """Frames ``start..end`` (inclusive) of a shot; ``clean_start..clean_end`` excludes transition frames."""

    start: int
    end: int
    clean_start: int
    clean_end: int


def _hist(rgb: np.ndarray) -> np.ndarray:
    """HSV colour histogram, 8 hue × 4 saturation × 4 value bins, summing to 1."""
    from PIL import Image  # noqa: PLC0415

    hsv = np.asarray(Image.fromarray(rgb).convert("HSV"), dtype=np.uint16)
    idx = (hsv[..., 0] >> 5) * 16 + (hsv[..., 1] >> 6) * 4 + (hsv[..., 2] >> 6)
    counts = np.bincount(idx.ravel(), minlength=128).astype(np.float32)
    return counts / counts.sum()


def _thumb(rgb: np.ndarray) -> np.ndarray:
    """A 16×12 grey thumbnail in [0, 1] (block means, so noise and small motion average out)."""
    grey = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0
    h, w = grey.shape
    return grey[: h - h % 12, : w - w % 16].reshape(12, h // 12, 16, w // 16).mean(axis=(1, 3))


def _hdist(a: np.ndarray, b: np.ndarray) -> float:
    return 0.5 * float(np.abs(a - b).sum())


class ShotDetector:
    """Streaming shot-boundary detector: ``push`` small frames in order, then ``finish``.

    ``fps`` is the rate of the pushed frames (the video's rate divided by the frame step); it turns
    the time constants into frame counts.
    """

    def __init__(self, fps: float):
        self.w = max(2, round(HALF_SPAN_S * fps))
        self.window = max(8, round(WINDOW_S * fps))
        self.min_shot = max(1, round(MIN_SHOT_S * fps))
        self._buf: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=2 * self.w + 1)
        self.frame_no, self.d1, self.e = array("q"), array("f"), array("f")
        self.alpha, self.resid, self.dark = array("f"), array("f"), array("b")

    def push(self, frame_no: int, rgb: np.ndarray) -> None:
        """Add the next analysed frame (RGB uint8, any small size) with its frame number in the video."""
        feat = (_hist(rgb), _thumb(rgb))
        self.d1.append(_hdist(self._buf[-1][0], feat[0]) if self._buf else 0.0)
        self.frame_no.append(frame_no)
        self.dark.append(bool(feat[1].mean() < DARK_LUMA and feat[1].std() < DARK_STD))
        self._buf.append(feat)
        if len(self._buf) == self._buf.maxlen:
            if not self.e:  # the first w centres have fewer than w frames on their left
                for c in range(self.w):
                    self._centre(0, c, c + self.w)
            self._centre(0, self.w, 2 * self.w)

    def _centre(self, left: int, mid: int, right: int) -> None:
        (ha, ta), (_, tc), (hb, tb) = self._buf[left], self._buf[mid], self._buf[right]
        self.e.append(_hdist(ha, hb))
        line = (tb - ta).ravel()
        norm2 = float(line @ line)
        if norm2 < 1e-6:
            self.alpha.append(0.0)
            self.resid.append(1.0)
            return
        off = (tc - ta).ravel()
        a = float(off @ line) / norm2
        self.alpha.append(a)
        self.resid.append(float(np.linalg.norm(off - a * line)) / math.sqrt(norm2))

    def finish(self) -> list[Transition]:
        """Detect the transitions in everything pushed so far (frame numbers of the video)."""
        n = len(self.d1)
        # Centres without a full window, at the start and the end, use the frames there are.
        while len(self.e) < n:
            c = len(self.e)
            buf_first = n - len(self._buf)  # sample index of the ring buffer's first frame
            if c < self.w:  # too short a video to have filled the buffer before this centre
                self._centre(0, c, min(n - 1, c + self.w))
            else:
                self._centre(c - self.w - buf_first, c - buf_first, min(n - 1, c + self.w) - buf_first)
        return detect(np.frombuffer(self.d1, np.float32), np.frombuffer(self.e, np.float32),
                      np.frombuffer(self.alpha, np.float32), np.frombuffer(self.resid, np.float32),
                      np.frombuffer(self.dark, np.int8).astype(bool), np.frombuffer(self.frame_no, np.int64),
                      self.w, self.window, self.min_shot)


class StreamingShotDetector(Protocol):
    """What decoding needs from a shot detector: frames pushed in order, then the transitions."""

    def push(self, frame_no: int, rgb: np.ndarray) -> None: ...

    def finish(self) -> list[Transition]: ...


def _transnetv2(fps: float) -> StreamingShotDetector:
    from mmindex.media.transnet import TransNetV2Detector  # noqa: PLC0415 (ONNX Runtime, and only when chosen)

    return TransNetV2Detector(fps)


def _transnetv2_require() -> None:
    from mmindex.media.transnet import require  # noqa: PLC0415

    require()


#: shot detectors by name: a factory fn(fps of the pushed frames) -> a `StreamingShotDetector`. Metadata: `size`,
#: the (width, height) the frames are pushed at; `interpolation`, PyAV's scaler for them; `require`, a check
#: that raises MediaError (saying what to install) when the detector cannot run here.
DETECTORS: Registry[Callable[[float], StreamingShotDetector]] = Registry("shot detector", MediaError)
DETECTORS.add("builtin", ShotDetector, description="HSV-histogram cuts and thumbnail-blend gradual transitions",
              size=ANALYSIS_SIZE, interpolation=None, require=None)
DETECTORS.add("transnetv2", _transnetv2, description="TransNetV2, a learned 3D-CNN (optional: mmindex[shots])",
              size=(48, 27), interpolation="BICUBIC", require=_transnetv2_require)  # bicubic: ffmpeg's, as trained
DEFAULT_DETECTOR = "builtin"  # chosen from bench/shot_detectors.py's table (docs/video.md)


def create_shot_detector(name: str, fps: float) -> StreamingShotDetector:
    """A new detector of the registered kind `name` for frames pushed at `fps`; `MediaError` if unknown."""
    return DETECTORS.get(name)(fps)


def analysis_size(name: str) -> tuple[int, int]:
    """(width, height) of the frames the detector `name` reads."""
    return DETECTORS.entry(name).metadata["size"]


def require_detector(name: str) -> None:
    """Raise MediaError if `name` is no shot detector, or one that cannot run here (its package is missing)."""
    check = DETECTORS.entry(name).metadata.get("require")
    if check is not None:
        check()


def _adaptive(x: np.ndarray, window: int, k: float, floor: float, q: float = 0.5) -> np.ndarray:
    """Per-sample threshold: k times the q-quantile of x over ±window samples, at least `floor`.

    The quantile measures the ordinary activity (motion, noise) around a sample; a low quantile
    stays low even where transitions follow each other closely, as long as shots are longer than them.
    The values are np.quantile's over each sample's window; near the ends the window is what there is.
    """
    x = np.asarray(x)
    n, size = len(x), 2 * window + 1
    out = np.empty_like(x)
    edges: Sequence[int] = range(n)
    if n > 2 * window:  # full windows: two rank filters (scipy, in C) instead of n np.quantile calls
        from scipy.ndimage import rank_filter  # here: scipy.ndimage adds ~0.2 s to a start without video

        h = q * (size - 1)  # np.quantile's "linear" method: between the order statistics floor(h) and +1
        lo, t = int(h), h - int(h)
        below = rank_filter(x, lo, size=size, mode="nearest")[window: n - window]
        quantile = below
        if t:  # interpolated as np.quantile does (numpy's _lerp), so the values are the same
            above = rank_filter(x, lo + 1, size=size, mode="nearest")[window: n - window]
            diff = above - below
            quantile = above - diff * (1 - t) if t >= 0.5 else below + diff * t
        out[window: n - window] = np.maximum(floor, k * quantile.astype(np.float64))
        edges = [*range(window), *range(n - window, n)]
    for i in edges:  # the first and last `window` samples: the window shrinks to what there is
        out[i] = max(floor, k * float(np.quantile(x[max(0, i - window): i + window + 1], q)))
    return out


def detect(d1, e, alpha, resid, dark, frame_no, w: int, window: int, min_shot: int = 2) -> list[Transition]:
    """The decision rules (module docstring) over the per-frame signals of `ShotDetector`."""
    n = len(d1)
    if n < 2:
        return []
    neighbours = np.zeros(n, np.float32)
    for k in (-2, -1, 1, 2):
        shifted = np.zeros(n, np.float32)
        if k > 0:
            shifted[:-k] = d1[k:]
        else:
            shifted[-k:] = d1[:k]
        neighbours = np.maximum(neighbours, shifted)
    cut = (d1 > _adaptive(d1, window, CUT_K, CUT_MIN)) & (d1 >= CUT_RATIO * neighbours)
    cut[0] = False
    near_cut = np.convolve(cut.astype(np.int32), np.ones(2 * w + 1, np.int32), mode="same") > 0
    grad = ((e > _adaptive(e, window, GRAD_K, GRAD_MIN, GRAD_Q)) & (alpha >= ALPHA_RANGE[0]) & (alpha <= ALPHA_RANGE[1])
            & (resid <= RESID_MAX) & ~near_cut)
    noise = _adaptive(d1, window, NOISE_K, 0.0)
    spans: list[list] = [[i, i, "cut"] for i in np.flatnonzero(cut)]
    i = 0
    while i < n:
        if not grad[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and (grad[j + 1] or (j + 2 < n and grad[j + 2])):
            j += 1
        around = e[max(0, i - w): j + w + 1]
        if e[i: j + 1].max() < NMS_RATIO * around.max():
            i = j + 1  # the slope of a stronger transition's peak, w frames away: not a transition
            continue
        a, b = i, j + 1  # the frames from a to b differ from their predecessor
        while a > max(1, i - w) and d1[a - 1] > noise[a - 1]:
            a -= 1
        while b < min(n - 1, j + w) and d1[b + 1] > noise[b + 1]:
            b += 1
        spans.append([a, b, "gradual"])
        i = j + 1
    spans.sort()
    merged: list[list] = []
    for s in spans:
        if merged and (s[0] - merged[-1][1] <= min_shot or dark[merged[-1][1] + 1: s[0]].all()):
            if merged[-1][2] == "cut" and s[2] == "cut":
                continue  # two cuts with only dark frames between: keep the first
            merged[-1][1] = max(merged[-1][1], s[1])
            merged[-1][2] = "gradual"
        else:
            merged.append(s)
    return [Transition(int(frame_no[a]), int(frame_no[b]), kind) for a, b, kind in merged]


def shots_from_transitions(transitions: Sequence[Transition], n_frames: int) -> list[Shot]:
    """Contiguous shots covering frames 0..n_frames-1; a gradual transition is split at its middle."""
    shots, start, clean_start = [], 0, 0
    for t in sorted(transitions, key=lambda t: t.start):
        b = t.boundary
        if b <= start or b >= n_frames:
            continue
        clean_end = t.start - 1 if t.kind == "gradual" else b - 1
        shots.append(Shot(start, b - 1, clean_start, max(clean_start, min(clean_end, b - 1))))
        start, clean_start = b, (t.end + 1 if t.kind == "gradual" else b)
    if n_frames > start:
        shots.append(Shot(start, n_frames - 1, min(clean_start, n_frames - 1), n_frames - 1))
    return shots


def keyframes(shot: Shot, fps: float, spacing: float = KEYFRAME_SPACING_S, most: int = MAX_KEYFRAMES) -> list[int]:
    """The keyframe rule: the shot's clean part (transition frames excluded) cut into
    n = ceil(length / spacing) equal parts, at most `most`, and the middle frame of each part. By default a shot
    up to 10 s has one keyframe, its middle frame; a 25 s shot has three."""
    first, last = shot.clean_start, shot.clean_end
    length = last - first + 1
    n = min(most, max(1, math.ceil(length / (spacing * fps))))
    return sorted({first + int((k + 0.5) * length / n) for k in range(n)})


def keyframe_rule(rate: float | None) -> tuple[float, int]:
    """(spacing in seconds, most keyframes a shot) of `keyframes`: the default rule, or `rate` keyframes a second
    of shot, at most MAX_RATE_KEYFRAMES (`mmindex add --keyframe-rate`, for temporal models)."""
    return (KEYFRAME_SPACING_S, MAX_KEYFRAMES) if rate is None else (1.0 / rate, MAX_RATE_KEYFRAMES)


# --- TRECVID master shot reference -----------------------------------------------------------------

_MSB_LINE = re.compile(r"^\s*(\d+)\s+(\d+)\s*$")


def read_msb(path: str | Path) -> list[tuple[int, int]]:
    """Read a TRECVID master shot boundary file: one shot per line, "start_frame end_frame",
    inclusive, 0-based. Blank lines, ``#`` comments and header lines that are not two numbers are skipped.

    A reversed range (end before start) or shots out of order make the whole file invalid: MediaError
    naming the line, so the video is recorded as failed rather than indexed with shots nobody asked for.
    """
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise MediaError(f"cannot read shot file {path}: {exc.strerror or exc}") from None
    numbered = [(n, int(m[1]), int(m[2])) for n, line in enumerate(text.splitlines(), 1)
                if (m := _MSB_LINE.match(line))]
    if not numbered:
        raise MediaError(f"shot file {path} has no 'start_frame end_frame' lines")
    previous_end = -1
    for n, s, e in numbered:
        if e < s:
            raise MediaError(f"shot file {path}, line {n}: shot ends before it starts ({s} {e})")
        if s <= previous_end:
            raise MediaError(f"shot file {path}, line {n}: shots must be in order and not overlap "
                             f"({s} {e} starts at or before the previous shot's end {previous_end})")
        previous_end = e
    return [(s, e) for _, s, e in numbered]


def find_msb(video_path: str | Path, shots_dir: str | Path | None = None) -> Path | None:
    """The master shot reference for a video, if there is one: ``<shots_dir>/<stem>.msb`` when a folder
    is configured, else the sidecar ``<video>.msb`` (``clip.mp4.msb``) or ``<stem>.msb`` next to the video."""
    video = Path(video_path)
    candidates = [Path(shots_dir) / f"{video.stem}.msb"] if shots_dir else []
    candidates += [video.with_name(video.name + ".msb"), video.with_suffix(".msb")]
    return next((p for p in candidates if p.is_file()), None)


def shots_from_msb(ranges: Sequence[tuple[int, int]], n_frames: int | None = None) -> list[Shot]:
    """Shots from msb ranges, clipped to the video's frame count when it is known."""
    shots = []
    for s, e in ranges:
        if n_frames is not None:
            if s >= n_frames:
                break
            e = min(e, n_frames - 1)
        shots.append(Shot(s, e, s, e))
    return shots
