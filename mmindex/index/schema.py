"""The index database's schema and file: versions and migrations, connecting, creating, the writer lock.

This module is the one owner of the schema. `Store` (store.py) reads and writes through the connections it
makes. Everything here is about the database file itself:
- `MIGRATIONS[v]` upgrades a database at `user_version` v-1 to v; `migrate` runs the steps still needed in one
  transaction that reads the version again once it holds the write lock (two processes may open an old index
  at once);
- `build_database` writes a new index's database complete under a temporary name and renames it, so a
  folder holds no index or a whole one;
- `connect` opens it for the writer, or for a reader that may only read (read-only media, another user's
  index: `mode=ro`, then `immutable=1`), and turns what SQLite says into `IndexDamaged` or `StoreError`;
- `acquire_lock` takes the one writer's flock on `write.lock`;
- `connect_read_only`, `integrity_problems`, `dangling_references` and `recover_copy` look at a database file
  as it is, for `mmindex check` and `repair` (check.py).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from mmindex.atomic import atomic_write
from mmindex.errors import IndexDamaged, IndexLocked, StoreError

SCHEMA_VERSION = 7
DB_FILE = "index.sqlite"
BUSY_TIMEOUT_S = 60.0  # every connection waits this long for a writer's lock before "database is locked"
# What a creation leaves in a folder before the database exists (an interrupted one included).
_LEFTOVERS = {"batches", "write.lock"}  # and temporary `.index.sqlite.*.tmp` files

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
    # v4: each batch file's size and SHA-256, recorded when it is written, for `mmindex check`.
    4: """
    ALTER TABLE batches ADD COLUMN bytes INTEGER;
    ALTER TABLE batches ADD COLUMN sha256 TEXT;
    """,
    # v5: relevance judgments (a user's labels of segments for a concept, with where they came from), and each
    # detector's version (bumped when the same name is applied or taught again), kind and training details
    # (see mmindex/index/store_judgments.py). A judgment goes with its segment: removing a file or indexing a
    # changed one deletes its segments; compaction keeps segment ids, so judgments survive it.
    5: """
    CREATE TABLE judgments (
        segment_id INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
        concept TEXT NOT NULL,
        label INTEGER NOT NULL CHECK (label IN (0, 1)),
        origin TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (segment_id, concept)
    );
    CREATE INDEX judgments_concept ON judgments(concept);
    ALTER TABLE detectors ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE detectors ADD COLUMN kind TEXT NOT NULL DEFAULT 'applied';
    ALTER TABLE detectors ADD COLUMN details TEXT;
    """,
    # v6: each keyframe's embedding (float16 bytes), kept with `add --keyframe-embeddings` for temporal models
    # applied to the index (see mmindex/index/store_media.py); NULL in every row written without it.
    6: """
    ALTER TABLE keyframes ADD COLUMN embedding BLOB;
    """,
    # v7: an `apply` commits its scores in chunks (see mmindex/index/detectors.py); until its last commit the
    # detector's row is pending: `pending` holds the SHA-256 of the bundle being applied (a re-run of the same
    # bundle resumes it), its name is "NAME:applying" (no detector's name holds ':'), it has no concept rows, and
    # searches, `concepts` and `add` do not see it. NULL in every finished detector's row.
    7: """
    ALTER TABLE detectors ADD COLUMN pending TEXT;
    """,
}


def path_to_db(path: str) -> str | bytes:
    """A media or error path as the store keeps it: the text when it is valid UTF-8, else its bytes.

    A file name that is not UTF-8 reaches Python as a str holding lone surrogates ('caf\\udce9' for
    b'caf\\xe9'), which SQLite cannot take as text; its `os.fsencode` bytes are kept as a BLOB instead
    (SQLite keeps a BLOB as a BLOB whatever the column's affinity). One path has only one form, so
    `path = ?` with `path_to_db(path)` finds it, and `CAST(path AS BLOB)` gives the bytes of either form.
    """
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path)


def path_from_db(value: str | bytes) -> str:
    """The inverse of `path_to_db`: the path as `os` functions take it (surrogate-escaped when not UTF-8)."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def connect(root: Path, write: bool) -> sqlite3.Connection:
    """A connection to the index database. A reader falls back to `mode=ro`, then to `immutable=1`, when the
    folder or the file cannot be written (read-only media, another user's index): searching needs no write."""
    path = root / DB_FILE
    if path.stat().st_size == 0:
        raise IndexDamaged(root, f"{DB_FILE} is empty (0 bytes)")
    tries = [("rw", "")] if write else [("rw", ""), ("ro", "?mode=ro"), ("immutable", "?immutable=1")]
    for mode, query in tries:
        if mode == "immutable" and wal_pending(root):
            raise StoreError(f"index {root} is read-only and holds writes that were never checkpointed"
                             f" ({DB_FILE}-wal); open it once where it can be written")
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a batch is exactly one transaction.
            db = sqlite3.connect(f"{path.resolve().as_uri()}{query}", uri=True, isolation_level=None,
                                 timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        except sqlite3.Error as exc:
            if mode == tries[-1][0]:
                raise StoreError(f"cannot open index database {path}: {exc}") from None
            continue
        try:
            db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if write:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # reads the header: fails here if unusable
            return db
        except sqlite3.OperationalError as exc:
            db.close()
            if write or mode == tries[-1][0] or not read_only_error(exc):
                raise damage_or_error(root, exc) from None
        except sqlite3.DatabaseError as exc:
            db.close()
            raise damage_or_error(root, exc) from None
    raise AssertionError("unreachable")


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A plain read-only connection to the database file at `path`, with none of `connect`'s fallbacks or
    checks: for looking at a file as it is (an unfinished creation, a damaged index, a recovered copy)."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def version(db: sqlite3.Connection) -> int:
    """The schema version of the database (0: no mmindex schema)."""
    return db.execute("PRAGMA user_version").fetchone()[0]


def integrity_problems(db: sqlite3.Connection, limit: int = 20) -> list[str]:
    """What SQLite's `PRAGMA integrity_check` finds (at most `limit` lines); empty when the file is sound."""
    result = [r[0] for r in db.execute(f"PRAGMA integrity_check({int(limit)})")]
    return [] if result == ["ok"] else result


def dangling_references(db: sqlite3.Connection, limit: int = 20) -> list[tuple[str, int, str]]:
    """(table, rowid, referenced table) of rows whose foreign key points to a missing row (at most `limit`)."""
    rows = db.execute("PRAGMA foreign_key_check").fetchall()[:limit]
    return [(table, rowid, parent) for table, rowid, parent, _ in rows]


def recover_copy(path: Path, dest: Path) -> None:
    """Copy what SQLite can still read of the database at `path` into a new file `dest` (VACUUM INTO).
    Raises `sqlite3.Error` when it cannot."""
    src = connect_read_only(path)
    try:
        src.execute("VACUUM INTO ?", (str(dest),))
    finally:
        src.close()


def read_only_error(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "readonly" in text or "read-only" in text or "unable to open" in text


def wal_pending(root: Path) -> bool:
    wal = root / (DB_FILE + "-wal")
    return wal.is_file() and wal.stat().st_size > 0


def damage_or_error(root: Path, exc: sqlite3.Error) -> StoreError:
    """Turn an SQLite error into the error a user can act on: a damaged file, a full disk, or a plain one."""
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError) or any(
            w in text for w in ("malformed", "not a database", "disk I/O error")):
        return IndexDamaged(root, f"{DB_FILE}: {text}")
    if "full" in text:
        return StoreError(f"disk full while writing the index at {root}: {text}")
    return StoreError(f"index database {root / DB_FILE}: {text}")


def migrate(db: sqlite3.Connection, root: Path) -> None:
    """Bring the schema to SCHEMA_VERSION, in one transaction. The version is read again once the write lock
    is held, so that two processes opening an old index at once apply each step once."""
    current = version(db)
    if current > SCHEMA_VERSION:
        raise StoreError(f"index at {root} has schema version {current}; this mmindex reads up to {SCHEMA_VERSION}")
    if current == SCHEMA_VERSION:
        return
    if current == 0:
        raise IndexDamaged(root, f"{DB_FILE} holds no mmindex schema (an interrupted creation?)")
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if read_only_error(exc):
            raise StoreError(f"index at {root} has schema version {current} and is read-only; open it once"
                             f" where it can be written to upgrade it to version {SCHEMA_VERSION}") from None
        raise
    try:
        current = version(db)  # another process may have upgraded it meanwhile
        for v in range(current + 1, SCHEMA_VERSION + 1):
            for stmt in MIGRATIONS[v].split(";"):
                if stmt.strip():
                    db.execute(stmt)
        db.execute(f"PRAGMA user_version = {max(current, SCHEMA_VERSION)}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def validate(db: sqlite3.Connection, root: Path) -> None:
    """Cheap checks on every open (the full one is `mmindex check`): the index's identity is there."""
    try:
        model = db.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise damage_or_error(root, exc) from None
    if model is None:
        raise IndexDamaged(root, f"{DB_FILE} names no model (an interrupted creation?)")


def only_leftovers(root: Path) -> bool:
    """Whether a folder holds nothing but what a creation leaves before its database exists."""
    return all(p.name in _LEFTOVERS or p.name.startswith(f".{DB_FILE}.") for p in root.iterdir())


def build_database(root: Path, meta: dict[str, str], concepts: Sequence[tuple[str, str, str]]) -> None:
    """Write a complete new database under a temporary name, then rename it to `index.sqlite` (atomic)."""
    for leftover in root.glob(f".{DB_FILE}.*.tmp*"):  # of an interrupted creation (we hold the lock)
        leftover.unlink(missing_ok=True)
    with atomic_write(root / DB_FILE) as tmp:
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            db.execute("BEGIN")
            for v in range(1, SCHEMA_VERSION + 1):
                for stmt in MIGRATIONS[v].split(";"):
                    if stmt.strip():
                        db.execute(stmt)
            db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", meta.items())
            db.executemany("INSERT INTO concepts (col, id, name, source) VALUES (?, ?, ?, ?)",
                           [(i, *c) for i, c in enumerate(concepts)])
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
            db.execute("PRAGMA journal_mode=WAL")  # recorded in the file: every later connection uses WAL
        finally:
            db.close()


def unfinished(root: Path) -> bool:
    """An `index.sqlite` left by an interrupted creation (before creation was atomic): empty, schema-less or
    without a model, and no batch file that it could describe. Such a file holds nothing to keep."""
    if any((root / "batches").glob("*.*")):
        return False
    path = root / DB_FILE
    if path.stat().st_size == 0:
        return True
    try:
        db = connect_read_only(path)
        try:
            if version(db) == 0:
                return True
            return db.execute("SELECT value FROM meta WHERE key = 'model'").fetchone() is None
        finally:
            db.close()
    except sqlite3.Error:
        return False  # unreadable: damaged, not unfinished; `mmindex repair` decides


def acquire_lock(root: Path) -> int:
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
