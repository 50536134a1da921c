"""Detector inputs made from media files (issue 18): at `add` from what the reader decoded, and at `apply` by reading
indexed files back.

A pixel detector scores every keyframe of a segment; `apply` decodes the keyframes again at the times the index
stored (an image is its one keyframe), with the decoding `add` used (`media.images`, `media.video.frames_at`), so
a segment scores the same whichever of the two scored it. A clip detector scores `frames` frames around the middle
of each shot, or `clips` clips spread over it (`inputs.clip_times`); an image is a clip of one frame repeated (it
does not move).

Before reading a file back, `apply` checks it is the one indexed: a file that is gone, or whose size or
modification time differ and whose SHA-256 then differs too, raises `MediaError` saying so (the caller records it
and scores that file's segments 0).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmindex.errors import MediaError
from mmindex.extract.inputs import ModelInput, clip_times
from mmindex.media import images


@dataclass(frozen=True)
class IndexedMedia:
    """What the index knows of one file: its facts when indexed, and its segments as (start, end, keyframe times)."""

    path: str
    kind: str
    sha256: str
    size: int
    mtime_ns: int
    segments: Sequence[tuple[float | None, float | None, Sequence[float | None]]]


def check_unchanged(media: IndexedMedia) -> None:
    """`MediaError` when the file is gone or its content is not the indexed one (hashed only when its size or
    modification time moved: a file touched but not changed is still the indexed one)."""
    try:
        st = os.stat(media.path)
    except FileNotFoundError:
        raise MediaError("the file is gone since it was indexed (mmindex remove it, or add it again)") from None
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from None
    if (st.st_size, st.st_mtime_ns) == (media.size, media.mtime_ns):
        return
    try:
        with open(media.path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from None
    if digest != media.sha256:
        raise MediaError("the file changed since it was indexed (mmindex add it again)")


def image_inputs(img, specs: Sequence[ModelInput], data_config=None, frame: np.ndarray | None = None
                 ) -> dict[str, np.ndarray]:
    """The inputs of one decoded image (a PIL image) for each pixel or clip input: {key: (1, C, S, S) or clip}.
    `frame`, the image preprocessed as `data_config` says (`add`'s), is reused by a pixel input that is the same."""
    out = {}
    for spec in specs:
        if frame is not None and spec.is_preprocessing(data_config):
            out[spec.key] = frame[None]
        elif spec.kind == "pixels":
            out[spec.key] = spec.pixels(img)[None]
        elif spec.kind == "clip":
            frame = spec.clip_frame(np.asarray(img.convert("RGB").resize((spec.width, spec.size))))
            out[spec.key] = np.repeat(frame[None], spec.frames, axis=0)
    return out


def keyframe_pixels(img, specs: Sequence[ModelInput]) -> dict[str, np.ndarray]:
    """The pixel inputs of one video keyframe (a PIL image): {key: (C, S, S)} (`media.video.decode` stacks them)."""
    return {spec.key: spec.pixels(img) for spec in specs if spec.kind == "pixels"}


def video_clips(path: str, spans: Sequence[tuple[float, float]], spec: ModelInput) -> list[np.ndarray]:
    """One clip (T, C, H, W) per (start, end) span of a video, or with `spec.clips` N > 1 clips (N, T, C, H, W)
    spread over it, decoded in one pass (`media.video.frames_at`)."""
    from mmindex.media import video  # deferred: PyAV

    rate, n = spec.rate or video.frame_rate(path), spec.clips or 1
    times = [t for start, end in spans for t in clip_times(start, end, spec.frames, rate, n)]
    frames = video.frames_at(path, times, lambda f: spec.clip_frame(
        f.to_ndarray(width=spec.width, height=spec.size, format="rgb24")))
    per = spec.frames * n
    clips = [np.stack(frames[i:i + per]) for i in range(0, len(frames), per)]
    return clips if n == 1 else [c.reshape(n, spec.frames, *c.shape[1:]) for c in clips]


def read_back(media: IndexedMedia, spec: ModelInput, max_pixels: int, draft_size: int | None) -> list[np.ndarray]:
    """One input per segment of an indexed file, for a pixel or clip input (see the module docstring): pixels
    (k, C, S, S) per segment's k keyframes, or a clip (T, C, H, W). `draft_size` is the index backbone's resize
    (`add` lets the JPEG decoder scale down to it). Raises `MediaError`."""
    check_unchanged(media)
    if media.kind == "image":
        try:
            with open(media.path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise MediaError(f"cannot read file: {exc.strerror or exc}") from None
        one = image_inputs(images.open_image(data, max_pixels, draft_size=draft_size), [spec])[spec.key]
        return [one for _ in media.segments]
    if spec.kind == "clip":
        return video_clips(media.path, [(s or 0.0, e if e is not None else (s or 0.0)) for s, e, _ in media.segments],
                           spec)
    from mmindex.media import video  # deferred: PyAV

    times = [t or 0.0 for _, _, kf in media.segments for t in kf]
    frames = video.frames_at(media.path, times, lambda f: spec.pixels(f.to_image()))
    out, i = [], 0
    for _, _, kf in media.segments:
        out.append(np.stack(frames[i:i + len(kf)]))
        i += len(kf)
    return out
