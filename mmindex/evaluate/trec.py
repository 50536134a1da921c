"""trec_eval's file formats, so that results compare with other systems (and with trec_eval itself).

run:   `query Q0 doc rank score tag`, one line per retrieved document, best first per query
qrels: `query 0 doc relevance`, relevance > 0 relevant, 0 judged non-relevant, -1 pooled but unjudged
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from mmindex.errors import DataError

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]


def write_run(path: str | os.PathLike, run: Mapping[str, Mapping[str, float]], tag: str = "mmindex",
              depth: int | None = None) -> None:
    """Write a run; each query's documents sorted by score (best first), at most `depth` of them."""
    with open(path, "w", encoding="utf-8") as f:
        for q in sorted(run):
            ranked = sorted(run[q].items(), key=lambda kv: (-kv[1], kv[0]))[:depth]
            for rank, (doc, score) in enumerate(ranked, 1):
                f.write(f"{q} Q0 {doc} {rank} {score:.8g} {tag}\n")


def read_run(path: str | os.PathLike) -> Run:
    """Read a run file. `DataError` names the first malformed line."""
    run: Run = {}
    for n, parts in _lines(path):
        if len(parts) != 6:
            raise DataError(f"{path}:{n}: a run line is `query Q0 doc rank score tag`")
        try:
            run.setdefault(parts[0], {})[parts[2]] = float(parts[4])
        except ValueError:
            raise DataError(f"{path}:{n}: score {parts[4]!r} is not a number") from None
    return run


def write_qrels(path: str | os.PathLike, qrels: Mapping[str, Mapping[str, int]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for q in sorted(qrels):
            for doc in sorted(qrels[q]):
                f.write(f"{q} 0 {doc} {int(qrels[q][doc])}\n")


def read_qrels(path: str | os.PathLike) -> Qrels:
    """Read a qrels file. `DataError` names the first malformed line."""
    qrels: Qrels = {}
    for n, parts in _lines(path):
        if len(parts) != 4:
            raise DataError(f"{path}:{n}: a qrels line is `query 0 doc relevance`")
        try:
            qrels.setdefault(parts[0], {})[parts[2]] = int(parts[3])
        except ValueError:
            raise DataError(f"{path}:{n}: relevance {parts[3]!r} is not an integer") from None
    return qrels


def _lines(path: str | os.PathLike):
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield n, line.split()
