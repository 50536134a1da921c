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
from mmindex.media.scan import ScanItem, media_kind, scan

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
    compacted: int = 0  # batch files merged by the compaction that followed (IngestConfig.auto_compact)
    warnings: list[str] = field(default_factory=list)  # upkeep that failed after every batch was committed

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
    img, (width, height) = images.open_image_sized(data, config.max_pixels, draft_size=dc.resize)
    frame = images.preprocess(img, dc.input_size, dc.resize, dc.mean, dc.std, dc.interpolation)
    return Decoded(path, "image", digest, st.st_size, st.st_mtime_ns, [DecodedSegment([frame], [(None, None)])],
                   width=width, height=height)  # the file's size, not the draft-reduced decode's


def _hash_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


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
    confine_to: Iterable[str] | None = None,
) -> AddReport:
    """Index `paths` into `store` (opened for writing). The model is created only if something is new.

    `confine_to`: folders outside which no symbolic link is followed (see `scan`)."""
    t0 = time.perf_counter()
    items = list(scan(paths, confine_to))
    runtime = None

    def mapper(pending: list[Decoded]) -> list[MediaRecord]:
        nonlocal runtime
        runtime = runtime or runtime_factory()
        return infer(pending, runtime, config.batch_size, config.pool)

    writer = BatchWriter(store, config.batch_size, mapper)
    for done, (item, result) in enumerate(_read_all(items, writer.known, data_config, config), 1):
        writer.take(item.path, result)
        if progress:
            progress(done, len(items))
    writer.flush()
    writer.report.seconds = time.perf_counter() - t0
    return writer.report


class BatchWriter:
    """Writer stage: takes each file's result in scan order and commits them batch by batch.

    A result is a `MediaError`, `_UNCHANGED`, or an item for `mapper` (a `Decoded` for the local engine,
    which infers at flush time; a finished `MediaRecord` for the Ray engine). A batch is committed once
    it holds `batch_size` keyframes, in one `Store.write_batch` transaction with its errors, so that a
    killed run keeps every committed batch and a re-run skips it. Only this object writes to the store.
    """

    def __init__(self, store: Store, batch_size: int,
                 mapper: Callable[[list], list[MediaRecord]] = lambda records: records):
        self.store = store
        self.known = store.media_hashes()
        self.applied = detectors.load_applied(store)  # every applied detector scores the new media too
        self.batch_size = batch_size
        self.mapper = mapper
        self.report = AddReport()
        self._pending: list = []
        self._pending_frames = 0
        self._errors: list[tuple[str, str]] = []

    def take(self, path: str, result: object) -> None:
        """Record one file's result; commit when a batch is full."""
        if isinstance(result, MediaError):
            self._errors.append((path, str(result)))
        elif result is _UNCHANGED:
            self.report.unchanged += 1
        else:
            self._pending.append(result)
            self._pending_frames += sum(len(s.keyframes) for s in result.segments)
        if self._pending_frames >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Commit what is pending (media and errors) in one transaction."""
        records = self.mapper(self._pending) if self._pending else []
        errors = self._errors
        if records or errors:
            self.store.write_batch(records, errors, detectors.score_records(self.applied, records))
        for r in records:
            if r.path in self.known:
                self.report.updated += 1
            else:
                self.report.added += 1
        self.report.errors.extend(errors)
        self._pending, self._pending_frames, self._errors = [], 0, []


def read_item(item: ScanItem, known: dict[str, str], data_config, config: IngestConfig) -> object:
    """Reader stage for one scanned item: `Decoded`, `_UNCHANGED`, or the `MediaError` that explains the failure.

    Never raises for bad input, so that one bad file never stops a run (in a thread or a Ray task).
    """
    if item.error:
        return MediaError(item.error)
    try:
        return read_media(item.path, known.get(item.path), data_config, config)
    except MediaError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - an unexpected decoder failure must not stop the run
        return MediaError(f"unexpected error while decoding: {type(exc).__name__}: {exc}")


def _read_all(items, known, data_config, config: IngestConfig) -> Iterator[tuple[object, object]]:
    """Yield (item, Decoded | _UNCHANGED | MediaError) in scan order, decoding ahead in threads."""

    def job(item):
        return read_item(item, known, data_config, config)

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
