"""The store's statement for temporal queries and video-level results: every segment's media file and time.

`TimelineRows` is a part of `Store` (store.py), kept apart to keep each module small: `search/temporal.py` reads
the timeline through it once per committed generation and writes no SQL.
"""

from __future__ import annotations

import sqlite3

import numpy as np


class TimelineRows:
    """Where each segment lies: its media file and, for a video shot, its start and end in seconds."""

    db: sqlite3.Connection

    def timeline(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(segment ids, media ids, starts, ends) of every segment, by id; an image's start and end are NaN."""
        rows = self.db.execute('SELECT id, media_id, start, "end" FROM segments ORDER BY id').fetchall()
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        media = np.fromiter((r[1] for r in rows), np.int64, len(rows))
        times = np.array([(r[2], r[3]) for r in rows], dtype=np.float64).reshape(-1, 2)  # None becomes NaN
        return ids, media, times[:, 0], times[:, 1]
