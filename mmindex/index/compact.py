"""`mmindex compact`: merge small batch files into larger ones and drop the rows of removed segments.

Adding never rewrites what is there: every batch lands in a new file, and removing media only deletes
rows from SQLite, leaving dead rows in their files. Compaction takes the batch files in segment-id order
(each holds a run of ids, so a merged file does too) and groups consecutive ones into runs of at most
`target_rows` live rows. A group is rewritten when it has several files, dead rows, or a pre-v3 `.npz`
file; a clean file of at least half the target is left alone, so compacting again costs nothing.

Crash safety: each group is one transaction. The merged batch file (and each applied detector's merged
score file) is written under a temporary name, fsynced and renamed *inside* the transaction that repoints
the group's segments and deletes its old batch rows; the old files are deleted after the commit. A kill
at any moment leaves either the old files or the new ones referenced, plus unreferenced files that the
next writer deletes, so the index stays readable and consistent, and a re-run carries on. The statements
are the store's (`BatchRows`, store_batches.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mmindex.errors import IndexDamaged
from mmindex.index import arrays, detectors
from mmindex.index.snapshot import as_slice
from mmindex.index.store import Store

DEFAULT_TARGET_ROWS = 65_536

ProgressFn = Callable[[int, int], None]  # (rows done, rows total)


@dataclass
class CompactReport:
    """What `compact` did: batch files before and after, dead rows dropped, groups merged, time taken."""

    files_before: int
    files_after: int
    rows_dropped: int
    groups: int
    seconds: float


@dataclass
class _Batch:
    id: int
    file: str
    rows: int
    live: int


def plan(store: Store, target_rows: int = DEFAULT_TARGET_ROWS) -> list[list[_Batch]]:
    """The groups of consecutive batches that compaction would merge, in segment-id order."""
    batches = [_Batch(*r) for r in store.live_batches()]
    groups: list[list[_Batch]] = []
    current: list[_Batch] = []

    def close() -> None:
        if len(current) > 1 or current and (current[0].live < current[0].rows
                                             or current[0].file.endswith(arrays.LEGACY_SUFFIX)):
            groups.append(list(current))
        current.clear()

    for b in batches:
        settled = b.live == b.rows and b.live * 2 >= target_rows and b.file.endswith(arrays.SUFFIX)
        if settled or sum(c.live for c in current) + b.live > target_rows:
            close()
        if not settled:
            current.append(b)
    close()
    return groups


def worth_compacting(store: Store, min_files: int, target_rows: int = DEFAULT_TARGET_ROWS) -> bool:
    """Whether compaction would rewrite at least `min_files` batch files (what `add` checks afterwards).

    `add` asks this after every run, one that found nothing new included (a run killed before its
    compaction leaves the files for the next one), so it is cheap when the answer is plainly no: fewer
    batch files than `min_files` is one count of the small batch table, before any plan is made.
    """
    if min_files <= 0 or store.batch_count() < min_files:
        return False
    return sum(len(g) for g in plan(store, target_rows)) >= min_files


def compact(store: Store, target_rows: int = DEFAULT_TARGET_ROWS, progress: ProgressFn | None = None) -> CompactReport:
    """Merge small batch files and drop dead rows; `store` is open for writing. See the module docstring."""
    t0 = time.perf_counter()
    before = store.batch_files()
    groups = plan(store, target_rows)
    total, done = sum(b.live for g in groups for b in g), 0
    for group in groups:
        _merge(store, group)
        done += sum(b.live for b in group)
        if progress:
            progress(done, total)
    after = store.batch_files()
    return CompactReport(before["files"], after["files"], before["dead_rows"] - after["dead_rows"], len(groups),
                         time.perf_counter() - t0)


def _merge(store: Store, group: list[_Batch]) -> None:
    """Rewrite one group as one batch file, in one transaction (see the module docstring)."""
    root = store.root / "batches"
    ids = [b.id for b in group]
    try:
        sources = {b.id: arrays.read_batch_file(root / b.file) for b in group}
    except FileNotFoundError as exc:  # the writer holds the lock: no one else removed it
        raise IndexDamaged(store.root, f"batches/{os.path.basename(exc.filename)} is missing") from None
    n_columns = max(s.scores.shape[0] for s in sources.values())
    dim = int(store.meta("embed_dim") or next(iter(sources.values())).embeddings.shape[1])
    old_scores: list[str] = []
    with store.transaction():
        seg = np.array(store.segments_in(ids), dtype=np.int64).reshape(-1, 3)
        n = len(seg)
        new_id = store.new_batch(n)
        name = arrays.batch_file_name(new_id)
        where = {b: (as_slice(np.flatnonzero(seg[:, 1] == b)), seg[seg[:, 1] == b, 2]) for b in ids}
        with arrays.new_batch_file(root / name, n, n_columns, dim, store.hierarchy()) as out:
            for b, (dest, rows) in where.items():
                src = sources[b]
                out.scores[: src.scores.shape[0], dest] = src.scores[:, rows]
                out.embeddings[dest] = src.embeddings[rows]
        store.record_batch_file(new_id, name)
        store.move_segments(new_id, seg[:, 0])
        merged: dict[int, np.ndarray] = {}
        pending = store.pending_detectors()
        for det_id, n_labels in store.detector_widths():
            files = store.detector_score_files(det_id, ids)
            old_scores += files.values()
            if det_id in pending and len(files) < len(ids):
                continue  # an apply was interrupted before scoring every part: its re-run scores the merged batch
            block = np.zeros((n, n_labels), dtype=np.float16)
            for b, file in files.items():
                dest, rows = where[b]
                block[dest] = np.load(store.root / detectors.FOLDER / file)[rows]
            merged[det_id] = block
        if merged:
            detectors.write_scores(store, new_id, merged)
        store.delete_batches(ids)  # their detector_scores rows cascade
    del sources  # unmap before deleting (not needed on Linux, but keeps the descriptors few)
    for b in group:  # after the commit: readers of an older snapshot keep their mappings
        (root / b.file).unlink(missing_ok=True)
    for file in old_scores:
        (store.root / detectors.FOLDER / file).unlink(missing_ok=True)
