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
    return _read(path, "a run line is `query Q0 doc rank score tag`", 6, 4, float, "score is not a number")


def write_qrels(path: str | os.PathLike, qrels: Mapping[str, Mapping[str, int]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for q in sorted(qrels):
            for doc in sorted(qrels[q]):
                f.write(f"{q} 0 {doc} {int(qrels[q][doc])}\n")


def read_qrels(path: str | os.PathLike) -> Qrels:
    """Read a qrels file. `DataError` names the first malformed line."""
    return _read(path, "a qrels line is `query 0 doc relevance`", 4, 3, int, "relevance is not an integer")


def _read(path: str | os.PathLike, form: str, n_fields: int, column: int, parse, bad: str) -> dict:
    """{query (first field): {doc (third field): parse(field `column`)}} from lines of `n_fields` fields."""
    out: dict = {}
    for n, parts in _lines(path):
        if len(parts) != n_fields:
            raise DataError(f"{path}:{n}: {form}")
        try:
            out.setdefault(parts[0], {})[parts[2]] = parse(parts[column])
        except ValueError:
            word, _, rest = bad.partition(" ")
            raise DataError(f"{path}:{n}: {word} {parts[column]!r} {rest}") from None
    return out


def _lines(path: str | os.PathLike):
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield n, line.split()


def evaluate_files(qrels_path: str | os.PathLike, run_path: str | os.PathLike, ks: tuple[int, ...] = (5, 10)) -> dict:
    """`mmindex evaluate-run`: a run file scored against a qrels file by trec_eval (pytrec_eval; see
    `metrics.evaluate_run`). Returns {"topics": {topic: {map, infAP, P_k, ndcg_cut_k}}, "all": the means over the
    qrels' topics (a topic the run lacks scores 0, as `trec_eval -c` counts it), "measures", "run_topics_unjudged":
    the run's topics that the qrels do not have (not scored)}. `DataError` names a malformed line or an empty qrels."""
    from mmindex.evaluate.metrics import evaluate_run

    qrels, run = read_qrels(qrels_path), read_run(run_path)
    if not qrels:
        raise DataError(f"{qrels_path} holds no judgment")
    topics = evaluate_run(run, qrels, ks)
    measures = list(next(iter(topics.values())))
    mean = {m: sum(t[m] for t in topics.values()) / len(topics) for m in measures}
    return {"topics": topics, "all": mean, "measures": measures,
            "run_topics_unjudged": sorted(set(run) - set(qrels))}
