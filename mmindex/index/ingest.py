"""`add`: scan → read and decode (threads) → infer (batched) → write (one transaction per batch).

Reader, mapper and writer are separate small functions; `add_paths` drives them. Decoding runs in a
thread pool while the main thread runs the model, so both cores stay busy. Every batch is committed
on its own, so a run killed at any moment keeps every batch committed before, and a re-run skips
what is already there (same path and same content hash) and never duplicates.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from mmindex.config import IngestConfig
from mmindex.errors import MediaError
from mmindex.index import detectors
from mmindex.index.store import MediaRecord, SegmentRecord, Store
from mmindex.media import images
from mmindex.media.scan import media_kind, scan

ProgressFn = Callable[[int, int], None]  # (files done, files total)


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
class AddReport:
    """What `add` did. `errors` lists (path, reason) for every file that failed in this run."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return len(self.errors)


_UNCHANGED = object()


def read_media(path: str, known_sha256: str | None, data_config, config: IngestConfig) -> Decoded | object:
    """Reader + decoder for one file (runs in a worker thread). Raises MediaError on bad input.

    Returns `_UNCHANGED` when the file's content hash equals the indexed one.
    """
    kind = media_kind(path) or "image"
    try:
        st = os.stat(path)
        if kind == "video":
            from mmindex.media import video  # noqa: PLC0415 (PyAV is imported only when videos show up)

            digest = _hash_file(path)
            if digest == known_sha256:
                return _UNCHANGED
            return video.decode(path, digest, st, data_config, config)
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest == known_sha256:
        return _UNCHANGED
    dc = data_config
    img = images.open_image(data, config.max_pixels, draft_size=dc.resize)
    frame = images.preprocess(img, dc.input_size, dc.resize, dc.mean, dc.std, dc.interpolation)
    return Decoded(path, "image", digest, st.st_size, st.st_mtime_ns, [DecodedSegment([frame], [(None, None)])],
                   width=img.width, height=img.height)


def _hash_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def infer(decoded: list[Decoded], runtime, batch_size: int, pool: str = "max") -> list[MediaRecord]:
    """Mapper: run the model over every keyframe, pool keyframes into segment scores and embeddings."""
    frames = [f for d in decoded for s in d.segments for f in s.frames]
    probs, embs = [], []
    for i in range(0, len(frames), batch_size):
        p, e = runtime.run(np.stack(frames[i : i + batch_size]))
        probs.append(p)
        embs.append(e)
    probs_all = np.concatenate(probs) if probs else np.zeros((0, 0), np.float32)
    embs_all = np.concatenate(embs) if embs else np.zeros((0, 0), np.float32)
    records, i = [], 0
    for d in decoded:
        segments = []
        for s in d.segments:
            n = len(s.frames)
            p, e = probs_all[i : i + n], embs_all[i : i + n]
            i += n
            scores = p.max(axis=0) if pool == "max" else p.mean(axis=0)
            emb = e.mean(axis=0)
            emb /= max(float(np.linalg.norm(emb)), 1e-12)
            segments.append(SegmentRecord(scores, emb, s.start, s.end, s.keyframes))
        records.append(MediaRecord(d.path, d.kind, d.sha256, d.size, d.mtime_ns, segments,
                                   d.width, d.height, d.duration))
    return records


def add_paths(
    store: Store,
    paths: Iterable[str | os.PathLike],
    config: IngestConfig,
    runtime_factory: Callable[[], object],
    data_config,
    progress: ProgressFn | None = None,
) -> AddReport:
    """Index `paths` into `store` (opened for writing). The model is created only if something is new."""
    t0 = time.perf_counter()
    report = AddReport()
    items = list(scan(paths))
    known = store.media_hashes()
    applied = detectors.load_applied(store)  # every applied detector scores the new media too
    total, done = len(items), 0
    runtime = None
    pending: list[Decoded] = []
    pending_frames = 0
    errors: list[tuple[str, str]] = []

    def flush() -> None:
        nonlocal runtime, pending, pending_frames, errors
        if pending:
            runtime = runtime or runtime_factory()
            records = infer(pending, runtime, config.batch_size, config.pool)
        else:
            records = []
        if records or errors:
            store.write_batch(records, errors, detectors.score_records(applied, records))
        for r in records:
            if r.path in known:
                report.updated += 1
            else:
                report.added += 1
        report.errors.extend(errors)
        pending, pending_frames, errors = [], 0, []

    for item, result in _read_all(items, known, data_config, config):
        done += 1
        if isinstance(result, MediaError):
            errors.append((item.path, str(result)))
        elif result is _UNCHANGED:
            report.unchanged += 1
        else:
            pending.append(result)
            pending_frames += sum(len(s.frames) for s in result.segments)
        if pending_frames >= config.batch_size:
            flush()
        if progress:
            progress(done, total)
    flush()
    report.seconds = time.perf_counter() - t0
    return report


def _read_all(items, known, data_config, config: IngestConfig) -> Iterator[tuple[object, object]]:
    """Yield (item, Decoded | _UNCHANGED | MediaError) in scan order, decoding ahead in threads."""

    def job(item):
        if item.error:
            return MediaError(item.error)
        try:
            return read_media(item.path, known.get(item.path), data_config, config)
        except MediaError as exc:
            return exc
        except Exception as exc:  # noqa: BLE001 - an unexpected decoder failure must not stop the run
            return MediaError(f"unexpected error while decoding: {type(exc).__name__}: {exc}")

    window = max(4, 2 * config.batch_size)
    with ThreadPoolExecutor(max_workers=max(1, config.workers), thread_name_prefix="mmindex-read") as pool:
        futures: deque = deque()
        it = iter(items)
        for item in it:
            futures.append((item, pool.submit(job, item)))
            if len(futures) >= window:
                break
        while futures:
            item, fut = futures.popleft()
            nxt = next(it, None)
            if nxt is not None:
                futures.append((nxt, pool.submit(job, nxt)))
            yield item, fut.result()
