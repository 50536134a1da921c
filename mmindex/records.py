"""The records that flow through mmindex, from decoded media to stored segments.

    media file ──read + decode──▶ Decoded (segments of preprocessed keyframes)
               ──model──▶ MediaRecord (segments with concept scores and an embedding) ──▶ the store

`Hit`, the search result, lives with the searcher (`mmindex.search.hits`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class DecodedSegment:
    """A segment ready for the model: its preprocessed keyframes and where they come from."""

    frames: list[np.ndarray]
    keyframes: list[tuple[float | None, int | None]]
    start: float | None = None
    end: float | None = None


@dataclass
class Decoded:
    """A media file read, hashed and decoded into segments."""

    path: str
    kind: str
    sha256: str
    size: int
    mtime_ns: int
    segments: list[DecodedSegment]
    width: int | None = None
    height: int | None = None
    duration: float | None = None


@dataclass
class SegmentRecord:
    """One segment to store: its time range (None for images), keyframe times, and its outputs."""

    scores: np.ndarray  # (C,) concept scores
    embedding: np.ndarray  # (D,) L2-normalised
    start: float | None = None
    end: float | None = None
    keyframes: Sequence[tuple[float | None, int | None]] = ((None, None),)  # (time s, frame number)


@dataclass
class MediaRecord:
    """One media file to store with all its segments. Replaces any earlier record of the same path."""

    path: str
    kind: str
    sha256: str
    size: int
    mtime_ns: int
    segments: list[SegmentRecord]
    width: int | None = None
    height: int | None = None
    duration: float | None = None
