"""The store's statements on the applied detectors' rows (schema v2, see `schema.MIGRATIONS[2]`).

A detector being applied is pending (schema v7): its row exists, with its bundle and the score files committed so
far, but it has no concept rows and every reader below but `detector_widths`, `detector_files` and
`detector_bundles(pending=True)` (compaction, check and repair, which mind every file) leaves it out.

`DetectorRows` is a part of `Store` (store.py), kept apart to keep each module small: `detectors` (the
files and what applying a detector means) calls these methods and writes no SQL. The methods that write
run inside the caller's `store.transaction()`, so an `apply` or a batch stays one transaction.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

PENDING = "applying"  # a pending detector's row is named "NAME:applying"


class DetectorRows:
    """The rows of `detectors`, `detector_scores` and the detectors' concept columns."""

    db: sqlite3.Connection

    # ---- reading -------------------------------------------------------------------------------
    def detector_files(self) -> set[str]:
        """Every file under detectors/ that a committed row references: bundles and score files."""
        known = {r[0] for r in self.db.execute("SELECT file FROM detector_scores")}
        return known | {r[0] for r in self.db.execute("SELECT file FROM detectors")}

    def detector_bundles(self, pending: bool = False) -> list[tuple[int, str, str]]:
        """(id, name, bundle file under detectors/) of every applied detector, in the order applied; with
        `pending`, the detectors still being applied too."""
        where = "" if pending else " WHERE pending IS NULL"
        return self.db.execute(f"SELECT id, name, file FROM detectors{where} ORDER BY id").fetchall()

    def detector_widths(self) -> list[tuple[int, int]]:
        """(id, label count) of every detector, pending ones included: the columns of its score files."""
        return self.db.execute("SELECT id, n_labels FROM detectors ORDER BY id").fetchall()

    def pending_detectors(self) -> set[int]:
        """The ids of the detectors still being applied."""
        return {r[0] for r in self.db.execute("SELECT id FROM detectors WHERE pending IS NOT NULL")}

    def detector_named(self, name: str) -> tuple[int, str] | None:
        """(id, bundle file) of the detector applied under `name`, or None."""
        return self.db.execute("SELECT id, file FROM detectors WHERE name = ? AND pending IS NULL",
                               (name,)).fetchone()

    def pending_detector(self, name: str) -> tuple[int, str, str] | None:
        """(id, bundle file, the bundle's SHA-256) of the detector being applied under `name`, or None."""
        return self.db.execute("SELECT id, file, pending FROM detectors WHERE name = ? AND pending IS NOT NULL",
                               (f"{name}:{PENDING}",)).fetchone()

    def detector_version(self, name: str) -> int:
        """The version of the detector applied under `name` (0: none)."""
        row = self.db.execute("SELECT version FROM detectors WHERE name = ? AND pending IS NULL", (name,)).fetchone()
        return int(row[0]) if row else 0

    def detector_list(self) -> list[dict]:
        """Every applied detector: id, name, labels, version, kind ("applied" or "taught"), details (a taught
        one's training, as JSON text) and when it was applied, in the order applied."""
        rows = self.db.execute("SELECT id, name, labels, version, kind, details, applied FROM detectors"
                               " WHERE pending IS NULL ORDER BY id")
        return [{"id": i, "name": n, "labels": labels.split("\n"), "version": v, "kind": k, "details": d,
                 "applied": a} for i, n, labels, v, k, d, a in rows]

    def detector_name(self, detector_id: int) -> str:
        return self.db.execute("SELECT name FROM detectors WHERE id = ?", (detector_id,)).fetchone()[0]

    def detector_score_files(self, detector_id: int, batch_ids: Sequence[int] | None = None) -> dict[int, str]:
        """{batch id: score file} of one detector, for every batch or only those of `batch_ids`."""
        sql = "SELECT batch_id, file FROM detector_scores WHERE detector_id = ?"
        if batch_ids is None:
            return dict(self.db.execute(sql, (detector_id,)))
        return dict(self.db.execute(f"{sql} AND batch_id IN ({','.join('?' * len(batch_ids))})",
                                    (detector_id, *batch_ids)))

    def trained_layout(self) -> list[tuple[int, int, int, dict[int, str]]]:
        """For the snapshot: (detector id, first column, label count, {batch id: score file}) per detector."""
        rows = self.db.execute("SELECT id, first_col, n_labels FROM detectors WHERE pending IS NULL ORDER BY id"
                               ).fetchall()
        return [(det_id, first, n, self.detector_score_files(det_id)) for det_id, first, n in rows]

    def last_column(self) -> int | None:
        """The largest concept column (a replaced detector leaves a gap below it), or None without concepts."""
        return self.db.execute("SELECT max(col) FROM concepts").fetchone()[0]

    def _next_column(self, besides: int | None = None) -> int:
        """The first column after every concept's and every other detector's (a pending one's concepts come
        later); `besides`: a detector not to count."""
        reserved = self.db.execute("SELECT max(first_col + n_labels - 1) FROM detectors WHERE id IS NOT ?",
                                   (besides,)).fetchone()[0]
        return max(self.last_column() or 0, reserved or 0) + 1

    # ---- writing, inside the caller's transaction ------------------------------------------------------
    def add_pending_detector(self, name: str, mode: str, backbone: str | None, weights_id: str | None,
                             labels: Sequence[str], sha256: str, kind: str = "applied",
                             details: str | None = None) -> int:
        """The row of a detector about to be applied under `name` (its bundle's SHA-256 `sha256`), its label
        columns reserved after the last ones; no reader sees it before `finish_detector`. Returns its id."""
        return self.db.execute(
            "INSERT INTO detectors (name, file, mode, backbone, weights_id, labels, first_col, n_labels, applied,"
            " version, kind, details, pending) VALUES (?, '', ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
            (f"{name}:{PENDING}", mode, backbone, weights_id, "\n".join(labels), self._next_column(), len(labels),
             time.time(), kind, details, sha256),
        ).lastrowid

    def finish_detector(self, detector_id: int, name: str, version: int) -> list[tuple[str, str]]:
        """Make a pending detector visible under `name` (no other detector holds it now), its labels as trained
        concepts. Returns its concepts as (id "<name>:<label>", label)."""
        # its columns move down when the detector it replaces was deleted just before and freed the last ones
        first = self._next_column(besides=detector_id)
        labels = self.db.execute("SELECT labels FROM detectors WHERE id = ?", (detector_id,)).fetchone()[0]
        self.db.execute("UPDATE detectors SET name = ?, version = ?, applied = ?, pending = NULL, first_col = ?"
                        " WHERE id = ?", (name, version, time.time(), first, detector_id))
        concepts = [(f"{name}:{label}", label) for label in labels.split("\n")]
        self.db.executemany("INSERT INTO concepts (col, id, name, source, detector_id) VALUES (?, ?, ?, 'trained', ?)",
                            [(first + j, cid, label, detector_id) for j, (cid, label) in enumerate(concepts)])
        return concepts

    def name_detector_bundle(self, detector_id: int, file: str) -> None:
        """Reference the detector's bundle copy, once it is written."""
        self.db.execute("UPDATE detectors SET file = ? WHERE id = ?", (file, detector_id))

    def delete_detector(self, detector_id: int) -> None:
        """Forget a detector: its row, its concept columns and its score files' rows (they cascade)."""
        self.db.execute("DELETE FROM concepts WHERE detector_id = ?", (detector_id,))
        self.db.execute("DELETE FROM detectors WHERE id = ?", (detector_id,))

    def add_detector_scores(self, detector_id: int, batch_id: int, file: str) -> None:
        """Reference the score file of one batch by one detector, once it is written."""
        self.db.execute("INSERT INTO detector_scores (detector_id, batch_id, file) VALUES (?, ?, ?)",
                        (detector_id, batch_id, file))

    def drop_detector_scores(self, detector_id: int, batch_id: int) -> None:
        """Stop referencing the score file of one batch by one detector (its scores then read as 0)."""
        self.db.execute("DELETE FROM detector_scores WHERE detector_id = ? AND batch_id = ?", (detector_id, batch_id))
