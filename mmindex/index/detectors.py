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

Every kind of trained model can be applied (issue 18): each says what it takes (`Scorer.input`, see
`index.detector_inputs`). Probes on the index's own backbone and weights score the stored embeddings, with no media
decoded again; temporal models read the stored keyframe embeddings; scratch, finetune and clip models read the
media back (a file gone or changed since it was indexed is recorded in `errors` and its segments score 0). The
indexer checks that a detector fits the index before calling `apply`, which refuses nothing of its own but a bad
name. A long apply is still one transaction: killed at any point, it leaves the index as it was.
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
from mmindex.extract.inputs import ModelInput
from mmindex.index import detector_inputs
from mmindex.index.detector_inputs import ProgressFn, ReadOptions, Scorer

if TYPE_CHECKING:
    from mmindex.index.store import Store
    from mmindex.records import MediaRecord

__all__ = ["FOLDER", "ReadOptions", "Scorer", "applied", "apply", "as_scorer", "score_records", "write_scores"]

FOLDER = "detectors"


def as_scorer(score: Scorer | Callable[[np.ndarray], np.ndarray], labels: int = 0) -> Scorer:
    """A `Scorer`; a bare function is taken to score embeddings (n, D) float32 → (n, labels) float16."""
    return score if isinstance(score, Scorer) else Scorer(ModelInput("embedding"), score, labels)


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


def score_records(scorers: dict[int, Scorer | Callable], records: list[MediaRecord]) -> dict[int, np.ndarray]:
    """Scores of every segment of `records` by every applied detector: {detector id: (segments, labels)}, each
    from what it takes (`detector_inputs.score_records`)."""
    if not scorers or not any(m.segments for m in records):
        return {}
    return {det_id: detector_inputs.score_records(as_scorer(score), records) for det_id, score in scorers.items()}


def inputs_taken(scorers: dict[int, Scorer | Callable]) -> list[ModelInput]:
    """The distinct pixel and clip inputs of the applied detectors: what the reader must make of new media."""
    found = {s.input.key: s.input for s in map(as_scorer, scorers.values()) if s.takes in ("pixels", "clip")}
    return list(found.values())


def write_scores(store: Store, batch_id: int, trained: dict[int, np.ndarray]) -> None:
    """Inside the batch's transaction: write each detector's score file for the batch and reference it."""
    folder = store.root / FOLDER
    folder.mkdir(exist_ok=True)
    for det_id, scores in trained.items():
        name = score_file(det_id, batch_id)
        write_npy(folder / name, scores)
        store.add_detector_scores(det_id, batch_id, name)


RESERVED = "wordnet"  # `wordnet:NAME` names a built-in concept (see `mmindex.concepts`), never a detector's


def apply(store: Store, bundle_path: str | os.PathLike, bundle, score: Scorer | Callable, name: str | None = None,
          kind: str = "applied", details: str | None = None, read: ReadOptions | None = None,
          progress: ProgressFn | None = None) -> dict:
    """Score every segment of the index with a detector and add its labels as concepts, in one transaction.

    `bundle` describes the detector (name, mode, backbone, weights_id, labels) and `score` is its `Scorer` (a bare
    function scores stored embeddings); the caller has checked that it fits this index. `read`: how media are read
    back (pixels, clips); `progress(segments done, in all)`. Re-applying a detector of the same name replaces it and
    bumps its version. `kind` is "applied" (a trained bundle) or "taught" (from the index's judgments; `details`: its
    training, as JSON). Returns {name, detector_id, version, concepts: [(id, name)], segments, replaced, errors:
    [(path, why)] of the files that could not be read back}.
    """
    scorer = as_scorer(score, len(bundle.labels))
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
        errors: list[tuple[str, str]] = []
        for batch_id, scores, missed in detector_inputs.score_batches(store, scorer, read or ReadOptions(), progress):
            write_scores(store, batch_id, {det_id: scores})
            errors += missed
        store.record_errors([(path, f"apply {name!r}: {why}; its segments score 0") for path, why in errors])
        segments = store.segment_count()
    for f in replaced:  # after the commit: readers of an older snapshot may still read them
        (folder / f).unlink(missing_ok=True)
    return {"name": name, "detector_id": det_id, "version": version, "concepts": concepts, "segments": segments,
            "replaced": bool(old), "errors": errors}
