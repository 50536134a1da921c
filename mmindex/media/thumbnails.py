"""Thumbnails of segments: a photo scaled down, or the middle frame of a video shot, as JPEG bytes. The service
serves (and caches) them (service/media.py); search results show them in notebooks (search/display.py)."""

from __future__ import annotations

import io

from PIL import Image

from mmindex.errors import MediaError
from mmindex.media.images import open_image


def thumbnail_jpeg(path: str, kind: str, start: float | None, end: float | None, size: int,
                   max_pixels: int = 89_478_485, quality: int = 82) -> bytes:
    """A segment's thumbnail, its longest side `size` pixels at most, as JPEG bytes: the image, or for a video
    shot its middle frame. Raises MediaError when the media cannot be read or decoded."""
    if kind == "video":
        middle = 0.0 if start is None else (start + (end if end is not None else start)) / 2
        img = video_frame(path, middle)
    else:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise MediaError(f"cannot read {path}: {exc.strerror or exc}") from None
        img = open_image(data, max_pixels, draft_size=size)
    img.thumbnail((size, size), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def video_frame(path: str, seconds: float, max_frames: int = 3000) -> Image.Image:
    """The first frame at or after `seconds` from the video's first frame, as an RGB image.

    Times in the index count from the stream's first frame, so the seek target adds its start_time.
    """
    import av  # noqa: PLC0415 (PyAV only when a video thumbnail is asked for)

    try:
        with av.open(path, "r") as container:
            if not container.streams.video:
                raise MediaError("no video stream")
            stream = container.streams.video[0]
            base = float(stream.time_base or 0) or 1 / 90000
            first = (stream.start_time or 0) * base
            if seconds > 0:
                container.seek(int((first + seconds) / base), stream=stream, backward=True, any_frame=False)
            last = None
            for i, frame in enumerate(container.decode(stream)):
                last = frame
                if frame.time is None or frame.time - first >= seconds - 1e-3 or i >= max_frames:
                    break
            if last is None:
                raise MediaError("no frames")
            return last.to_image().convert("RGB")
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot decode video: {exc.strerror}") from None
    except OSError as exc:
        raise MediaError(f"cannot read video: {exc.strerror or exc}") from None
