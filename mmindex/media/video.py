"""Decode a video into shots with keyframes, as a stream, with PyAV.

`decode` makes two passes, neither of which holds more than a few frames:

1. **Analysis** (skipped when a TRECVID msb file gives the shots): decode every frame, note its
   timestamp (pts × time_base, in seconds from the first frame) and whether it is a decoder key
   frame, and push every ``frame_step``-th frame, scaled down to the size the detector reads
   (`shots.analysis_size`), into the streaming shot detector (one of `shots.DETECTORS`, chosen by
   `IngestConfig.shots`: the built-in `ShotDetector` by default, or TransNetV2). Memory: the detector's
   buffer (a ring of a few frames' features, or one window of TransNetV2's) plus 8 bytes per frame of
   timestamps.
2. **Keyframes**: for each shot, `shots.keyframes` picks the frames to index; they are decoded in
   order at full size and preprocessed for the model.

**Seek rule** (pass 2): seeking to a timestamp restarts decoding at the last decoder key frame
(I-frame) at or before it. So we seek only when that key frame lies *after* the frame we last decoded,
that is when seeking skips frames; otherwise we decode forward, which is never slower. Without an
analysis pass (msb shots) the key frames are not known, and we seek when the target is more than
``SEEK_AHEAD_S`` seconds ahead; a seek that lands at or after the target is undone by decoding from
the start of the stream segment it landed in, so no keyframe is ever skipped.

**Bad input** raises `MediaError`: not a media file, truncated beyond use, no video stream, unknown
codec, no frames. A video that breaks off part-way (truncated, corrupt packets, timestamps going
backwards) is indexed up to the last good frame, and a warning is logged.
"""

from __future__ import annotations

import logging
import math
import os
from array import array
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mmindex.config import IngestConfig
from mmindex.errors import MediaError
from mmindex.media import images, shots
from mmindex.media.shots import DEFAULT_DETECTOR, Shot, Transition
from mmindex.records import Decoded, DecodedSegment, Media

log = logging.getLogger(__name__)

SEEK_AHEAD_S = 5.0


@dataclass
class Analysis:
    """What pass 1 learns: per-frame timestamps (stream pts), decoder key frames and the transitions."""

    pts: array  # pts of frame k (array of int64)
    key_pts: list[int]
    transitions: list[Transition]


def _open(path: str):
    import av  # noqa: PLC0415

    try:
        container = av.open(path, "r")
    except av.error.FFmpegError as exc:
        raise MediaError(f"not a readable video (corrupt, truncated or unknown format): {exc.strerror}") from None
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from None
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
        container.close()
        raise MediaError(f"no video stream (streams found: {kinds})")
    stream = container.streams.video[0]
    try:
        stream.codec_context  # noqa: B018 (opening the decoder fails here for unknown codecs)
    except av.error.FFmpegError as exc:
        container.close()
        raise MediaError(f"unsupported video codec: {exc.strerror}") from None
    if stream.codec_context.codec is None or not stream.codec_context.is_decoder:
        container.close()
        raise MediaError(f"unsupported video codec {stream.codec_context.name!r}")
    stream.thread_type = "AUTO"  # frame threads: the decoder is the bottleneck of pass 1
    return container, stream


def _frames(container, stream, what: str):
    """Decoded frames; stops (logging why) at a decoding error or a timestamp that goes backwards."""
    import av  # noqa: PLC0415

    last = None
    try:
        for frame in container.decode(stream):
            if frame.pts is None:
                continue  # a frame we cannot place in time cannot be indexed by time either
            if last is not None and frame.pts <= last:
                log.warning("%s: timestamps go backwards (%d after %d); stopped there", what, frame.pts, last)
                return
            last = frame.pts
            yield frame
    except av.error.FFmpegError as exc:
        log.warning("%s: decoding stopped at a corrupt or truncated part: %s", what, exc)


def _fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 25.0


def analyse(path: str, frame_step: int = 1, detector: str = DEFAULT_DETECTOR) -> Analysis:
    """Pass 1: timestamps of every frame and the shot transitions, analysing every `frame_step`-th frame
    with the shot detector registered as `detector` (`shots.DETECTORS`)."""
    if frame_step < 1:
        raise ValueError("frame_step must be at least 1")
    container, stream = _open(path)
    with container:
        finder = shots.create_shot_detector(detector, _fps(stream) / frame_step)
        pts, key_pts = array("q"), []
        width, height = shots.analysis_size(detector)
        scaler = shots.DETECTORS.entry(detector).metadata.get("interpolation")
        for k, frame in enumerate(_frames(container, stream, path)):
            pts.append(frame.pts)
            if frame.key_frame:
                key_pts.append(frame.pts)
            if k % frame_step == 0:
                finder.push(k, frame.to_ndarray(width=width, height=height, format="rgb24", interpolation=scaler))
    if not pts:
        raise MediaError("video has no decodable frames (zero-length, truncated or corrupt)")
    return Analysis(pts, key_pts, finder.finish())


def _grab(path: str, targets: list[int], key_pts: list[int] | None):
    """Pass 2: yield (target pts, frame) for the first frame at or after each target pts, in order."""
    container, stream = _open(path)
    with container:
        frames = _frames(container, stream, path)
        pos = None  # pts of the last decoded frame
        for target in targets:
            if _should_seek(pos, target, key_pts, stream):
                container.seek(target, stream=stream, backward=True, any_frame=False)
                frames = _frames(container, stream, path)
                pos = None
            for frame in frames:
                pos = frame.pts
                if frame.pts >= target:
                    yield target, frame
                    break
            else:
                return


def _should_seek(pos: int | None, target: int, key_pts: list[int] | None, stream) -> bool:
    """The seek rule of the module docstring."""
    if pos is None or target <= pos:
        return False
    if key_pts is not None:
        i = bisect_right(key_pts, target) - 1
        return i >= 0 and key_pts[i] > pos
    return float((target - pos) * stream.time_base) > SEEK_AHEAD_S


def _probe(path: str) -> tuple[float, int, int, int, float, int | None]:
    """fps, width, height, start pts, time base, frame count (None if unknown) without decoding."""
    container, stream = _open(path)
    with container:
        start = stream.start_time if stream.start_time is not None else 0
        return (_fps(stream), stream.codec_context.width, stream.codec_context.height, start,
                float(stream.time_base), stream.frames or None)


def decode(path: str, sha256: str, st: os.stat_result, data_config, config: IngestConfig,
           extra: Callable[[object], dict[str, np.ndarray]] | None = None) -> Decoded:
    """Decode a video into one `DecodedSegment` per shot (see the module docstring). Raises MediaError.

    `config.keyframe_rate` (keyframes a second of shot) replaces the keyframe rule's spacing. `extra(image)` makes
    more inputs of each keyframe (a PIL image), for the applied detectors that take pixels: stacked per segment in
    `DecodedSegment.inputs`."""

    if st.st_size == 0:
        raise MediaError("empty file (0 bytes)")
    fps, width, height, start_pts, tb, n_known = _probe(path)
    msb = shots.find_msb(path, config.shots_dir)
    if msb is not None:
        shot_list = shots.shots_from_msb(shots.read_msb(msb), n_known)
        n_frames = n_known or shot_list[-1].end + 1
        key_pts, pts_of = None, (lambda f: start_pts + round(f / fps / tb))
    else:
        info = analyse(path, config.frame_step, config.shots)
        n_frames = len(info.pts)
        shot_list = shots.shots_from_transitions(info.transitions, n_frames)
        key_pts, pts_of = info.key_pts, info.pts.__getitem__
    seconds = lambda p: max(0.0, (p - start_pts) * tb)  # noqa: E731
    duration = seconds(pts_of(n_frames - 1)) + 1.0 / fps

    rule = shots.keyframe_rule(config.keyframe_rate)
    wanted = {pts_of(f): (s_idx, f) for s_idx, shot in enumerate(shot_list) for f in shots.keyframes(shot, fps, *rule)}
    per_shot: list[list] = [[] for _ in shot_list]
    dc = data_config
    for target, frame in _grab(path, sorted(wanted), key_pts):
        s_idx, f = wanted[target]
        img = frame.to_image()
        per_shot[s_idx].append((images.preprocess(img, dc.input_size, dc.resize, dc.mean, dc.std, dc.interpolation),
                                (round(seconds(frame.pts), 3), f), extra(img) if extra else {}))
    segments = []
    for shot, got in zip(shot_list, per_shot, strict=True):
        if not got:
            continue  # beyond the last decodable frame (a truncated file with an msb, for example)
        start = seconds(pts_of(shot.start))
        end = seconds(pts_of(shot.end + 1)) if shot.end + 1 < n_frames else duration
        inputs = {k: np.stack([g[2][k] for g in got]) for k in got[0][2]}
        segments.append(DecodedSegment(frames=[g[0] for g in got], keyframes=[g[1] for g in got],
                                       start=round(start, 3), end=round(end, 3), inputs=inputs))
    if not segments:
        raise MediaError("no frame of the video could be decoded")
    return Media(path, "video", sha256, st.st_size, st.st_mtime_ns, segments,
                 width=width, height=height, duration=round(duration, 3))


def frame_rate(path: str) -> float:
    """The video's frame rate (frames a second), from its header. Raises MediaError."""
    return _probe(path)[0]


def frames_at(path: str, times: Sequence[float], convert: Callable) -> list:
    """For each time (seconds from the first frame, as `decode` stores keyframe times, rounded to 1 ms), the first
    frame at or after it, made into `convert(frame)`; in the order of `times` (repeats allowed). A time past the last
    decodable frame gets the last one. Seeks forward as pass 2 does without key frames (`SEEK_AHEAD_S`).
    Raises MediaError when no frame can be decoded."""
    container, stream = _open(path)
    with container:
        start, tb = stream.start_time or 0, float(stream.time_base)
        out: list = [None] * len(times)
        frames, pos, last, made = _frames(container, stream, path), None, None, None
        for i in sorted(range(len(times)), key=times.__getitem__):
            target = start + math.ceil((times[i] - 0.0005) / tb)
            if last is None or last.pts < target:
                if _should_seek(pos, target, None, stream):
                    container.seek(target, stream=stream, backward=True, any_frame=False)
                    frames = _frames(container, stream, path)
                for frame in frames:
                    pos, last, made = frame.pts, frame, None
                    if frame.pts >= target:
                        break
            if last is None:
                raise MediaError("video has no decodable frames (zero-length, truncated or corrupt)")
            made = convert(last) if made is None else made
            out[i] = made
    return out


def detect_transitions(path: str, frame_step: int = 1, detector: str = DEFAULT_DETECTOR) -> list[Transition]:
    """Shot transitions of a video file (frame numbers) by the named shot detector, for evaluation and tools."""
    return analyse(path, frame_step, detector).transitions


def shots_of(path: str, frame_step: int = 1, detector: str = DEFAULT_DETECTOR) -> list[Shot]:
    """The detected shots of a video file."""
    info = analyse(path, frame_step, detector)
    return shots.shots_from_transitions(info.transitions, len(info.pts))
