"""Score normalisation and fusion of several criteria into one ranking.

Each criterion (a concept expression, an example) gives a score to every segment. Scores of
different kinds (probabilities, cosine similarities) are not comparable, so each is first
normalised over the whole collection, then the normalised scores are added with the criteria's
weights (weighted CombSUM, Fox & Shaw 1994). A single criterion is ranked by its raw score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from mmindex.errors import QueryError
from mmindex.registry import Registry


def minmax(x: np.ndarray) -> np.ndarray:
    """Rescale to [0, 1]; a constant column becomes all zeros (it cannot discriminate)."""
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def zscore(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance; a constant column becomes all zeros."""
    sd = float(x.std())
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def rank(x: np.ndarray) -> np.ndarray:
    """Rank-based score in (0, 1]: the best segment gets 1, the worst 1/N (ties share the best rank:
    [1, 1, 0] gives [1, 1, 1/3], "competition" ranking)."""
    from scipy.stats import rankdata  # here, not at the top: scipy.stats adds about 0.4 s to every CLI start

    return 1.0 / rankdata(-np.asarray(x), method="min")


NORMALISERS = {"minmax": minmax, "zscore": zscore, "rank": rank}


def combsum(columns: Sequence[np.ndarray], weights: Sequence[float], normalise: str = "minmax") -> np.ndarray:
    """Weighted CombSUM of normalised score columns: Σ_i w_i · norm(s_i)."""
    if normalise not in NORMALISERS:
        raise QueryError(f"unknown normalisation {normalise!r}; choose from {', '.join(NORMALISERS)}")
    if len(columns) == 1:  # ranked by its raw score, in its own precision (float32 halves a top-k's time)
        column = np.asarray(columns[0])
        return column if column.dtype.kind == "f" else column.astype(np.float64)
    norm = NORMALISERS[normalise]
    return sum(w * norm(np.asarray(c, dtype=np.float64)) for c, w in zip(columns, weights, strict=True))


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the k best scores, best first (argpartition, then sort only those k)."""
    k = min(k, len(scores))
    if k == 0:
        return np.empty(0, dtype=np.int64)
    n = len(scores)
    part = np.argpartition(scores, n - k)[n - k:] if k < n else np.arange(n)  # no negated copy of all n
    return part[np.argsort(-scores[part], kind="stable")]


# ---- fusion methods by name (issue 5) ------------------------------------------------------------
# CombMNZ and RRF fuse *retrieved lists*: a criterion "retrieves" its `depth` best segments, which are
# normalised among themselves, and the rest score 0 for it (as in TREC runs and in ranx). CombSUM over
# the whole collection (depth None) is the foundation's behaviour above.
DEFAULT_DEPTH = 1000
RRF_K = 60  # Cormack, Clarke & Büttcher (SIGIR 2009): k = 60

#: fusion methods by name: fn(columns, weights, norm, depth) -> each criterion's part of the fused score,
#: where `norm` is a normaliser and `depth` a criterion's run length (None: every row). A new method is one
#: registered function; the CLI's --fusion choices, the docs and tests/search's generated tests follow.
METHODS: Registry[Callable[..., list[np.ndarray]]] = Registry("fusion method", QueryError)
FUSION_METHODS = METHODS  # the older name: `in`, iteration and join give the registered names


def _runs(cols: list[np.ndarray], depth: int | None) -> list[np.ndarray | None]:
    """Each criterion's retrieved rows: its `depth` best, or None when it retrieves every row."""
    return [top_k(c, depth) if depth is not None and depth < len(c) else None for c in cols]


def _normalised_parts(cols, weights, norm, runs) -> list[np.ndarray]:
    """w_i·norm(s_i) over each criterion's run (normalised among the run), 0 elsewhere."""
    parts = []
    for col, w, kept in zip(cols, weights, runs, strict=True):
        if kept is None:
            part = w * norm(col)
        else:
            part = np.zeros_like(col)
            part[kept] = w * norm(col[kept])
        parts.append(part)
    return parts


@METHODS.register("combsum", formula="Σ w_i·norm(s_i)")
def _combsum(cols, weights, norm, depth):
    """CombSUM (Fox & Shaw 1994): the weighted sum of the normalised scores."""
    return _normalised_parts(cols, weights, norm, _runs(cols, depth))


METHODS.add("wsum", _combsum, formula="Σ w_i·norm(s_i)")  # CombSUM by another name: the weighted sum


@METHODS.register("combmnz", formula="|{i : d in run i}| · Σ w_i·norm(s_i)")
def _combmnz(cols, weights, norm, depth):
    """CombMNZ: CombSUM times the number of runs (each criterion's top `depth`, default 1000) holding d."""
    runs = _runs(cols, DEFAULT_DEPTH if depth is None else depth)
    hits = np.zeros(len(cols[0]), dtype=np.int64)
    for kept in runs:
        if kept is None:
            hits += 1
        else:
            hits[kept] += 1
    return [p * hits for p in _normalised_parts(cols, weights, norm, runs)]


@METHODS.register("rrf", formula="Σ w_i / (RRF_K + rank_i(d))")
def _rrf(cols, weights, norm, depth):
    """Reciprocal rank fusion over each criterion's run; the normaliser is not used."""
    parts = []
    for col, w, kept in zip(cols, weights, _runs(cols, depth), strict=True):
        order = kept if kept is not None else np.argsort(-col, kind="stable")
        part = np.zeros_like(col)
        part[order] = w / (RRF_K + np.arange(1, len(order) + 1))
        parts.append(part)
    return parts


# The registered names as types, for request models: FastAPI makes each an enum in the OpenAPI schema.
FusionName = Literal[tuple(METHODS)]  # type: ignore[valid-type]
NormaliserName = Literal[tuple(NORMALISERS)]  # type: ignore[valid-type]


def fuse(
    columns: Sequence[np.ndarray],
    weights: Sequence[float] | None = None,
    method: str = "combsum",
    normalise: str = "minmax",
    depth: int | None = None,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Fuse score columns by name; returns the fused scores and each criterion's contribution to them.

    combsum / wsum: Σ w_i·norm(s_i)                  (Fox & Shaw 1994; weighted sum)
    combmnz:        |{i : d in run i}| · Σ w_i·norm(s_i)   (runs = each criterion's top `depth`, default 1000)
    rrf:            Σ w_i / (RRF_K + rank_i(d))       (reciprocal rank fusion; `normalise` is not used)
    A single criterion keeps its raw scores. The contributions add up to the fused score.
    """
    fuse_parts = METHODS.get(method)
    if normalise not in NORMALISERS:
        raise QueryError(f"unknown normalisation {normalise!r}; choose from {', '.join(NORMALISERS)}")
    cols = [np.asarray(c, dtype=np.float64) for c in columns]
    weights = [1.0] * len(cols) if weights is None else list(weights)
    if len(cols) != len(weights):
        raise ValueError("one weight per column")
    if len(cols) == 1:
        return cols[0], [cols[0]]
    parts = fuse_parts(cols, weights, NORMALISERS[normalise], depth)
    return np.sum(parts, axis=0), parts


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    """Non-interpolated AP of the ranking by `scores` (best first, ties in row order) for a boolean mask."""
    n_rel = int(relevant.sum())
    if n_rel == 0:
        return 0.0
    hits = relevant[np.argsort(-scores, kind="stable")]
    ranks = np.flatnonzero(hits) + 1
    return float(np.mean(np.arange(1, n_rel + 1) / ranks))


def learn_weights(
    validation: Sequence[tuple[Sequence[np.ndarray], np.ndarray]],
    method: str = "combsum",
    normalise: str = "minmax",
    depth: int | None = None,
    steps: int = 10,
) -> tuple[list[float], float]:
    """Fusion weights that maximise MAP on validation queries, by grid search over the simplex.

    `validation` holds, per query, its criteria's score columns (the same criteria, in the same order, for
    every query) and the boolean relevance of each row. Weights are multiples of 1/steps summing to 1.
    Returns (weights, validation MAP). Grid search is exact at this resolution and cheap for the 2–4
    criteria a query has; the weights are learned once, offline (see bench/text_feedback.py).
    """
    n = len(validation[0][0])
    best: tuple[float, list[float]] = (-1.0, [1.0 / n] * n)
    for combo in _simplex(n, steps):
        w = [c / steps for c in combo]
        m = float(np.mean([average_precision(fuse(cols, w, method, normalise, depth)[0], rel)
                           for cols, rel in validation]))
        if m > best[0] + 1e-12:
            best = (m, w)
    return best[1], best[0]


def _simplex(n: int, steps: int):
    """All n-tuples of non-negative integers summing to `steps`."""
    if n == 1:
        yield (steps,)
        return
    for i in range(steps + 1):
        for rest in _simplex(n - 1, steps - i):
            yield (i, *rest)
