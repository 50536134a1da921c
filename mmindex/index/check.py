"""`mmindex check` and `mmindex repair`: find damage in an index directory, and mend it without losing data.

`check` reads everything once, as `git fsck` and SQLite's `PRAGMA integrity_check` do: the database and its
schema, every batch file's size and SHA-256 (recorded when it was written, schema v4), the vector index,
the applied detectors' files, unreferenced files and dead rows. Each problem is one `Problem`: what is
wrong, what it means, and the command that fixes it. It never writes.

`repair` rebuilds what is derived (the vector index, detector score files, cached thumbnails) and moves
what is damaged into `quarantine/` (never deleting it). The media whose segments lived in a damaged batch
file are forgotten, so that the next `mmindex add` indexes them again from their source files. Every step
is its own transaction and can be run again, so an interrupted repair is finished by the next one.

The statements are the store's and the schema's: `check` reads the database file through schema.py, then
through a `Store` over that read-only connection (no lock taken, nothing migrated).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mmindex.errors import IndexDamaged, MmindexError, StoreError
from mmindex.index import arrays, detectors, schema, vectors
from mmindex.index.schema import DB_FILE, SCHEMA_VERSION, acquire_lock
from mmindex.index.store import Store

log = logging.getLogger(__name__)

QUARANTINE = "quarantine"
DAMAGE, NOTE = "damage", "note"


@dataclass
class Problem:
    """One finding of `check`: `severity` is "damage" (data unreadable until repaired) or "note" (harmless)."""

    severity: str
    what: str
    means: str
    fix: str
    file: str | None = None  # the file concerned, relative to the index folder

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return f"{self.severity}: {self.what}: {self.means} (fix: {self.fix})"


def check(root: str | os.PathLike) -> list[Problem]:
    """Every problem of the index at `root`, damage first. Reads only."""
    root = Path(root)
    fix = f"mmindex repair --index {root}"
    if not (root / DB_FILE).is_file():
        raise StoreError(f"no index at {root}")
    store, problems = _open_database(root / DB_FILE, fix)
    if store is None:
        return problems
    with store:
        problems += _check_batches(store, fix)
        problems += _check_vectors(store, fix)
        problems += _check_detectors(store, fix)
        problems += _notes(store)
    return sorted(problems, key=lambda p: p.severity != DAMAGE)


def _open_database(path: Path, fix: str) -> tuple[Store | None, list[Problem]]:
    """A store over a read-only connection to the database file `path`, and the file's own problems; None when
    it cannot be used."""
    unusable = "the index's media, segments and concepts cannot be read; repair recovers what SQLite can" \
               " and quarantines the rest (then `mmindex add` your folders again)"
    if path.stat().st_size == 0:
        return None, [Problem(DAMAGE, f"{DB_FILE} is empty (0 bytes)", unusable, fix, DB_FILE)]
    try:
        db = schema.connect_read_only(path)
        result = schema.integrity_problems(db)
    except sqlite3.Error as exc:
        return None, [Problem(DAMAGE, f"{DB_FILE} cannot be read ({exc})", unusable, fix, DB_FILE)]
    problems = []
    if result:
        problems.append(Problem(DAMAGE, f"{DB_FILE} fails SQLite's integrity check ({'; '.join(result[:3])})",
                                unusable, fix, DB_FILE))
        db.close()
        return None, problems
    version = schema.version(db)
    if version == 0 or version > SCHEMA_VERSION:
        db.close()
        what = "holds no mmindex schema" if version == 0 else f"has schema version {version} (newer than this mmindex)"
        return None, [Problem(DAMAGE, f"{DB_FILE} {what}", unusable if version == 0 else "use a newer mmindex",
                              fix if version == 0 else "pip install -U mmindex", DB_FILE)]
    store = Store(path.parent, db, None)  # its reads over this connection: no writer lock, no migration
    if store.meta("model") is None:
        store.close()
        return None, [Problem(DAMAGE, f"{DB_FILE} names no model (an interrupted creation)", unusable, fix, DB_FILE)]
    for table, rowid, parent in schema.dangling_references(db):
        problems.append(Problem(DAMAGE, f"row {rowid} of table {table} points to a missing row of {parent}",
                                "a dangling reference", fix, DB_FILE))
    return store, problems


def _batch_problem(root: Path, batch_id: int, file: str, size: int | None, digest: str | None,
                   max_row: int, embed_dim: int) -> str | None:
    """Why a batch file is unusable, or None."""
    path = root / "batches" / file
    if not path.is_file():
        return "is missing"
    actual = path.stat().st_size
    if size is not None and actual != size:
        return f"has {actual} bytes, {size} were written"
    if digest is not None:
        with open(path, "rb") as f:
            if hashlib.file_digest(f, "sha256").hexdigest() != digest:
                return "does not match the SHA-256 recorded when it was written"
    try:
        a = arrays.read_batch_file(path)
    except IndexDamaged as exc:
        return f"cannot be read ({exc.what})"
    if a.scores.shape[1] <= max_row or a.embeddings.shape[1] != embed_dim:
        return f"holds {a.scores.shape[1]} rows of {a.embeddings.shape[1]} dimensions; the index needs" \
               f" {max_row + 1} rows of {embed_dim}"
    return None


def damaged_batches(store: Store) -> dict[int, tuple[str, str]]:
    """{batch id: (file, why)} for every batch file that cannot be used."""
    embed_dim = int(store.meta("embed_dim"))
    max_rows = store.last_rows()
    out = {}
    for batch_id, file, _rows, size, digest in store.batch_records():
        why = _batch_problem(store.root, batch_id, file, size, digest, max_rows.get(batch_id, -1), embed_dim)
        if why:
            out[batch_id] = (file, why)
    return out


def _check_batches(store: Store, fix: str) -> list[Problem]:
    problems = []
    for batch_id, (file, why) in damaged_batches(store).items():
        media = store.media_in_batch(batch_id)
        problems.append(Problem(DAMAGE, f"batch file batches/{file} {why}",
                                f"the scores and embeddings of {media} media are lost; repair quarantines the file"
                                " and forgets those media, and the next `mmindex add` indexes them again", fix,
                                f"batches/{file}"))
    return problems


def _vector_problem(store: Store) -> str | None:
    file = store.meta("vector_file")
    if not file:
        return None
    try:
        base = vectors.load_base(store.root, file, store.meta("vector_factory"))
    except FileNotFoundError:
        return f"vector index {vectors.FOLDER}/{file} is missing"
    except IndexDamaged as exc:
        return exc.what
    embed_dim = int(store.meta("embed_dim"))
    if base.index.d != embed_dim:
        return f"vector index {vectors.FOLDER}/{file} has {base.index.d} dimensions, the embeddings {embed_dim}"
    return None


def _check_vectors(store: Store, fix: str) -> list[Problem]:
    why = _vector_problem(store)
    return [Problem(DAMAGE, why, "similarity searches scan the stored embeddings exactly (slower) until it is"
                    " rebuilt from them; nothing is lost", fix, vectors.FOLDER)] if why else []


def damaged_detector_files(store: Store) -> list[tuple[int, int | None, str, str]]:
    """(detector id, batch id or None for the bundle, file, why) for every unusable file under detectors/."""
    out = []
    folder = store.root / detectors.FOLDER
    rows, widths = store.batch_sizes(), dict(store.detector_widths())
    for det_id, _name, file in store.detector_bundles(pending=True):
        n_labels = widths[det_id]
        if not (folder / file).is_file() or (folder / file).stat().st_size == 0:
            out.append((det_id, None, file, "is missing or empty"))
        for batch_id, score_file in store.detector_score_files(det_id).items():
            try:
                shape = np.load(folder / score_file, mmap_mode="r").shape
            except FileNotFoundError:
                out.append((det_id, batch_id, score_file, "is missing"))
                continue
            except (OSError, ValueError, EOFError) as exc:
                out.append((det_id, batch_id, score_file, f"cannot be read ({exc})"))
                continue
            if shape != (rows.get(batch_id), n_labels):
                out.append((det_id, batch_id, score_file, f"has shape {shape}, not ({rows.get(batch_id)}, {n_labels})"))
    return out


def _check_detectors(store: Store, fix: str) -> list[Problem]:
    return [Problem(DAMAGE, f"detector file {detectors.FOLDER}/{file} {why}",
                    "the detector's bundle is lost: repair removes it, apply it again" if batch is None
                    else "its concept scores on one batch read as 0; repair computes them again from the bundle",
                    fix, f"{detectors.FOLDER}/{file}")
            for _det, batch, file, why in damaged_detector_files(store)]


def _notes(store: Store) -> list[Problem]:
    notes, root = [], store.root
    vector_file = store.meta("vector_file")
    referenced = {"batches": set(store.batch_file_names().values()),
                  vectors.FOLDER: {vector_file} if vector_file else set(),
                  detectors.FOLDER: store.detector_files()}
    for folder, names in referenced.items():
        if not (root / folder).is_dir():
            continue
        for p in sorted((root / folder).iterdir()):
            if p.name not in names:
                notes.append(Problem(NOTE, f"{folder}/{p.name} is not referenced by the index",
                                     "left by an interrupted write; harmless",
                                     f"the next `mmindex add`, `compact` or `repair` --index {root} deletes it",
                                     f"{folder}/{p.name}"))
    pending = store.pending_detectors()
    for det_id, name, _ in store.detector_bundles(pending=True):
        if det_id in pending:
            scored, batches = len(store.detector_score_files(det_id)), len(store.batch_file_names())
            notes.append(Problem(NOTE, f"detector {name.rsplit(':', 1)[0]!r} is being applied, or its apply was "
                                 f"interrupted ({scored} of {batches} batches scored)",
                                 "searches do not see it until its apply finishes",
                                 f"mmindex apply MODEL --index {root} again goes on from there"))
    dead = store.batch_files()["dead_rows"]
    if dead > 0:
        notes.append(Problem(NOTE, f"{dead} dead rows in batch files", "disk space held by removed segments",
                             f"mmindex compact --index {root}"))
    unsummed = len(store.unsummed_batches())
    if unsummed:
        notes.append(Problem(NOTE, f"{unsummed} batch files were written without a checksum (before schema v4)",
                             "their size and format are checked, not their content",
                             f"mmindex repair --index {root} records them"))
    return notes


# ---- repair --------------------------------------------------------------------------------------
def repair(root: str | os.PathLike, load_scorer: Callable[[Path], detectors.Scorer] | None = None) -> list[str]:
    """Mend the index at `root`; returns what was done, one line each (empty when nothing was wrong).

    Holds the writer lock throughout. Never deletes a damaged file: it goes to `quarantine/<time>/`.
    `load_scorer(bundle path)` gives a detector's scoring function, to compute damaged score files again.
    """
    root = Path(root)
    if not (root / DB_FILE).is_file():
        raise StoreError(f"no index at {root}")
    lock_fd = acquire_lock(root)
    done: list[str] = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        if not _repair_database(root, stamp, done):
            return done
        store = Store._open(root, True, lock_fd)
    except BaseException:
        os.close(lock_fd)
        raise
    with store:
        _repair_batches(store, stamp, done)
        _repair_detectors(store, stamp, done, load_scorer)
        _record_checksums(store, done)
        if _vector_problem(store) or done:
            report = vectors.update(store, store.snapshot(), rebuild=True)
            done.append(f"rebuilt the vector index from the stored embeddings ({report['vectors']} vectors)")
        thumbs = root / "thumbnails"
        if thumbs.is_dir() and any(thumbs.iterdir()):
            shutil.rmtree(thumbs, ignore_errors=True)
            done.append("dropped the cached thumbnails (made again when shown)")
    return done


def _quarantine(root: Path, stamp: str, relative: str) -> str:
    """Move a file into quarantine/<stamp>/, keeping its relative path; returns where it went."""
    src = root / relative
    dest = root / QUARANTINE / stamp / relative
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dest)
    return str(dest.relative_to(root))


def _repair_database(root: Path, stamp: str, done: list[str]) -> bool:
    """Make index.sqlite usable: keep it, recover it with VACUUM INTO, or quarantine it and every data file
    (an index without its database cannot say what its files hold). False when no index is left."""
    if _usable(root / DB_FILE):
        return True
    recovered = root / (DB_FILE + ".recovered")
    recovered.unlink(missing_ok=True)
    try:
        schema.recover_copy(root / DB_FILE, recovered)
        ok = _usable(recovered)
    except (sqlite3.Error, OSError):
        ok = False
    moved = [_quarantine(root, stamp, n) for n in (DB_FILE, DB_FILE + "-wal", DB_FILE + "-shm")
             if (root / n).exists()]
    if ok:
        os.replace(recovered, root / DB_FILE)
        done.append(f"recovered {DB_FILE} with SQLite's VACUUM INTO; the damaged copy is in {moved[0]}")
        return True
    recovered.unlink(missing_ok=True)
    for folder in ("batches", vectors.FOLDER, detectors.FOLDER):
        if (root / folder).is_dir():
            for p in sorted((root / folder).iterdir()):
                moved.append(_quarantine(root, stamp, f"{folder}/{p.name}"))
    done.append(f"{DB_FILE} could not be recovered: it and the {len(moved) - 1} data files it described are in"
                f" {QUARANTINE}/{stamp}/; `mmindex add` your folders again to rebuild the index")
    return False


def _usable(path: Path) -> bool:
    """Whether the database file at `path` passes every check of `_open_database`."""
    store, problems = _open_database(path, "")
    if store is not None:
        store.close()
    return store is not None and not problems


def _repair_batches(store: Store, stamp: str, done: list[str]) -> None:
    for batch_id, (file, why) in damaged_batches(store).items():
        if (store.root / "batches" / file).exists():
            where = _quarantine(store.root, stamp, f"batches/{file}")
            done.append(f"batch file batches/{file} {why}: moved to {where}")
        else:
            done.append(f"batch file batches/{file} {why}")
        with store.transaction():
            media = store.forget_batch(batch_id)
        done.append(f"forgot {media} media of that batch (the next `mmindex add` indexes them again)")


def _repair_detectors(store: Store, stamp: str, done: list[str], load_scorer: Callable | None) -> None:
    broken = damaged_detector_files(store)
    if not broken:
        return
    for det_id, batch_id, file, why in broken:
        if (store.root / detectors.FOLDER / file).exists():
            _quarantine(store.root, stamp, f"{detectors.FOLDER}/{file}")
        if batch_id is None:
            with store.transaction():
                name = store.detector_name(det_id)
                store.delete_detector(det_id)
            done.append(f"detector {name!r}: its bundle {why}; removed it (apply it again)")
    bundles = {det_id: path for det_id, _, path in detectors.applied(store)}
    for det_id, batch_id, file, why in broken:
        if batch_id is None:
            continue
        if det_id not in bundles:  # a pending detector's: dropped, so that its interrupted apply scores it again
            with store.transaction():
                store.drop_detector_scores(det_id, batch_id)
            done.append(f"detector file {detectors.FOLDER}/{file} {why}: dropped (an interrupted apply; run it again)")
            continue
        # only a detector that scores embeddings is recomputed here; one that reads media back is applied again
        scorer = load_scorer(bundles[det_id]) if load_scorer is not None else None
        again = scorer is not None and getattr(scorer, "takes", "embedding") == "embedding"
        with store.transaction():
            store.drop_detector_scores(det_id, batch_id)
            if again:  # else that batch's scores read as 0
                emb = arrays.read_batch_file(store.root / "batches" / store.batch_file_names()[batch_id]).embeddings
                detectors.write_scores(store, batch_id, {det_id: scorer(np.asarray(emb, dtype=np.float32))})
        done.append(f"detector file {detectors.FOLDER}/{file} {why}: "
                    + ("computed again from the bundle" if again else
                       "dropped (its scores read as 0; apply the detector again to score them)"))


def _record_checksums(store: Store, done: list[str]) -> None:
    rows = store.unsummed_batches()
    if not rows:
        return
    with store.transaction():
        for batch_id, file in rows:
            store.record_batch_file(batch_id, file)
    done.append(f"recorded the size and SHA-256 of {len(rows)} batch files written before schema v4")


def health(root: str | os.PathLike) -> tuple[bool, str | None]:
    """(usable, what is wrong) from the cheap checks every open makes; for `/api/health`."""
    try:
        Store.open(root).close()
        return True, None
    except IndexDamaged as exc:
        return False, exc.what
    except MmindexError as exc:
        return False, str(exc)
