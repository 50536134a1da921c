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
name.

An apply is resumable (schema v7). Its first transaction adds the detector as pending (its row named
"NAME:applying", the bundle's SHA-256 recorded, its label columns reserved, no concept rows) with the index's copy of
the bundle; then the score files of the batches scored so far are committed every `COMMIT_SECONDS`; the last
transaction gives it its name and its concepts, and removes the detector it replaces. Searches, `concepts`, `info`
and `add` see no pending detector: until that last commit the index answers as if the apply had not begun (a
detector applied again under its name keeps answering with its previous version). Killed, an apply run again with the
same bundle goes on with the batches that have no scores yet (a different bundle under that name starts afresh);
`compact` keeps a pending detector's scores of a merged batch only when all its parts had them (else the resumed apply
scores it), `remove` needs nothing, and a batch added meanwhile is scored by the resumed apply.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
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
COMMIT_SECONDS = 5.0  # an apply commits the scores it has at most this often: what a kill -9 costs a re-run


def apply(store: Store, bundle_path: str | os.PathLike, bundle, score: Scorer | Callable, name: str | None = None,
          kind: str = "applied", details: str | None = None, read: ReadOptions | None = None,
          progress: ProgressFn | None = None, commit_seconds: float | None = None) -> dict:
    """Score every segment of the index with a detector and add its labels as concepts.

    `bundle` describes the detector (name, mode, backbone, weights_id, labels) and `score` is its `Scorer` (a bare
    function scores stored embeddings); the caller has checked that it fits this index. `read`: how media are read
    back (pixels, clips); `progress(segments done, in all)`. Re-applying a detector of the same name replaces it and
    bumps its version. `kind` is "applied" (a trained bundle) or "taught" (from the index's judgments; `details`: its
    training, as JSON). The scores are committed every `commit_seconds` (default `COMMIT_SECONDS`) while the
    detector is pending (see the module docstring): a killed apply, run again with the same bundle, goes on from its
    last commit. Returns {name, detector_id, version, concepts: [(id, name)], segments, replaced, resumed (batches
    scored by an earlier, interrupted run), errors: [(path, why)] of the files this run could not read back}.
    """
    scorer = as_scorer(score, len(bundle.labels))
    name = name or bundle.name
    if ":" in name or not name.strip():
        raise DetectorError(f"detector name {name!r} must be non-empty and contain no ':'")
    if name.strip().lower() == RESERVED:
        raise DetectorError(f"detector name {name!r} is reserved: `{RESERVED}:NAME` names a built-in concept")
    folder = store.root / FOLDER
    folder.mkdir(exist_ok=True)
    det_id, resumed = _pending(store, Path(bundle_path), bundle, name, kind, details)
    every = COMMIT_SECONDS if commit_seconds is None else commit_seconds
    errors = _score_in_chunks(store, det_id, name, scorer, read or ReadOptions(), progress, every)
    replaced: list[str] = []
    with store.transaction():
        old = store.detector_named(name)
        version = store.detector_version(name) + 1
        if old:
            replaced = [old[1], *store.detector_score_files(old[0]).values()]
            store.delete_detector(old[0])
        concepts = store.finish_detector(det_id, name, version)
        segments = store.segment_count()
    for f in replaced:  # after the commit: readers of an older snapshot may still read them
        (folder / f).unlink(missing_ok=True)
    return {"name": name, "detector_id": det_id, "version": version, "concepts": concepts, "segments": segments,
            "replaced": bool(old), "resumed": resumed, "errors": errors}


def _pending(store: Store, bundle_path: Path, bundle, name: str, kind: str, details: str | None) -> tuple[int, int]:
    """(id, batches already scored) of the pending detector of `name`: the one an interrupted apply of the same
    bundle left, or a new one (an interrupted apply of another bundle under that name is discarded)."""
    with open(bundle_path, "rb") as f:
        sha = hashlib.file_digest(f, "sha256")
    sha.update((details or "").encode())  # the same bundle applied with other options is another apply
    digest = sha.hexdigest()
    folder, dropped = store.root / FOLDER, []
    with store.transaction():
        found = store.pending_detector(name)
        if found and found[2] == digest:
            return found[0], len(store.detector_score_files(found[0]))
        if found:
            dropped = [found[1], *store.detector_score_files(found[0]).values()]
            store.delete_detector(found[0])
        det_id = store.add_pending_detector(name, bundle.mode, bundle.backbone, bundle.weights_id, bundle.labels,
                                            digest, kind, details)
        with atomic_write(folder / bundle_file(det_id)) as tmp:
            shutil.copyfile(bundle_path, tmp)
        store.name_detector_bundle(det_id, bundle_file(det_id))
    for f in dropped:
        (folder / f).unlink(missing_ok=True)
    return det_id, 0


def _score_in_chunks(store: Store, det_id: int, name: str, scorer: Scorer, read: ReadOptions,
                     progress: ProgressFn | None, every: float) -> list[tuple[str, str]]:
    """Score the batches the pending detector has no scores of, committing what is scored every `every` seconds
    (each commit: the score files, their rows and the files that could not be read back). Returns those files."""
    held: list[tuple[int, np.ndarray, list[tuple[str, str]]]] = []
    errors: list[tuple[str, str]] = []

    def commit() -> None:
        with store.transaction():
            for batch_id, scores, _ in held:
                write_scores(store, batch_id, {det_id: scores})
            store.record_errors([(path, f"apply {name!r}: {why}; its segments score 0")
                                 for _, _, missed in held for path, why in missed])
        held.clear()

    last = time.monotonic()
    done = set(store.detector_score_files(det_id))
    for batch_id, scores, missed in detector_inputs.score_batches(store, scorer, read, progress, skip=done):
        held.append((batch_id, scores, missed))
        errors += missed
        if time.monotonic() - last >= every:
            commit()
            last = time.monotonic()
    if held:
        commit()
    return errors
