"""The store is the one owner of the index's SQL: no module of `mmindex` but the store's own and schema.py writes a
statement or runs one. The modules are read with `ast`, so that a statement split over an f-string is found too;
the detector is tried on small strings first, so that a check that could never fail is caught."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mmindex"

# The modules that may hold SQL, relative to the package.
OWNERS = {
    "index/schema.py": "the schema, its migrations, connections and checks of the database file",
    "index/store.py": "the Store: opening, transactions, batches written and removed, snapshots",
    "index/store_batches.py": "the batch and segment rows that compaction, check and repair read and rewrite",
    "index/store_detectors.py": "the applied detectors' rows",
    "index/store_judgments.py": "the judgments' rows",
    "index/store_media.py": "segments read back for detectors, keyframe embeddings, errors found by apply",
    "index/store_timeline.py": "every segment's media file and time, for temporal queries",
    "learn/features.py": "the feature cache: a database of its own (image hash -> features), not the index",
}

_VERB = r"""\s*(?:
      SELECT\s+(?:DISTINCT\s+)?[\w.*"]+\s*(?:,|\(|FROM\b)
    | (?:INSERT|REPLACE)\s+(?:OR\s+\w+\s+)?INTO\s
    | UPDATE\s+\w+\s+SET\s
    | DELETE\s+FROM\s
    | (?:CREATE|DROP)\s+(?:(?:TEMP|TEMPORARY|UNIQUE|VIRTUAL)\s+)?(?:TABLE|INDEX|VIEW|TRIGGER)\b
    | ALTER\s+TABLE\s
    | PRAGMA\s+\w+
    | (?:BEGIN|COMMIT|ROLLBACK)(?:\s+(?:DEFERRED|IMMEDIATE|EXCLUSIVE|TRANSACTION))?\s*;?\s*$
    | WITH\s+(?:RECURSIVE\s+)?\w+(?:\s*\([^)]*\))?\s+AS\s*\(
    | VACUUM\b
    | (?:SAVEPOINT|RELEASE)\s+\w+\s*$
)"""
SQL = re.compile(_VERB, re.I | re.X)
RUNS = {"execute", "executemany", "executescript"}


def literal_text(node: ast.AST) -> str | None:
    """The text of a string literal; an f-string's replacement fields read as `x`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "x" for v in node.values)
    return None


def sql_in(source: str) -> list[tuple[int, str]]:
    """(line, what) for every SQL string and every call of `.execute`, `.executemany` or `.executescript`."""
    tree, found = ast.parse(source), set()
    parts = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}  # read whole
    for node in ast.walk(tree):
        text = literal_text(node)
        if text is not None and id(node) not in parts and SQL.match(text):
            found.add((node.lineno, f"SQL {text.strip()[:50]!r}"))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in RUNS:
            found.add((node.lineno, f".{node.func.attr}()"))
    return sorted(found)


@pytest.mark.parametrize("text", [
    "SELECT id, file FROM batches", "  select count(*) FROM segments", 'SELECT s.id, m.path FROM segments s',
    "SELECT value FROM meta WHERE key = ?", "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
    "insert into concepts VALUES (?)", "UPDATE segments SET batch_id = ?", "\n  DELETE FROM media WHERE id = ?",
    "CREATE TABLE IF NOT EXISTS features (k TEXT)", "create unique index i ON t(c)", "DROP TABLE t",
    "ALTER TABLE batches ADD COLUMN sha256 TEXT", "PRAGMA user_version", "pragma foreign_keys=ON", "BEGIN",
    "BEGIN IMMEDIATE", "COMMIT", "rollback", "WITH dead AS (SELECT id FROM batches) DELETE FROM t",
    "VACUUM INTO 'x'",
])
def test_the_detector_finds_statements(text):
    assert SQL.match(text)


@pytest.mark.parametrize("text", [
    "Delete the saved query NAME.", "DELETE", "delete", "With --executor ray: the cluster (auto, HOST:PORT)",
    "Create a batch file and yield writable views", "Commit what is pending (media and errors) in one transaction.",
    "Replace `path` atomically with `data`", "Select the rows of one batch", "update", "begin again later",
    "PRAGMAtic", "Select everything", "end", "start",
])
def test_the_detector_leaves_prose_alone(text):
    assert not SQL.match(text)


def test_the_detector_reads_f_strings_and_calls():
    source = 'db.execute(f"SELECT {cols} FROM batches")\nx = f"DELETE FROM t WHERE id IN ({marks})"\n' \
             'conn.executemany(q, rows)\nprint("Delete it")\n'
    assert [line for line, _ in sql_in(source)] == [1, 1, 2, 3]


def test_only_the_store_and_the_schema_hold_sql():
    assert all((PACKAGE / owner).is_file() for owner in OWNERS), "an owner named here no longer exists"
    strays = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        if name not in OWNERS:
            strays += [f"mmindex/{name}:{line}: {what}" for line, what in sql_in(path.read_text(encoding="utf-8"))]
    assert not strays, "SQL outside the store (move it behind a Store method):\n" + "\n".join(strays)
