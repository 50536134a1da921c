"""Trained detectors applied to an index: their concept columns and per-batch score files.

Layout (schema v2, see `schema.MIGRATIONS[2]`):
    detectors          one row per applied detector: name, bundle file, backbone, weights id, first column
    concepts           its labels as score columns (source "trained", id "<detector>:<label>")
    detector_scores    (detector, batch) -> file: that batch's rows scored by that detector
    detectors/NNNN.mmdet            a copy of the bundle (media added later are scored with it)
    detectors/NNNN-BBBBBBBB.npy     float16 (rows of batch B, labels of detector N)

Crash safety is the batches': score files are written (temporary name, fsync, rename) inside the
transaction that references them, so a killed `apply` leaves at most unreferenced files, which the next
writer deletes (`delete_orphans`). Readers see a detector's columns only once all its files exist.
The rows themselves are written and read by the store (`DetectorRows`, store_detectors.py); this module
writes no SQL.

Only probe detectors trained on the index's own backbone and weights can be applied: they score the
stored embeddings directly, with no media decoded again. Other detectors (finetune, scratch, another
backbone) are refused with `DetectorError` before anything is written.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmindex.atomic import atomic_write
from mmindex.errors import DetectorError
from mmindex.index.arrays import read_batch_file

if TYPE_CHECKING:
    from mmindex.index.store import Store
    from mmindex.records import MediaRecord

FOLDER = "detectors"


Scorer = Callable[[np.ndarray], np.ndarray]  # float32 embeddings (n, D) -> float16 scores (n, labels)


def bundle_file(detector_id: int) -> str:
    return f"{detector_id:04d}.mmdet"


def score_file(detector_id: int, batch_id: int) -> str:
    return f"{detector_id:04d}-{batch_id:08d}.npy"


def write_npy(path: Path, array: np.ndarray) -> None:
    """Write under a temporary name, fsync, rename: a file under its final name is always whole."""
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def delete_orphans(store: Store) -> None:
    """Delete files under detectors/ that no committed row references (left by a killed writer)."""
    folder = store.root / FOLDER
    if not folder.is_dir():
        return
    known = store.detector_files()
    for p in folder.iterdir():
        if p.name not in known:
            p.unlink(missing_ok=True)


def applied(store: Store) -> list[tuple[int, str, Path]]:
    """The detectors applied to this index: (id, name, the index's own copy of its bundle). Loading a bundle
    is the learning side's (`mmindex.learn.checkpoint`); the index only stores what they score."""
    return [(i, name, store.root / FOLDER / f) for i, name, f in store.detector_bundles()]


def score_records(scorers: dict[int, Scorer], records: list[MediaRecord]) -> dict[int, np.ndarray]:
    """Scores of every segment of `records` by every applied detector: {detector id: (segments, labels)}."""
    emb = [s.embedding for m in records for s in m.segments]
    if not emb or not scorers:
        return {}
    x = np.stack(emb).astype(np.float32)
    return {det_id: score(x) for det_id, score in scorers.items()}


def write_scores(store: Store, batch_id: int, trained: dict[int, np.ndarray]) -> None:
    """Inside the batch's transaction: write each detector's score file for the batch and reference it."""
    folder = store.root / FOLDER
    folder.mkdir(exist_ok=True)
    for det_id, scores in trained.items():
        name = score_file(det_id, batch_id)
        write_npy(folder / name, scores)
        store.add_detector_scores(det_id, batch_id, name)


RESERVED = "wordnet"  # `wordnet:NAME` names a built-in concept (see `mmindex.concepts`), never a detector's


def apply(store: Store, bundle_path: str | os.PathLike, bundle, score: Scorer, name: str | None = None,
          kind: str = "applied", details: str | None = None) -> dict:
    """Score every segment of the index with a detector and add its labels as concepts, in one transaction.

    `bundle` describes the detector (name, mode, backbone, weights_id, labels) and `score` computes its scores
    of stored embeddings; the caller has checked that it fits this index's backbone. Re-applying a detector of
    the same name replaces it and bumps its version. `kind` is "applied" (a trained bundle) or "taught" (from the
    index's judgments; `details`: its training, as JSON). Returns {name, detector_id, version, concepts:
    [(id, name)], segments, replaced}.
    """
    name = name or bundle.name
    if ":" in name or not name.strip():
        raise DetectorError(f"detector name {name!r} must be non-empty and contain no ':'")
    if name.strip().lower() == RESERVED:
        raise DetectorError(f"detector name {name!r} is reserved: `{RESERVED}:NAME` names a built-in concept")
    folder = store.root / FOLDER
    folder.mkdir(exist_ok=True)
    replaced: list[str] = []
    with store.transaction():
        old = store.detector_named(name)
        version = store.detector_version(name) + 1
        if old:
            replaced = [old[1], *store.detector_score_files(old[0]).values()]
            store.delete_detector(old[0])
        det_id, concepts = store.add_detector(name, bundle.mode, bundle.backbone, bundle.weights_id, bundle.labels,
                                              version, kind, details)
        with atomic_write(folder / bundle_file(det_id)) as tmp:
            shutil.copyfile(bundle_path, tmp)
        store.name_detector_bundle(det_id, bundle_file(det_id))
        for batch_id, file in store.batch_file_names().items():
            emb = read_batch_file(store.root / "batches" / file).embeddings.astype(np.float32)
            write_scores(store, batch_id, {det_id: score(emb)})
        segments = store.segment_count()
    for f in replaced:  # after the commit: readers of an older snapshot may still read them
        (folder / f).unlink(missing_ok=True)
    return {"name": name, "detector_id": det_id, "version": version, "concepts": concepts, "segments": segments,
            "replaced": bool(old)}
