"""The index directory: SQLite metadata (the commit point) and immutable per-batch array files.

Layout of an index directory:
    index.sqlite      media, segments, keyframes, concepts, batches, errors, meta (WAL mode)
    batches/NNNNNNNN.arrays  one file per committed batch: concept scores (C, n), embeddings (n, D) and
                      hierarchy-node sums (H, n), float16, memory-mapped by readers (see
                      mmindex/index/arrays.py; `.npz` before schema v3)
    vectors/NNNNNNNN.faiss   the persisted vector index (see mmindex/index/vectors.py)
    write.lock        held (flock) by the one writer

Crash safety: a batch's array file is written to a temporary name, fsynced and renamed *inside* the
SQLite transaction that inserts its rows, so it becomes visible only when that transaction commits.
A writer killed at any moment leaves at most an orphan file, which the next writer deletes. Readers
take a consistent snapshot of the segment table (WAL gives them a stable view) and then read only
files that snapshot references; array files are never modified once written.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmindex.errors import IndexLocked, StoreError
from mmindex.index import arrays, detectors
from mmindex.index.arrays import Snapshot

SCHEMA_VERSION = 3

# Step-by-step migrations: MIGRATIONS[v] upgrades a database at user_version v-1 to v.
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE media (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        path TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        width INTEGER, height INTEGER, duration REAL,
        added_at REAL NOT NULL
    );
    CREATE TABLE batches (id INTEGER PRIMARY KEY AUTOINCREMENT, file TEXT NOT NULL, rows INTEGER NOT NULL,
                          created REAL NOT NULL);
    CREATE TABLE segments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        media_id INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
        batch_id INTEGER NOT NULL REFERENCES batches(id),
        row INTEGER NOT NULL,
        start REAL, "end" REAL
    );
    CREATE INDEX segments_media ON segments(media_id);
    CREATE INDEX segments_batch ON segments(batch_id);
    CREATE TABLE keyframes (
        segment_id INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
        time REAL, frame INTEGER
    );
    CREATE INDEX keyframes_segment ON keyframes(segment_id);
    CREATE TABLE concepts (col INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
                           source TEXT NOT NULL);
    CREATE TABLE errors (path TEXT PRIMARY KEY, error TEXT NOT NULL, at REAL NOT NULL);
    """,
    # v2: trained detectors applied to the index (see mmindex/index/detectors.py).
    2: """
    CREATE TABLE detectors (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, file TEXT NOT NULL,
                            mode TEXT NOT NULL, backbone TEXT, weights_id TEXT, labels TEXT NOT NULL,
                            first_col INTEGER NOT NULL, n_labels INTEGER NOT NULL, applied REAL NOT NULL);
    CREATE TABLE detector_scores (
        detector_id INTEGER NOT NULL REFERENCES detectors(id) ON DELETE CASCADE,
        batch_id INTEGER NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
        file TEXT NOT NULL,
        PRIMARY KEY (detector_id, batch_id)
    );
    ALTER TABLE concepts ADD COLUMN detector_id INTEGER REFERENCES detectors(id) ON DELETE CASCADE;
    """,
    # v3: new batches are memory-mappable .arrays files (older .npz ones are still read; `compact` rewrites
    # them), and the vector-index setting is recorded; indexes from before it were searched exactly.
    3: """
    INSERT OR IGNORE INTO meta (key, value) VALUES ('vector_index', 'flat');
    """,
}


@dataclass
class SegmentRecord:
    """One segment to store: its time range (None for images), keyframe times, and its outputs."""

    scores: np.ndarray  # (C,) concept scores
    embedding: np.ndarray  # (D,) L2-normalised
    start: float | None = None
    end: float | None = None
    keyframes: Sequence[tuple[float | None, int | None]] = ((None, None),)  # (time s, frame number)


@dataclass
class MediaRecord:
    """One media file to store with all its segments. Replaces any earlier record of the same path."""

    path: str
    kind: str
    sha256: str
    size: int
    mtime_ns: int
    segments: list[SegmentRecord]
    width: int | None = None
    height: int | None = None
    duration: float | None = None


__all__ = ["MediaRecord", "SegmentRecord", "Snapshot", "Store"]


class Store:
    """An index directory. Open it with `Store.open` (read) or `Store.open(..., write=True)`."""

    def __init__(self, root: Path, db: sqlite3.Connection, lock_fd: int | None):
        self.root = root
        self.db = db
        self._lock_fd = lock_fd
        self._hierarchy: list[tuple[int, ...]] | None = None

    # ---- opening -------------------------------------------------------------------------------
    @classmethod
    def exists(cls, root: str | os.PathLike) -> bool:
        return (Path(root) / "index.sqlite").is_file()

    @classmethod
    def open(cls, root: str | os.PathLike, write: bool = False) -> Store:
        """Open an existing index; with `write`, take the writer lock (or raise IndexLocked)."""
        root = Path(root)
        if not cls.exists(root):
            raise StoreError(f"no index at {root} (create one with `mmindex add PATH --index {root}`)")
        return cls._open(root, write)

    @classmethod
    def create(
        cls, root: str | os.PathLike, model: str, embed_dim: int, concepts: Sequence[tuple[str, str, str]],
        vector_index: str = "flat",
    ) -> Store:
        """Create a new index for `model` and open it for writing; `concepts` are the score columns
        as (id, name, source); `vector_index` the vector-index setting (see `mmindex.index.vectors`)."""
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise StoreError(f"index path {root} exists and is not a folder")
        if root.is_dir() and any(root.iterdir()) and not cls.exists(root):
            raise StoreError(f"{root} is a non-empty folder that is not an mmindex index")
        try:
            (root / "batches").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create index folder {root}: {exc.strerror or exc}") from None
        store = cls._open(root, write=True)
        with store.transaction():
            if store.meta("model") is None:  # a concurrent creator may have won the race
                store._set_meta("model", model)
                store._set_meta("embed_dim", str(embed_dim))
                store._set_meta("created", str(time.time()))
                store._set_meta("vector_index", vector_index)
                store.db.executemany(
                    "INSERT INTO concepts (col, id, name, source) VALUES (?, ?, ?, ?)",
                    [(i, *c) for i, c in enumerate(concepts)],
                )
        return store

    @classmethod
    def _open(cls, root: Path, write: bool) -> Store:
        lock_fd = _acquire_lock(root) if write else None
        try:
            db = _connect(root / "index.sqlite")
            _migrate(db, root)
            store = cls(root, db, lock_fd)
            if write:
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
        from mmindex.concepts import Vocabulary

        vocab = Vocabulary.imagenet()
        ids = [c[1] for c in self.concept_columns()]
        imagenet = [c.id for c in vocab.classes]
        sets = vocab.hierarchy() if ids[:len(imagenet)] == imagenet else []
        self._set_meta("hierarchy", json.dumps(sets))  # in the caller's transaction: cached once committed
        return sets

    def media_hashes(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT path, sha256 FROM media"))

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
        rows = self.db.execute("SELECT path, error FROM errors ORDER BY path")
        return [{"path": p, "error": e} for p, e in rows]

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
        return {r[0]: {"path": r[1], "kind": r[2], "start": r[3], "end": r[4], "media_id": r[5]} for r in rows}

    def segment_ids_of(self, path: str) -> list[int]:
        rows = self.db.execute(
            "SELECT s.id FROM segments s JOIN media m ON m.id = s.media_id WHERE m.path = ? ORDER BY s.id",
            (path,),
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

    def batch_files(self) -> dict[str, int]:
        """Batch files: how many, how many in the pre-v3 format, the rows they hold and the dead ones among
        them (segments removed or re-indexed since; `compact` drops them)."""
        files, legacy, rows = self.db.execute(
            "SELECT count(*), coalesce(sum(file LIKE '%.npz'), 0), coalesce(sum(rows), 0) FROM batches").fetchone()
        live = self.db.execute("SELECT count(*) FROM segments").fetchone()[0]
        return {"files": files, "legacy_files": legacy, "rows": rows, "dead_rows": rows - live}

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
                now = time.time()
                batch_id = self.db.execute(
                    "INSERT INTO batches (file, rows, created) VALUES ('', ?, ?)", (len(segments), now)
                ).lastrowid
                name = arrays.batch_file_name(batch_id)
                arrays.write_batch_file(self.root / "batches" / name, np.stack([s.scores for s in segments]),
                                        np.stack([s.embedding for s in segments]), self.hierarchy())
                self.db.execute("UPDATE batches SET file = ? WHERE id = ?", (name, batch_id))
                if trained:
                    detectors.write_scores(self, batch_id, trained)
            row = 0
            for m in media:
                self.db.execute("DELETE FROM media WHERE path = ?", (m.path,))
                self.db.execute("DELETE FROM errors WHERE path = ?", (m.path,))
                media_id = self.db.execute(
                    "INSERT INTO media (path, kind, sha256, size, mtime_ns, width, height, duration, added_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (m.path, m.kind, m.sha256, m.size, m.mtime_ns, m.width, m.height, m.duration, time.time()),
                ).lastrowid
                for s in m.segments:
                    seg_id = self.db.execute(
                        'INSERT INTO segments (media_id, batch_id, row, start, "end") VALUES (?, ?, ?, ?, ?)',
                        (media_id, batch_id, row, s.start, s.end),
                    ).lastrowid
                    self.db.executemany(
                        "INSERT INTO keyframes (segment_id, time, frame) VALUES (?, ?, ?)",
                        [(seg_id, t, f) for t, f in s.keyframes],
                    )
                    row += 1
            self.db.executemany(
                "INSERT OR REPLACE INTO errors (path, error, at) VALUES (?, ?, ?)",
                [(p, e, time.time()) for p, e in errors],
            )

    def remove(self, paths: Iterable[str]) -> int:
        """Remove media (and their segments) by path, or every media under a folder path. Returns the count."""
        removed = 0
        with self.transaction():
            for path in paths:
                prefix = path.rstrip(os.sep) + os.sep
                cur = self.db.execute(
                    "DELETE FROM media WHERE path = ? OR substr(path, 1, ?) = ?", (path, len(prefix), prefix)
                )
                removed += cur.rowcount
                self.db.execute("DELETE FROM errors WHERE path = ? OR substr(path, 1, ?) = ?",
                                (path, len(prefix), prefix))
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
        known = {r[0] for r in self.db.execute("SELECT file FROM batches")}
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
                files = dict(self.db.execute("SELECT id, file FROM batches"))
                trained = detectors.trained_layout(self.db)
                # Columns are indexed by `col`; a replaced detector leaves a gap, so size by the largest col.
                n_columns = (self.db.execute("SELECT max(col) FROM concepts").fetchone()[0] or -1) + 1
                vector_file = self.meta("vector_file")
                hierarchy = self.hierarchy()
            finally:
                self.db.execute("COMMIT")
            try:
                return arrays.assemble(self.root, generation, seg, files, int(self.meta("embed_dim") or 0),
                                       n_columns, trained, vector_file, hierarchy)
            except FileNotFoundError:
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
        if exc_type is not None:
            db.execute("ROLLBACK")
            return
        self.store._set_meta("generation", str(self.store.generation + 1))
        db.execute("COMMIT")


def _connect(path: Path) -> sqlite3.Connection:
    try:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a batch is exactly one transaction.
        db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        return db
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open index database {path}: {exc}") from None


def _migrate(db: sqlite3.Connection, root: Path) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(f"index at {root} has schema version {version}; this mmindex reads up to {SCHEMA_VERSION}")
    for v in range(version + 1, SCHEMA_VERSION + 1):
        db.execute("BEGIN IMMEDIATE")
        for stmt in MIGRATIONS[v].split(";"):
            if stmt.strip():
                db.execute(stmt)
        db.execute(f"PRAGMA user_version = {v}")
        db.execute("COMMIT")


def _acquire_lock(root: Path) -> int:
    try:
        fd = os.open(root / "write.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot open index lock in {root}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
        os.close(fd)
        who = f" ({holder})" if holder else ""
        raise IndexLocked(f"index is locked: another process{who} is writing to {root}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid()}).encode(), 0)
    return fd
