"""Judgments in plain files: CSV for people and spreadsheets, TRECVID-style qrels for trec_eval.

    csv     segment_path,start,end,concept,label        (a header line; start and end empty for an image;
                                                          label 1 or 0, and +1 / -1 are read too)
    qrels   concept 0 doc relevance                     (evaluate/trec.py's format: relevance > 0 relevant,
                                                          0 judged not relevant, -1 unjudged and skipped)

A qrels document is named as `mmindex evaluate` names one (learn/heldout.py): the file's path with each run of
white space as "_", and for a segment of a video its time span as a media fragment, `clip.mp4#t=12.480,17.000`.
A concept name's white space is written "_" there too. This module only reads and writes text; the indexer
maps the lines onto the index's segments.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mmindex.errors import DataError
from mmindex.evaluate import trec

FORMATS = ("csv", "qrels")
CSV_HEADER = ("segment_path", "start", "end", "concept", "label")
_LABELS = {"1": 1, "+1": 1, "0": 0, "-1": 0}
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Line:
    """One judgment as a file gives it: where it is (for messages), the segment (a path and time span from a CSV
    file, a document id from qrels), the concept and the label (1 or 0)."""

    where: str
    concept: str
    label: int
    path: str | None = None
    start: float | None = None
    end: float | None = None
    doc: str | None = None


def doc_id(path: str, start: float | None = None, end: float | None = None) -> str:
    """The qrels document id of a segment (see the module docstring)."""
    doc = _SPACE.sub("_", path)
    return doc if start is None or end is None else f"{doc}#t={start:.3f},{end:.3f}"


def qrels_query(concept: str) -> str:
    """A concept name as a qrels query id: one field."""
    return _SPACE.sub("_", concept.strip())


def format_of(path: str | os.PathLike, given: str | None = None) -> str:
    """`given`, else the format a file's name says: csv for `.csv`, qrels otherwise."""
    if given:
        if given not in FORMATS:
            raise DataError(f"unknown judgments format {given!r}; choose {' or '.join(FORMATS)}")
        return given
    return "csv" if Path(path).suffix.lower() == ".csv" else "qrels"


def write_text(rows: Iterable[dict], fmt: str) -> str:
    """Judgments ({path, start, end, concept, label} each) as the text of a `fmt` file."""
    rows = list(rows)
    if fmt == "qrels":
        qrels: dict[str, dict[str, int]] = {}
        for r in rows:
            qrels.setdefault(qrels_query(r["concept"]), {})[doc_id(r["path"], r["start"], r["end"])] = int(r["label"])
        return "".join(f"{q} 0 {d} {qrels[q][d]}\n" for q in sorted(qrels) for d in sorted(qrels[q]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for r in rows:
        writer.writerow([r["path"], "" if r["start"] is None else repr(r["start"]),
                         "" if r["end"] is None else repr(r["end"]), r["concept"], int(r["label"])])
    return out.getvalue()


def read(path: str | os.PathLike, fmt: str) -> tuple[list[Line], int]:
    """The judgments of a file, and how many of its lines were skipped (qrels' unjudged -1).
    `DataError` names the first malformed line."""
    if fmt == "qrels":
        lines, skipped = [], 0
        for query, docs in trec.read_qrels(path).items():
            for doc, relevance in docs.items():
                if relevance < 0:
                    skipped += 1
                    continue
                lines.append(Line(f"{path}: {query} {doc}", query, int(relevance > 0), doc=doc))
        return lines, skipped
    return _read_csv(path), 0


def _read_csv(path: str | os.PathLike) -> list[Line]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    out = []
    for n, row in enumerate(csv.reader(io.StringIO(text)), 1):
        if not row or n == 1 and tuple(c.strip() for c in row) == CSV_HEADER:
            continue
        if len(row) != len(CSV_HEADER) or row[4].strip() not in _LABELS or not row[3].strip():
            raise DataError(f"{path}:{n}: a line is `{','.join(CSV_HEADER)}` with a label of 1 or 0")
        try:
            start, end = (float(v) if v.strip() else None for v in row[1:3])
        except ValueError:
            raise DataError(f"{path}:{n}: start and end are numbers of seconds, or empty for an image") from None
        out.append(Line(f"{path}:{n}", row[3].strip(), _LABELS[row[4].strip()], path=row[0], start=start, end=end))
    return out
