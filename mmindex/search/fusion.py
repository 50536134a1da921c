"""Score normalisation and fusion of several criteria into one ranking.

Each criterion (a concept expression, an example) gives a score to every segment. Scores of
different kinds (probabilities, cosine similarities) are not comparable, so each is first
normalised over the whole collection, then the normalised scores are added with the criteria's
weights (weighted CombSUM, Fox & Shaw 1994). A single criterion is ranked by its raw score.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmindex.errors import QueryError


def minmax(x: np.ndarray) -> np.ndarray:
    """Rescale to [0, 1]; a constant column becomes all zeros (it cannot discriminate)."""
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def zscore(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance; a constant column becomes all zeros."""
    sd = float(x.std())
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def rank(x: np.ndarray) -> np.ndarray:
    """Rank-based score in (0, 1]: the best segment gets 1, the worst 1/N (ties share the best rank)."""
    order = np.argsort(-x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(1, len(x) + 1)
    return 1.0 / ranks


NORMALISERS = {"minmax": minmax, "zscore": zscore, "rank": rank}


def combsum(columns: Sequence[np.ndarray], weights: Sequence[float], normalise: str = "minmax") -> np.ndarray:
    """Weighted CombSUM of normalised score columns: Σ_i w_i · norm(s_i)."""
    if normalise not in NORMALISERS:
        raise QueryError(f"unknown normalisation {normalise!r}; choose from {', '.join(NORMALISERS)}")
    if len(columns) == 1:
        return np.asarray(columns[0], dtype=np.float64)
    norm = NORMALISERS[normalise]
    return sum(w * norm(np.asarray(c, dtype=np.float64)) for c, w in zip(columns, weights, strict=True))


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the k best scores, best first (argpartition, then sort only those k)."""
    k = min(k, len(scores))
    if k == 0:
        return np.empty(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    return part[np.argsort(-scores[part], kind="stable")]
