"""The store's statements on relevance judgments (schema v5, see `schema.MIGRATIONS[5]`).

A judgment is a user's label of one segment for one concept: 1 (shows it) or 0 (does not), with where it came
from (`ORIGINS`) and when. There is one per (segment, concept): judging again replaces the label. A judgment
belongs to its segment (`ON DELETE CASCADE`): removing a file, or indexing a changed one, drops its segments'
judgments; compaction keeps segment ids, and so keeps them.

`JudgmentRows` is a part of `Store` (store.py), kept apart to keep each module small. The methods that write
run inside the caller's `store.transaction()`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence

from mmindex.errors import StoreError
from mmindex.index import schema

ORIGINS = ("cli", "feedback", "ui", "import", "active")  # who judged: a command, feedback, the web UI, a file
JUDGMENTS_SINCE = 5  # the schema version that holds judgments


class JudgmentRows:
    """The rows of `judgments`."""

    db: sqlite3.Connection

    # ---- reading -------------------------------------------------------------------------------
    def judgment_labels(self, concept: str) -> dict[int, int]:
        """{segment id: label (1 or 0)} of every judgment for `concept`."""
        return dict(self.db.execute("SELECT segment_id, label FROM judgments WHERE concept = ?", (concept,)))

    def judgments(self, concept: str | None = None) -> list[dict]:
        """Every judgment (of one concept, or all), with its segment's path and time span, by concept and id."""
        where, args = ("WHERE j.concept = ?", (concept,)) if concept is not None else ("", ())
        rows = self.db.execute(
            "SELECT j.segment_id, m.path, s.start, s.\"end\", j.concept, j.label, j.origin, j.at FROM judgments j"
            f" JOIN segments s ON s.id = j.segment_id JOIN media m ON m.id = s.media_id {where}"
            " ORDER BY j.concept, j.segment_id", args)
        return [{"segment_id": r[0], "path": schema.path_from_db(r[1]), "start": r[2], "end": r[3], "concept": r[4],
                 "label": r[5], "origin": r[6], "at": r[7]} for r in rows]

    def judged_concepts(self) -> dict[str, tuple[int, int]]:
        """{concept: (positive judgments, negative judgments)}; none before schema v5."""
        if schema.version(self.db) < JUDGMENTS_SINCE:
            return {}
        rows = self.db.execute("SELECT concept, sum(label), count(*) - sum(label) FROM judgments GROUP BY concept")
        return {c: (int(p), int(n)) for c, p, n in rows}

    def segment_spans(self) -> list[tuple[int, str, float | None, float | None]]:
        """(segment id, media path, start, end) of every segment, by id (to find segments named by a file)."""
        rows = self.db.execute(
            "SELECT s.id, m.path, s.start, s.\"end\" FROM segments s JOIN media m ON m.id = s.media_id ORDER BY s.id")
        return [(i, schema.path_from_db(p), start, end) for i, p, start, end in rows]

    # ---- writing, inside the caller's transaction ------------------------------------------------------
    def add_judgments(self, rows: Iterable[tuple[int, str, int, str]]) -> tuple[int, int]:
        """Record (segment id, concept, label, origin) judgments; a segment judged again for the same concept
        takes the new label and origin. Returns (added, changed); the same label given again changes nothing."""
        added = changed = 0
        now = time.time()
        for segment_id, concept, label, origin in rows:
            if int(label) not in (0, 1):  # the table's CHECK would fail too, but SQLite's error reads as damage
                raise StoreError(f"a judgment's label is 1 or 0, not {label!r}")
            old = self.db.execute("SELECT label FROM judgments WHERE segment_id = ? AND concept = ?",
                                  (int(segment_id), concept)).fetchone()
            if old is None:
                added += 1
                self.db.execute("INSERT INTO judgments (segment_id, concept, label, origin, at) VALUES (?, ?, ?, ?, ?)",
                                (int(segment_id), concept, int(label), origin, now))
            elif old[0] != int(label):
                changed += 1
                self.db.execute("UPDATE judgments SET label = ?, origin = ?, at = ? WHERE segment_id = ? AND"
                                " concept = ?", (int(label), origin, now, int(segment_id), concept))
        return added, changed

    def delete_judgments(self, concept: str, segment_ids: Sequence[int] | None = None) -> int:
        """Forget the judgments of `concept` (all, or those of `segment_ids`). Returns how many."""
        if segment_ids is None:
            return self.db.execute("DELETE FROM judgments WHERE concept = ?", (concept,)).rowcount
        return self.db.execute(f"DELETE FROM judgments WHERE concept = ? AND segment_id IN"
                               f" ({','.join('?' * len(segment_ids))})", (concept, *map(int, segment_ids))).rowcount
