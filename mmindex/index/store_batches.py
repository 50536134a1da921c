"""The store's statements on batch and segment rows that compaction, `check` and `repair` read and rewrite.

`BatchRows` is a part of `Store` (store.py), kept apart to keep each module small: `compact` and `check`
call these methods and write no SQL. The methods that write run inside the caller's `store.transaction()`,
so that a merged group or a repaired batch stays one transaction. `check` reads an index as it finds it,
unmigrated, so the reads here also answer on older schema versions where they can.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from mmindex.index import schema

CHECKSUMS_SINCE = 4  # the schema version that records each batch file's size and SHA-256


class BatchRows:
    """The rows of `batches`, and the segments' references to them."""

    db: sqlite3.Connection

    # ---- reading -------------------------------------------------------------------------------
    def batch_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM batches").fetchone()[0]

    def segment_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM segments").fetchone()[0]

    def batch_files(self) -> dict[str, int]:
        """Batch files: how many, how many in the pre-v3 format, the rows they hold and the dead ones among
        them (segments removed or re-indexed since; `compact` drops them)."""
        files, legacy, rows = self.db.execute(
            "SELECT count(*), coalesce(sum(file LIKE '%.npz'), 0), coalesce(sum(rows), 0) FROM batches").fetchone()
        return {"files": files, "legacy_files": legacy, "rows": rows, "dead_rows": rows - self.segment_count()}

    def batch_file_names(self) -> dict[int, str]:
        """{batch id: its file under batches/}."""
        return dict(self.db.execute("SELECT id, file FROM batches"))

    def batch_sizes(self) -> dict[int, int]:
        """{batch id: the rows its file holds, dead ones included}."""
        return dict(self.db.execute("SELECT id, rows FROM batches"))

    def live_batches(self) -> list[tuple[int, str, int, int]]:
        """(id, file, rows, live rows) of every batch with a live segment, in the order of their first segment."""
        return self.db.execute(
            "SELECT b.id, b.file, b.rows, count(s.id) FROM batches b JOIN segments s ON s.batch_id = b.id"
            " GROUP BY b.id ORDER BY min(s.id)").fetchall()

    def batch_records(self) -> list[tuple[int, str, int, int | None, str | None]]:
        """(id, file, rows, bytes, SHA-256) of every batch; bytes and SHA-256 are None when not recorded."""
        has_sums = schema.version(self.db) >= CHECKSUMS_SINCE
        cols = "id, file, rows, bytes, sha256" if has_sums else "id, file, rows, NULL, NULL"
        return self.db.execute(f"SELECT {cols} FROM batches ORDER BY id").fetchall()

    def unsummed_batches(self) -> list[tuple[int, str]]:
        """(id, file) of the batches written before their size and SHA-256 were recorded (none before v4)."""
        if schema.version(self.db) < CHECKSUMS_SINCE:
            return []  # the columns are not there yet: the migration that adds them leaves them NULL
        return self.db.execute("SELECT id, file FROM batches WHERE sha256 IS NULL").fetchall()

    def last_rows(self) -> dict[int, int]:
        """{batch id: the largest row of its file that a segment references}."""
        return dict(self.db.execute("SELECT batch_id, max(row) FROM segments GROUP BY batch_id"))

    def media_in_batch(self, batch_id: int) -> int:
        """How many media have a segment in the batch."""
        return self.db.execute("SELECT count(DISTINCT media_id) FROM segments WHERE batch_id = ?",
                               (batch_id,)).fetchone()[0]

    def segments_in(self, batch_ids: Sequence[int]) -> list[tuple[int, int, int]]:
        """(segment id, batch id, row) of every segment in the batches, by segment id."""
        return self.db.execute(f"SELECT id, batch_id, row FROM segments WHERE batch_id IN"
                               f" ({','.join('?' * len(batch_ids))}) ORDER BY id", list(batch_ids)).fetchall()

    # ---- writing, inside the caller's transaction ------------------------------------------------------
    def new_batch(self, rows: int) -> int:
        """A batch row of `rows` rows, its file named later by `record_batch_file`; returns its id."""
        return self.db.execute("INSERT INTO batches (file, rows, created) VALUES ('', ?, ?)",
                               (rows, time.time())).lastrowid

    def move_segments(self, batch_id: int, segment_ids: Sequence[int]) -> None:
        """Point segments at rows 0, 1, ... of the batch, in the order given."""
        self.db.executemany("UPDATE segments SET batch_id = ?, row = ? WHERE id = ?",
                            [(batch_id, i, int(sid)) for i, sid in enumerate(segment_ids)])

    def delete_batches(self, batch_ids: Sequence[int]) -> None:
        """Delete batch rows that no segment references any more (their detector_scores rows cascade)."""
        self.db.execute(f"DELETE FROM batches WHERE id IN ({','.join('?' * len(batch_ids))})", list(batch_ids))

    def forget_batch(self, batch_id: int) -> int:
        """Delete a batch and every media with a segment in it (their segments and keyframes cascade), so that
        the next `mmindex add` indexes them again; returns how many media."""
        media = self.db.execute("DELETE FROM media WHERE id IN (SELECT media_id FROM segments WHERE batch_id = ?)",
                                (batch_id,)).rowcount
        self.db.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
        return media
