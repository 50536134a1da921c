"""Relevance feedback gain on Fashion-MNIST: MAP after 1, 2 and 3 rounds of 5 simulated judgments.

    python bench/text_feedback.py [--n 10000] [--tune] [--work /tmp/mmindex-bench]

Each of the ten class-name queries runs through `Engine.search(text=...)`; each round judges the 5
best segments not yet judged (by their true label) and calls `Engine.feedback`. Two measures:
"full" MAP ranks the judged positives first, then the refined ranking, then the judged negatives (what
the user has seen plus what they are shown); "residual" MAP leaves every judged segment out of both
the refined and the original ranking (the fair comparison, Ruthven & Lalmas 2003).

--tune learns the feedback fusion weights (query, rocchio, classifier) with `fusion.learn_weights` on
the validation set: Fashion-MNIST *training* images and the validation queries of bench/text_data.py,
after 10 judgments, on the residual collection.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import text_data

from mmindex.search import fusion
from mmindex.search.feedback import refine

ROUNDS, PER_ROUND = 3, 5


def tune(work: Path) -> None:
    engine, labels = text_data.index("train", 2000, work)
    snap, _ = engine.searcher._arrays()
    validation = []
    for c, qs in text_data.VALIDATION_QUERIES.items():
        for q in qs:
            base = np.asarray(engine.searcher._bank(None, engine.reader(), snap).map(q).scores(snap.scores))
            top = fusion.top_k(base, 10)
            pos, neg = top[labels[top] == c], top[labels[top] != c]
            if len(pos) < 2 or len(neg) < 2:
                continue  # the classifier needs both kinds; such queries cannot inform its weight
            _, parts = refine(base, snap.embeddings, pos, neg)
            cols = [base, *(parts[k] for k in ("rocchio", "classifier"))]
            keep = np.ones(len(base), dtype=bool)
            keep[top] = False
            validation.append(([col[keep] for col in cols], (labels == c)[keep]))
    weights, val_map = fusion.learn_weights(validation, "combsum", "zscore", steps=10)
    print(f"learned on {len(validation)} validation queries: query, rocchio, classifier = {weights} "
          f"(residual MAP {val_map:.3f})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--tune", action="store_true")
    ap.add_argument("--work", type=Path, default=Path("/tmp/mmindex-bench"))
    args = ap.parse_args()
    if args.tune:
        tune(args.work)
        return
    engine, labels = text_data.index("t10k", args.n, args.work)
    snap, _ = engine.searcher._arrays()
    row = {int(i): r for r, i in enumerate(snap.ids)}
    full = np.zeros((len(text_data.CLASSES), ROUNDS + 1))
    resid = np.zeros((len(text_data.CLASSES), ROUNDS + 1, 2))  # [..., 0] original ranking, [..., 1] refined
    for c, q in enumerate(text_data.CLASSES):
        rel = labels == c
        original = [row[h.segment_id] for h in engine.search(text=q, k=len(labels))]
        ranking, pos, neg = list(original), [], []
        full[c, 0] = _ap(original, rel)
        for r in range(1, ROUNDS + 1):
            judged = set(pos) | set(neg)
            new = [i for i in ranking if i not in judged][:PER_ROUND]
            p = [i for i in new if rel[i]]
            n = [i for i in new if not rel[i]]
            pos, neg = pos + p, neg + n
            hits = engine.feedback([int(snap.ids[i]) for i in p], [int(snap.ids[i]) for i in n], k=len(labels))
            ranking = [row[h.segment_id] for h in hits]
            full[c, r] = _ap(pos + ranking + neg, rel)
            judged = set(pos) | set(neg)
            resid[c, r, 0] = _ap([i for i in original if i not in judged], rel, judged)
            resid[c, r, 1] = _ap(ranking, rel, judged)
    print(f"{len(labels):,} Fashion-MNIST test images; {ROUNDS} rounds of {PER_ROUND} judgments; "
          f"weights {engine.feedback_params}")
    print()
    print("| round | judged | full MAP | residual MAP, no feedback | residual MAP, feedback |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| 0 (text query) | 0 | {full[:, 0].mean():.3f} | | |")
    for r in range(1, ROUNDS + 1):
        print(f"| {r} | {r * PER_ROUND} | {full[:, r].mean():.3f} | {resid[:, r, 0].mean():.3f} "
              f"| {resid[:, r, 1].mean():.3f} |")


def _ap(ranking: list[int], rel: np.ndarray, exclude: set[int] = frozenset()) -> float:
    """AP of a ranking (row numbers, best first) over the rows not in `exclude`."""
    hits = np.array([rel[i] for i in ranking], dtype=bool)
    n_rel = int(rel.sum()) - sum(1 for i in exclude if rel[i])
    if n_rel == 0:
        return 0.0
    ranks = np.flatnonzero(hits) + 1
    return float(np.sum(np.arange(1, len(ranks) + 1) / ranks) / n_rel)


if __name__ == "__main__":
    main()
