"""The store's statements for detectors that read the media back or read keyframe embeddings (issue 18), and for
tables of segments (issue 22: segments by id range).

`MediaRows` is a part of `Store` (store.py), kept apart to keep each module small: `index.detector_inputs` calls
these methods and writes no SQL. Schema v6 (`schema.MIGRATIONS[6]`) adds an `embedding` column to `keyframes`:
each keyframe's embedding as float16 bytes, stored when the index's meta `keyframe_embeddings` is "1"
(`mmindex add --keyframe-embeddings`; NULL otherwise). The rows go with their segment (ON DELETE CASCADE), and
compaction keeps segment ids, so they need no work of their own there.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

import numpy as np

from mmindex.index import schema

KEYFRAME_EMBEDDINGS, KEYFRAME_RATE = "keyframe_embeddings", "keyframe_rate"  # meta keys


class MediaRows:
    """Segments of a batch with their files' facts, keyframe times and embeddings; errors found by `apply`."""

    db: sqlite3.Connection  # and the Store's meta and _set_meta

    # ---- settings --------------------------------------------------------------------------------
    def keyframe_settings(self) -> tuple[bool, float | None]:
        """(whether keyframe embeddings are stored, the keyframe rate) this index was built with."""
        rate = self.meta(KEYFRAME_RATE)
        return self.meta(KEYFRAME_EMBEDDINGS) == "1", float(rate) if rate else None

    def set_keyframe_settings(self, embeddings: bool, rate: float | None) -> None:
        """Inside a transaction: record the settings (`add` keeps them for the media added later)."""
        if embeddings:
            self._set_meta(KEYFRAME_EMBEDDINGS, "1")
        if rate is not None:
            self._set_meta(KEYFRAME_RATE, repr(float(rate)))

    def keyframe_rows(self, segment_id: int, keyframes: Sequence, embeddings: np.ndarray | None) -> list[tuple]:
        """The rows of a segment's keyframes for `write_batch`, with their embeddings when this index keeps them."""
        keep = embeddings is not None and self.meta(KEYFRAME_EMBEDDINGS) == "1"
        return [(segment_id, t, f, np.asarray(embeddings[i], np.float16).tobytes() if keep else None)
                for i, (t, f) in enumerate(keyframes)]

    def insert_keyframes(self, rows: list[tuple]) -> None:
        self.db.executemany("INSERT INTO keyframes (segment_id, time, frame, embedding) VALUES (?, ?, ?, ?)", rows)

    # ---- reading a batch back ----------------------------------------------------------------------
    def batch_media(self, batch_id: int) -> list[tuple]:
        """(row, segment id, media id, path, kind, sha256, size, mtime_ns, start, end) of every segment of a batch,
        by row."""
        rows = self.db.execute(
            'SELECT s.row, s.id, m.id, m.path, m.kind, m.sha256, m.size, m.mtime_ns, s.start, s."end" FROM segments s'
            " JOIN media m ON m.id = s.media_id WHERE s.batch_id = ? ORDER BY s.row", (batch_id,)).fetchall()
        return [(r[0], r[1], r[2], schema.path_from_db(r[3]), *r[4:]) for r in rows]

    def batch_keyframes(self, batch_id: int, embeddings: bool = False) -> dict[int, list[tuple]]:
        """{segment id: [(time, embedding bytes or None)]} of a batch's segments, keyframes in time order."""
        out: dict[int, list[tuple]] = {}
        rows = self.db.execute(
            f"SELECT k.segment_id, k.time, {'k.embedding' if embeddings else 'NULL'} FROM keyframes k JOIN segments s"
            " ON s.id = k.segment_id WHERE s.batch_id = ? ORDER BY k.segment_id, k.time, k.rowid", (batch_id,))
        for segment_id, t, e in rows:
            out.setdefault(segment_id, []).append((t, e))
        return out

    def segment_keyframes(self, segment_ids: Sequence[int]) -> dict[int, list[tuple]]:
        """{segment id: [(time, embedding bytes or None)]} of the given segments, keyframes in time order."""
        out: dict[int, list[tuple]] = {}
        for i in range(0, len(segment_ids), 900):  # SQLite's limit on host parameters
            part = list(segment_ids[i:i + 900])
            rows = self.db.execute(f"SELECT segment_id, time, embedding FROM keyframes WHERE segment_id IN"
                                   f" ({','.join('?' * len(part))}) ORDER BY segment_id, time, rowid", part)
            for segment_id, t, e in rows:
                out.setdefault(segment_id, []).append((t, e))
        return out

    def keyframe_embedding_bytes(self) -> int:
        """Bytes of stored keyframe embeddings (the figures of docs/benchmarks.md)."""
        return int(self.db.execute("SELECT coalesce(sum(length(embedding)), 0) FROM keyframes").fetchone()[0])

    # ---- errors found by apply -----------------------------------------------------------------------
    def record_errors(self, errors: Sequence[tuple[str, str]]) -> None:
        """Inside a transaction: (path, why) of files a detector could not read back; `info` lists them, and the
        next `add` of a changed file, or `remove`, clears them."""
        self.db.executemany("INSERT OR REPLACE INTO errors (path, error, at) VALUES (?, ?, ?)",
                            [(schema.path_to_db(p), e, time.time()) for p, e in errors])

    # ---- tables of segments (index/tables.py) -------------------------------------------------------
    def segment_rows(self, first_id: int, last_id: int) -> list[tuple]:
        """(segment id, media id, path, kind, start, end) of the segments with ids in [first_id, last_id], by id:
        one chunk of a table of segments, read by id range so that a million segments are never all in memory."""
        rows = self.db.execute(
            'SELECT s.id, m.id, m.path, m.kind, s.start, s."end" FROM segments s JOIN media m ON m.id = s.media_id'
            " WHERE s.id BETWEEN ? AND ? ORDER BY s.id", (int(first_id), int(last_id))).fetchall()
        return [(r[0], r[1], schema.path_from_db(r[2]), *r[3:]) for r in rows]

    def longest_path(self) -> int:
        """An upper bound of the length of every media path, in characters (a fixed-width column's width)."""
        return int(self.db.execute("SELECT coalesce(max(length(path)), 0) FROM media").fetchone()[0])
