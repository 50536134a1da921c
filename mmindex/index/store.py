"""The index directory: SQLite metadata (the commit point) and immutable per-batch array files.

Layout: `index.sqlite` (schema: schema.py), `batches/NNNNNNNN.arrays` (one per committed batch: arrays.py),
`vectors/NNNNNNNN.faiss` (vectors.py), `detectors/` (detectors.py), `write.lock` (the one writer's flock),
`quarantine/` (what `mmindex repair` moved aside). docs/architecture.md draws it.

The store writes every SQL statement on the index's rows (the schema and the database file are schema.py's);
the statements that compaction, `check` and `repair` need live in `BatchRows` (store_batches.py), those on
applied detectors in `DetectorRows` (store_detectors.py), judgments in `JudgmentRows` (store_judgments.py),
media read back and keyframe embeddings in `MediaRows` (store_media.py), shot times in `TimelineRows`.

Crash safety: a batch's array file is written to a temporary name, fsynced and renamed *inside* the
SQLite transaction that inserts its rows, so it becomes visible only when that transaction commits.
A writer killed at any moment leaves at most an orphan file, which the next writer deletes. Readers
take a consistent snapshot of the segment table (WAL gives them a stable view) and then read only
files that snapshot references; array files are never modified once written.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from mmindex.concepts import Vocabulary
from mmindex.errors import IndexDamaged, StoreError
from mmindex.index import arrays, detectors, schema
from mmindex.index.schema import DB_FILE
from mmindex.index.snapshot import Snapshot, assemble
from mmindex.index.store_batches import BatchRows
from mmindex.index.store_detectors import DetectorRows
from mmindex.index.store_judgments import JudgmentRows
from mmindex.index.store_media import MediaRows
from mmindex.index.store_timeline import TimelineRows
from mmindex.records import MediaRecord

__all__ = ["Snapshot", "Store"]


class Store(BatchRows, DetectorRows, JudgmentRows, MediaRows, TimelineRows):
    """An index directory. Open it with `Store.open` (read) or `Store.open(..., write=True)`."""

    def __init__(self, root: Path, db: sqlite3.Connection, lock_fd: int | None):
        self.root = root
        self.db = db
        self._lock_fd = lock_fd
        self._hierarchy: list[tuple[int, ...]] | None = None

    # ---- opening -------------------------------------------------------------------------------
    @classmethod
    def exists(cls, root: str | os.PathLike) -> bool:
        return (Path(root) / DB_FILE).is_file()

    @classmethod
    def unfinished(cls, root: str | os.PathLike) -> bool:
        """Whether `root` holds only what an interrupted creation left (`create` then builds it anew)."""
        return cls.exists(root) and schema.unfinished(Path(root))

    @classmethod
    def open(cls, root: str | os.PathLike, write: bool = False) -> Store:
        """Open an existing index; with `write`, take the writer lock (or raise IndexLocked).

        A reader of an index it cannot write to (read-only media, an archive) opens the database read-only.
        Raises `IndexDamaged` when the database is empty, unreadable or unfinished.
        """
        root = Path(root)
        if not cls.exists(root):
            raise StoreError(f"no index at {root} (create one with `mmindex add PATH --index {root}`)")
        return cls._open(root, write)

    @classmethod
    def create(
        cls, root: str | os.PathLike, model: str, embed_dim: int, concepts: Sequence[tuple[str, str, str]],
        vector_index: str = "flat", precision: str = "fp32",
    ) -> Store:
        """Create a new index for `model` and open it for writing; `concepts` are the score columns
        as (id, name, source); `vector_index` the vector-index setting (see `mmindex.index.vectors`);
        `precision` the model's, "fp32" or "int8" (recorded; an index without it is fp32).

        Atomic: the database is built complete under a temporary name and renamed, so an interrupt leaves
        either no index or a whole one. An unfinished database left by an interrupted creation of an older
        version (and no data files) is built anew; an existing index is opened as it is.
        """
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise StoreError(f"index path {root} exists and is not a folder")
        if root.is_dir() and not cls.exists(root) and not schema.only_leftovers(root):
            raise StoreError(f"{root} is a non-empty folder that is not an mmindex index")
        try:
            (root / "batches").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create index folder {root}: {exc.strerror or exc}") from None
        lock_fd = schema.acquire_lock(root)
        try:
            if cls.unfinished(root):
                for suffix in ("", "-wal", "-shm", "-journal"):
                    (root / (DB_FILE + suffix)).unlink(missing_ok=True)
            if not cls.exists(root):  # else a concurrent creator won the race: open what it made
                meta = {"model": model, "embed_dim": str(embed_dim), "created": str(time.time()),
                        "vector_index": vector_index, "generation": "1", "precision": precision}
                schema.build_database(root, meta, concepts)
        except BaseException:
            os.close(lock_fd)
            raise
        return cls._open(root, True, lock_fd)

    @classmethod
    def _open(cls, root: Path, write: bool, lock_fd: int | None = None) -> Store:
        if write and lock_fd is None:
            lock_fd = schema.acquire_lock(root)
        try:
            db = schema.connect(root, write)
            try:
                schema.migrate(db, root)
                schema.validate(db, root)
            except BaseException:
                db.close()
                raise
            store = cls(root, db, lock_fd)
            if write:  # only once the schema is known good: never delete what an unreadable schema may name
                store._delete_orphan_files()
            return store
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise

    def close(self) -> None:
        self.db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- metadata ------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @property
    def generation(self) -> int:
        """Bumped by every committed change; readers use it to know their cached arrays are stale."""
        return int(self.meta("generation") or 0)

    def concept_columns(self) -> list[tuple[int, str, str, str]]:
        return self.db.execute("SELECT col, id, name, source FROM concepts ORDER BY col").fetchall()

    def hierarchy(self) -> list[tuple[int, ...]]:
        """The class sets (WordNet nodes over the ImageNet classes) whose score sums every batch file
        written from now on also stores, so that a node query reads one run (see `mmindex.index.arrays`).

        Fixed for the index by its first writer (an index of a model with other classes has none), so
        the files and this list always agree; files written before it simply lack the sums.
        """
        if self._hierarchy is not None:  # never changes once committed
            return self._hierarchy
        value = self.meta("hierarchy")
        if value is not None:
            self._hierarchy = [tuple(s) for s in json.loads(value)]
            return self._hierarchy
        if self._lock_fd is None:
            return []  # no file has sums yet: a writer fixes the list before it writes any
        vocab = Vocabulary.imagenet()
        ids = [c[1] for c in self.concept_columns()]
        imagenet = [c.id for c in vocab.classes]
        sets = vocab.hierarchy() if ids[:len(imagenet)] == imagenet else []
        self._set_meta("hierarchy", json.dumps(sets))  # in the caller's transaction: cached once committed
        return sets

    def media_hashes(self) -> dict[str, str]:
        return {schema.path_from_db(p): h for p, h in self.db.execute("SELECT path, sha256 FROM media")}

    def media_paths(self) -> list[str]:
        """Every indexed media path (as `os` functions take it; see `schema.path_to_db`)."""
        return [schema.path_from_db(p) for (p,) in self.db.execute("SELECT path FROM media")]

    def counts(self) -> dict[str, int]:
        one = lambda sql: self.db.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "media": one("SELECT count(*) FROM media"),
            "segments": one("SELECT count(*) FROM segments"),
            "keyframes": one("SELECT count(*) FROM keyframes"),
            "concepts": one("SELECT count(*) FROM concepts"),
            "batches": one("SELECT count(*) FROM batches"),
        }

    def errors(self) -> list[dict[str, str]]:
        rows = self.db.execute("SELECT path, error FROM errors ORDER BY CAST(path AS BLOB)")
        return [{"path": schema.path_from_db(p), "error": e} for p, e in rows]

    def segments(self, ids: Iterable[int]) -> dict[int, dict]:
        """Details of segments by id: path, kind, start, end, media_id."""
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        rows = self.db.execute(
            "SELECT s.id, m.path, m.kind, s.start, s.\"end\", m.id FROM segments s JOIN media m"
            f" ON m.id = s.media_id WHERE s.id IN ({','.join('?' * len(ids))})",
            ids,
        )
        return {r[0]: {"path": schema.path_from_db(r[1]), "kind": r[2], "start": r[3], "end": r[4], "media_id": r[5]}
                for r in rows}

    def segment_ids_of(self, path: str) -> list[int]:
        rows = self.db.execute(
            "SELECT s.id FROM segments s JOIN media m ON m.id = s.media_id WHERE m.path = ? ORDER BY s.id",
            (schema.path_to_db(path),),
        )
        return [r[0] for r in rows]

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def disk_usage(self) -> dict[str, int]:
        """Bytes on disk by part: sqlite (with its WAL), batches, vectors, detectors, and the total."""
        out = {"sqlite": 0, "batches": 0, "vectors": 0, "detectors": 0}
        for p in self.root.rglob("*"):
            if p.is_file():
                top = p.relative_to(self.root).parts[0]
                key = top if top in out else "sqlite" if top.startswith("index.sqlite") else None
                if key:
                    out[key] += p.stat().st_size
        out["total"] = self.disk_bytes()
        return out

    # ---- writing -------------------------------------------------------------------------------
    def transaction(self) -> _Transaction:
        if self._lock_fd is None:
            raise StoreError("store opened read-only")
        return _Transaction(self)

    def write_batch(self, media: Sequence[MediaRecord], errors: Sequence[tuple[str, str]] = (),
                    trained: dict[int, np.ndarray] | None = None) -> None:
        """Commit media (replacing earlier versions of the same paths) and errors, atomically.

        `trained` holds the segments' scores by each applied detector ({detector id: (segments, labels)}),
        written and referenced in the same transaction (see `mmindex.index.detectors`).
        """
        with self.transaction():
            segments = [s for m in media for s in m.segments]
            batch_id = None
            if segments:
                batch_id = self.new_batch(len(segments))
                name = arrays.batch_file_name(batch_id)
                arrays.write_batch_file(self.root / "batches" / name, np.stack([s.scores for s in segments]),
                                        np.stack([s.embedding for s in segments]), self.hierarchy())
                self.record_batch_file(batch_id, name)
                if trained:
                    detectors.write_scores(self, batch_id, trained)
            row = 0
            for m in media:
                path = schema.path_to_db(m.path)
                self.db.execute("DELETE FROM media WHERE path = ?", (path,))
                self.db.execute("DELETE FROM errors WHERE path = ?", (path,))
                media_id = self.db.execute(
                    "INSERT INTO media (path, kind, sha256, size, mtime_ns, width, height, duration, added_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (path, m.kind, m.sha256, m.size, m.mtime_ns, m.width, m.height, m.duration, time.time()),
                ).lastrowid
                for s in m.segments:
                    seg_id = self.db.execute(
                        'INSERT INTO segments (media_id, batch_id, row, start, "end") VALUES (?, ?, ?, ?, ?)',
                        (media_id, batch_id, row, s.start, s.end),
                    ).lastrowid
                    self.insert_keyframes(self.keyframe_rows(seg_id, s.keyframes, s.keyframe_embeddings))
                    row += 1
            self.db.executemany(
                "INSERT OR REPLACE INTO errors (path, error, at) VALUES (?, ?, ?)",
                [(schema.path_to_db(p), e, time.time()) for p, e in errors],
            )

    def record_batch_file(self, batch_id: int, name: str) -> None:
        """Inside a transaction: name a batch's newly written file, with its size and SHA-256 (`mmindex check`)."""
        path = self.root / "batches" / name
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        self.db.execute("UPDATE batches SET file = ?, bytes = ?, sha256 = ? WHERE id = ?",
                        (name, path.stat().st_size, digest, batch_id))

    def remove(self, paths: Iterable[str]) -> int:
        """Remove media (and their segments) by path, or every media under a folder path. Returns the count."""
        removed = 0
        with self.transaction():
            for path in paths:
                # The folder prefix is compared as bytes, so that it matches paths stored as text and as BLOBs.
                prefix = os.fsencode(path.rstrip(os.sep) + os.sep)
                where = "path = ? OR substr(CAST(path AS BLOB), 1, ?) = ?"
                args = (schema.path_to_db(path), len(prefix), prefix)
                removed += self.db.execute(f"DELETE FROM media WHERE {where}", args).rowcount
                self.db.execute(f"DELETE FROM errors WHERE {where}", args)
            dead = self.db.execute(
                "SELECT id, file FROM batches WHERE id NOT IN (SELECT DISTINCT batch_id FROM segments)"
            ).fetchall()
            dead_scores = self.db.execute(
                "SELECT file FROM detector_scores WHERE batch_id NOT IN (SELECT DISTINCT batch_id FROM segments)"
            ).fetchall()
            self.db.execute("DELETE FROM batches WHERE id NOT IN (SELECT DISTINCT batch_id FROM segments)")
        # Only after the commit: a reader on an older snapshot may still want them, and retries if not.
        for _, name in dead:
            (self.root / "batches" / name).unlink(missing_ok=True)
        for (name,) in dead_scores:
            (self.root / detectors.FOLDER / name).unlink(missing_ok=True)
        return removed

    def _delete_orphan_files(self) -> None:
        """Delete array files that no committed batch references (left by a killed writer or compaction)."""
        known = set(self.batch_file_names().values())
        folder = self.root / "batches"
        folder.mkdir(exist_ok=True)
        for p in folder.iterdir():
            if p.name not in known:
                p.unlink(missing_ok=True)
        detectors.delete_orphans(self)
        vectors = self.root / "vectors"
        if vectors.is_dir():
            for p in vectors.iterdir():
                if p.name != self.meta("vector_file"):
                    p.unlink(missing_ok=True)

    # ---- reading the arrays --------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """Map the committed arrays: the segment table and the files it references, consistently."""
        for _attempt in range(5):
            self.db.execute("BEGIN")  # one read transaction: a stable view under WAL
            try:
                generation = self.generation
                seg = np.array(self.db.execute("SELECT id, batch_id, row FROM segments ORDER BY id").fetchall(),
                               dtype=np.int64).reshape(-1, 3)
                files = self.batch_file_names()
                trained = self.trained_layout()
                # Columns are indexed by `col`; a replaced detector leaves a gap, so size by the largest col.
                last = self.last_column()
                n_columns = 0 if last is None else last + 1
                vector_file = self.meta("vector_file")
                hierarchy = self.hierarchy()
            finally:
                self.db.execute("COMMIT")
            try:
                return assemble(self.root, generation, seg, files, int(self.meta("embed_dim") or 0),
                                       n_columns, trained, vector_file, hierarchy)
            except FileNotFoundError as exc:
                if self.generation == generation:  # nothing was committed since: the file is gone for good
                    raise IndexDamaged(self.root, f"{_relative(self.root, exc.filename)} is missing") from None
                continue  # a writer removed a dead batch after our snapshot: take a new one
        raise StoreError("index changed too often while reading; try again")


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, bumping the generation; ROLLBACK on any exception."""

    def __init__(self, store: Store):
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        self.store.db.execute("BEGIN IMMEDIATE")
        return self.store.db

    def __exit__(self, exc_type, exc, tb) -> None:
        db = self.store.db
        if exc_type is None:
            try:
                self.store._set_meta("generation", str(self.store.generation + 1))
                db.execute("COMMIT")
                return
            except sqlite3.OperationalError as commit_error:
                exc = commit_error
        if db.in_transaction:  # SQLite rolls back by itself on some errors (a full disk)
            db.execute("ROLLBACK")
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC or \
                isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
            raise StoreError(f"disk full while writing the index at {self.store.root}: this batch was not"
                             " written, every one before it was; free space and run the command again") from None
        if isinstance(exc, sqlite3.DatabaseError):
            error = schema.damage_or_error(self.store.root, exc)
            if isinstance(error, IndexDamaged) or exc_type is None:  # else the caller's own error stands
                raise error from None


def _relative(root: Path, filename) -> str:
    try:
        return str(Path(filename).relative_to(root))
    except (TypeError, ValueError):
        return str(filename)
