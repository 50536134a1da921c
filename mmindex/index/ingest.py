"""`add`: scan → read and decode (threads) → infer (batched) → write (one transaction per batch).

Reader, mapper and writer are separate small functions; `add_paths` drives them. Decoding runs in a
thread pool while the main thread runs the model, so both cores stay busy. Every batch is committed
on its own, so a run killed at any moment keeps every batch committed before, and a re-run skips
what is already there (same path and same content hash) and never duplicates.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from mmindex.config import IngestConfig
from mmindex.errors import MediaError
from mmindex.extract.mapper import infer
from mmindex.extract.reader import UNCHANGED, read_all
from mmindex.index import detectors
from mmindex.index.store import Store
from mmindex.media.scan import scan
from mmindex.records import Decoded, MediaRecord

ProgressFn = Callable[[int, int], None]  # (files done, files total)


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


def add_paths(
    store: Store,
    paths: Iterable[str | os.PathLike],
    config: IngestConfig,
    runtime_factory: Callable[[], object],
    data_config,
    progress: ProgressFn | None = None,
    confine_to: Iterable[str] | None = None,
    scorers: dict[int, detectors.Scorer] | None = None,
    processes: int = 0,
) -> AddReport:
    """Index `paths` into `store` (opened for writing). The model is created only if something is new.

    `confine_to`: folders outside which no symbolic link is followed (see `scan`). `scorers`: the applied
    detectors' scorers, {detector id: `detectors.Scorer`}: the reader also makes the pixels and clips they take, and
    each scores every batch of new media (see `mmindex.index.detector_inputs`). `processes`: decode in that many
    processes rather than threads (see `read_all`)."""
    t0 = time.perf_counter()
    items = list(scan(paths, confine_to))
    runtime = None

    def mapper(pending: list[Decoded]) -> list[MediaRecord]:
        nonlocal runtime
        runtime = runtime or runtime_factory()
        return infer(pending, runtime, config.batch_size, config.pool)

    writer = BatchWriter(store, config.batch_size, mapper, scorers)
    inputs = detectors.inputs_taken(writer.scorers)  # what applied detectors take besides embeddings
    for done, (item, result) in enumerate(read_all(items, writer.known, data_config, config, inputs, processes), 1):
        writer.take(item.path, result)
        if progress:
            progress(done, len(items))
    writer.flush()
    writer.report.seconds = time.perf_counter() - t0
    return writer.report


class BatchWriter:
    """Writer stage: takes each file's result in scan order and commits them batch by batch.

    A result is a `MediaError`, `UNCHANGED`, or an item for `mapper` (a `Decoded` for the local executor,
    which infers at flush time; a finished `MediaRecord` for the Ray executor). A batch is committed once
    it holds `batch_size` keyframes, in one `Store.write_batch` transaction with its errors, so that a
    killed run keeps every committed batch and a re-run skips it. Only this object writes to the store.
    """

    def __init__(self, store: Store, batch_size: int,
                 mapper: Callable[[list], list[MediaRecord]] = lambda records: records,
                 scorers: dict[int, detectors.Scorer] | None = None):
        self.store = store
        self.known = store.media_hashes()
        self.scorers = scorers or {}  # every applied detector scores the new media too
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
        elif result is UNCHANGED:
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
            self.store.write_batch(records, errors, detectors.score_records(self.scorers, records))
        for r in records:
            if r.path in self.known:
                self.report.updated += 1
            else:
                self.report.added += 1
        self.report.errors.extend(errors)
        self._pending, self._pending_frames, self._errors = [], 0, []


