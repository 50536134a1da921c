"""Configuration dataclasses, defaults and environment overrides."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
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
    workers: decoding threads; they overlap with inference (PIL releases the GIL while decoding). When the model
        runs on a GPU, decoding runs in a process per core instead: one process's threads would not keep up.
    device: where the model runs (the CLI's `--device`, models/devices.py): "auto" (a CUDA GPU when ONNX Runtime's
        GPU build finds one, else the CPU), "cpu", "cuda" or "cuda:N". An index's scores agree whatever the device
        (to float tolerance), so it is not recorded.
    backend: the inference runtime (the CLI's `--runtime`): "auto" (ONNX Runtime, falling back to PyTorch),
        "onnx" or "torch".
    precision: the model's (the CLI's `--precision`): "fp32", or "int8" (ONNX Runtime's static quantization,
        models/quantize.py: about twice as fast on the CPU, top-1 the same as fp32's for 97% of photos); None:
        the index's own (fp32 for a new one). An index records the precision it was built with, and adding in
        another is refused. The `Engine` resolves None, so that queries by example embed in the index's too.
    max_pixels: larger images are rejected as decompression bombs (Pillow's default limit).
    pool: how a segment's scores are pooled over its keyframes, "max" or "mean".
    frame_step: shot detection looks at every frame_step-th video frame (faster, but transitions
        are placed only to within frame_step frames and short ones may be missed).
    shots: the shot detector (the CLI's `--shots`), a name of `mmindex.media.shots.DETECTORS`: "builtin" or
        "transnetv2" (the optional mmindex[shots]); see docs/video.md for how they compare.
    shots_dir: a folder of TRECVID master shot reference files, <video stem>.msb, used instead of
        shot detection (a sidecar <video>.msb next to a video is used without this setting).
    executor: where decoding and inference run (the CLI's `--executor`): "local" (threads in this process)
        or "ray" (Ray Data tasks and an actor pool, see mmindex/index/ray_ingest.py). Either way only this
        process writes the index.
    ray_address: the Ray cluster to use ("auto", "HOST:PORT", "ray://HOST:10001"); None starts a local one.
    ray_workers: inference actors (each holds one model and reserves `threads or 1` CPUs).
    keyframe_rate: video keyframes per second of shot (at most 64 a shot) instead of the default rule (one per 10 s,
        at most 8): denser keyframes for temporal models, at the cost of more inference. None: the index's own
        setting, else the default rule.
    keyframe_embeddings: also store each keyframe's embedding (float16), which temporal models applied to the
        index read; once an index stores them, later adds do too.
    auto_compact: after adding, compact the index when at least this many batch files would be merged
        (`mmindex compact`, see mmindex/index/compact.py); 0 never does. Each add writes new files, and a
        query reads each file's run: left alone, thousands of small files slow every query down.
    """

    model: str = DEFAULT_MODEL
    batch_size: int = 32
    workers: int = 2
    backend: str = "auto"
    device: str = "auto"
    precision: str | None = None
    threads: int | None = None
    max_pixels: int = 89_478_485
    pool: str = "max"
    frame_step: int = 1
    shots: str = "builtin"
    shots_dir: str | None = None
    executor: str = "local"
    ray_address: str | None = None
    ray_workers: int = 1
    auto_compact: int = 32
    keyframe_rate: float | None = None
    keyframe_embeddings: bool = False


@dataclass(frozen=True)
class ServiceConfig:
    """How `mmindex serve` runs (see docs/service.md).

    token: the bearer token that adding and removing media need; None disables those endpoints.
        Kept out of repr so that it never reaches a log line.
    public_read: read-only endpoints (search, thumbnails, media...) are open; False makes them need the token too.
    media_roots: folders media may be served from and added from; empty means the folders that hold the
        indexed media (derived from the index).
    max_upload_bytes / max_upload_pixels: limits on an image uploaded as a search example.
    max_k / max_offset: bounds on one page of hits and on how deep paging may go.
    thumbnail_size: longest side of a thumbnail, in pixels.
    threads: requests one server process works on at once (its thread pool); the others wait their
        turn in arrival order. Default: the number of CPUs. More threads than cores only share the GIL
        and the cores among more requests, so every request takes longer: on 2 cores under 32 clients,
        40 threads (Starlette's default) gave p99 968 ms where 1 or 2 gave 171-173 ms (docs/benchmarks.md).
    """

    token: str | None = field(default=None, repr=False)
    public_read: bool = True
    media_roots: tuple[str, ...] = ()
    max_upload_bytes: int = 10 * 1024 * 1024
    max_upload_pixels: int = 40_000_000
    max_k: int = 500
    max_offset: int = 10_000
    thumbnail_size: int = 320
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
