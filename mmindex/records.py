"""The records that flow through mmindex, from decoded media to stored segments.

One type, `Media`, holds a file's facts (path, kind, hash, size, dimensions) and its segments. The facts are
set by the reader and never change; each stage hands on the same facts with new segments:

    media file ──read + decode──▶ Media[DecodedSegment]  (`Decoded`: preprocessed keyframes per segment)
               ──model──▶ Media[SegmentRecord]  (`MediaRecord`: concept scores and an embedding) ──▶ the store
                          Media[SegmentResult]  (`extract.classify.FileResult`: the top ImageNet classes)

Every segment type is a `Segment`: where the segment lies in its file, plus what that stage made of it.
`Decoded` and `MediaRecord` name stages in annotations; an `isinstance` check takes `Media`.
`Hit`, the search result, lives with the searcher (`mmindex.search.hits`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np


@dataclass(kw_only=True)
class Segment:
    """Where a segment lies: its time range in seconds (None for an image) and its keyframes (time s, frame)."""

    start: float | None = None
    end: float | None = None
    keyframes: Sequence[tuple[float | None, int | None]] = ((None, None),)


@dataclass
class DecodedSegment(Segment):
    """A segment ready for the model: its preprocessed keyframes, one (3, H, W) array each, and what the applied
    detectors that do not take embeddings score ({input key: array}, see `extract.inputs`)."""

    frames: list[np.ndarray]
    inputs: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class SegmentRecord(Segment):
    """A segment scored by the model, as the store keeps it."""

    scores: np.ndarray  # (C,) concept scores
    embedding: np.ndarray  # (D,) L2-normalised
    keyframe_embeddings: np.ndarray | None = None  # (k, D), one per keyframe (stored with --keyframe-embeddings)
    inputs: dict[str, np.ndarray] = field(default_factory=dict)  # handed on from the DecodedSegment


S = TypeVar("S", bound=Segment)


@dataclass
class Media(Generic[S]):
    """A media file and its segments. `MediaRecord`s replace any earlier record of the same path in the store."""

    path: str
    kind: str  # "image" or "video"
    sha256: str
    size: int  # bytes
    mtime_ns: int
    segments: list[S]
    width: int | None = None
    height: int | None = None
    duration: float | None = None  # seconds, videos only


Decoded = Media[DecodedSegment]  # read, hashed and decoded: what the mapper takes
MediaRecord = Media[SegmentRecord]  # scored: what the store writes
