"""Configuration dataclasses, defaults and environment overrides."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "efficientnet_lite0"


def default_index_dir() -> Path:
    """`$MMINDEX_INDEX`, else `$XDG_DATA_HOME/mmindex/index` (`~/.local/share/mmindex/index`)."""
    if env := os.environ.get("MMINDEX_INDEX"):
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "mmindex" / "index"


def cache_dir() -> Path:
    """Where exported ONNX models and downloaded weights go: `$MMINDEX_CACHE`, else `~/.cache/mmindex`."""
    env = os.environ.get("MMINDEX_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mmindex"


@dataclass(frozen=True)
class IngestConfig:
    """How `add` runs.

    batch_size: images per inference batch, and per committed store batch.
    workers: decoding threads; they overlap with inference (PIL releases the GIL while decoding).
    engine: inference runtime, "auto" (ONNX Runtime, falling back to PyTorch), "onnx" or "torch".
    max_pixels: larger images are rejected as decompression bombs (Pillow's default limit).
    pool: how a segment's scores are pooled over its keyframes, "max" or "mean".
    frame_step: shot detection looks at every frame_step-th video frame (faster, but transitions
        are placed only to within frame_step frames and short ones may be missed).
    shots_dir: a folder of TRECVID master shot reference files, <video stem>.msb, used instead of
        shot detection (a sidecar <video>.msb next to a video is used without this setting).
    """

    model: str = DEFAULT_MODEL
    batch_size: int = 32
    workers: int = 2
    engine: str = "auto"
    threads: int | None = None
    max_pixels: int = 89_478_485
    pool: str = "max"
    frame_step: int = 1
    shots_dir: str | None = None
