"""Fused queries with examples: the exact top k without scoring every segment exactly (issue 20).

A fused query (a concept plus `--like`) ranks by Σ_i w_i·minmax(s_i) over the whole collection: an example's
min-max normalisation needs the lowest and the highest similarity of all segments, and any segment could be in
the top k. Summing every stored float16 embedding in float64 (`ExampleRanker.scores`, the exact scores) took
0.4-0.8 s at 100k segments. Instead, for each example vector v:

1. FAISS scores every segment from the float16 batch files in place (index/scan.py), in float32, for v and
   for −v: the K best and the K worst, with an error of at most e per score (`EmbeddingScan.error_bound`).
2. The exact highest (lowest) similarity belongs to a row within 2e of the approximate highest (lowest),
   which the list holds when its K-th value is further away than that (else: step 5). Those rows and the
   top K are scored exactly (float64, as `ExampleRanker` does): hi and lo are exact.
3. Any other segment's similarity is at most τ + e (τ: the K-th best approximate score), so its fused score
   is at most O_r + B, where O_r is the exact sum of the other criteria and B = Σ_j w_j·(τ_j + e_j − lo_j) /
   (hi_j − lo_j). Segments with O_r + B ≥ T, the k-th best fused score among those scored exactly, are
   scored exactly too.
4. Only those segments are fused, with the rows holding each other criterion's min and max (where the
   example's column is lo): every column has the min and max of the whole collection, so fusion gives the
   segments scored exactly the very scores of the exact computation, and the top k, their scores and their
   order are the exact ones, at the cost of fusing a few thousand rows rather than all of them.
5. CombSUM (wsum) with min-max normalisation and positive example weights only (the default); other fusions,
   a query refined by judgments (which reads every fused score), collections under `fast_from` segments, a
   list too short for step 2 and more than `max_extra` segments in step 3 all score every segment exactly.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from mmindex.index.scan import EmbeddingScan, scannable
from mmindex.index.snapshot import Snapshot
from mmindex.search import fusion
from mmindex.search.rank import ExampleRanker, Ranker

FAST_FROM = 4096  # segments: below, scoring all of them exactly costs a few ms
LIST = 256  # K: rows listed per example and direction (at least 4k)
MAX_EXTRA = 20_000  # segments scored exactly in step 3 before scoring all of them is the better deal
_MARGIN = 1e-9  # relative slack on fused-score comparisons: float64 rounding of sums done in another order


class FusedColumns:
    """Each ranker's score column for a fused query, exact wherever the top k depends on it (module docstring).

    Holds the scan of the current snapshot and each batch file's per-dimension maxima; thread-safe.
    """

    def __init__(self, fast_from: int = FAST_FROM, max_extra: int = MAX_EXTRA):
        self.fast_from, self.max_extra = fast_from, max_extra
        self.fast = 0  # queries answered by the fast path (for tests and benches)
        self._lock = threading.Lock()
        self._scan: tuple[Snapshot, EmbeddingScan] | None = None
        self._limits: dict[int, np.ndarray] = {}

    def columns(self, rankers: Sequence[Ranker], snap: Snapshot, k: int, method: str,
                normalise: str) -> tuple[list[np.ndarray], np.ndarray | None]:
        """(columns, rows): what `[r.scores(snap) for r in rankers]` gives with rows None (every row), or the
        columns at some snapshot rows only, which fuse to the same top k with the same scores."""
        likes = [i for i, r in enumerate(rankers) if isinstance(r, ExampleRanker)]
        columns = [None if i in likes else r.scores(snap) for i, r in enumerate(rankers)]
        if (likes and len(rankers) > 1 and method in ("combsum", "wsum") and normalise == "minmax"
                and len(snap.ids) >= max(self.fast_from, 1) and all(rankers[i].weight > 0 for i in likes)
                and scannable(snap.parts, snap.embeddings.shape[1])):
            fast = self._fast(rankers, likes, columns, snap, k)
            if fast is not None:
                self.fast += 1
                return fast
        return [c if c is not None else rankers[i].scores(snap) for i, c in enumerate(columns)], None

    def _scanner(self, snap: Snapshot) -> EmbeddingScan:
        with self._lock:
            if self._scan is None or self._scan[0] is not snap:
                live = {p.batch_id for p in snap.parts}
                self._limits = {b: v for b, v in self._limits.items() if b in live}
                self._scan = (snap, EmbeddingScan(snap.parts, len(snap.ids), snap.embeddings.shape[1], self._limits))
            return self._scan[1]

    def _fast(self, rankers, likes: list[int], columns: list, snap: Snapshot, k: int) -> tuple | None:
        scan = self._scanner(snap)
        vectors = np.stack([np.asarray(rankers[i].vector, dtype=np.float32) for i in likes])
        errors = scan.error_bound(vectors)
        if not np.all(np.isfinite(errors)):
            return None
        m, n = len(likes), len(snap.ids)
        rows, approx, tau = scan.top(np.concatenate([vectors, -vectors]), max(LIST, 4 * k))
        listed = []
        for j in range(m):
            found = _extremes(rows[j], approx[j], tau[j], rows[m + j], -approx[m + j], -tau[m + j], errors[j])
            if found is None:  # near-ties beyond the lists: they cannot tell the extremes
                return None
            listed.append(found)
        exact_rows = np.unique(np.concatenate(listed))
        sims = _exact(snap, exact_rows, rankers, likes)  # (rows, m) float32
        lo, hi = sims.min(axis=0).astype(np.float64), sims.max(axis=0).astype(np.float64)
        weights = np.array([rankers[i].weight for i in likes])
        span = np.where(hi > lo, hi - lo, 1.0)
        bound = float(np.sum(np.where(hi > lo, weights * (np.maximum(tau[:m] + errors, lo) - lo) / span, 0.0)))
        others = sum((rankers[i].weight * fusion.minmax(np.asarray(c, dtype=np.float64))
                      for i, c in enumerate(columns) if c is not None), np.zeros(n))
        fused = others[exact_rows] + np.sum(weights * np.where(hi > lo, (sims - lo) / span, 0.0), axis=1)
        # the k-th best fused score so far (with fewer rows, every other row may still enter)
        threshold = np.partition(fused, len(fused) - k)[len(fused) - k] if len(fused) >= k else -np.inf
        outside = np.ones(n, bool)
        outside[exact_rows] = False
        extra = np.flatnonzero(outside & (others + bound >= threshold - _MARGIN * (1 + abs(threshold))))
        if len(extra) > self.max_extra:
            return None
        if len(extra):
            exact_rows = np.concatenate([exact_rows, extra])
            sims = np.concatenate([sims, _exact(snap, extra, rankers, likes)])
        extremes = [r for c in columns if c is not None for r in (int(np.argmin(c)), int(np.argmax(c)))]
        rows = np.unique(np.concatenate([exact_rows, np.array(extremes, dtype=np.int64)]))
        at = np.searchsorted(rows, exact_rows)
        for i, c in enumerate(columns):
            if c is not None:
                columns[i] = np.asarray(c)[rows]
        for j, i in enumerate(likes):
            column = np.full(len(rows), lo[j], dtype=np.float32)  # lo: 0 after normalisation, as low as it goes
            column[at] = sims[:, j]
            columns[i] = column
        return columns, rows


def _extremes(top_rows, top, tau, bottom_rows, bottom, tau_low, error) -> np.ndarray | None:
    """The rows to score exactly for one example: its listed best rows and the rows that may hold the lowest
    exact score; None when a list ends within 2·error of its extreme (it may miss the extreme's row)."""
    live, live_low = top_rows >= 0, bottom_rows >= 0
    if not live.any() or not live_low.any():
        return None
    high, low = float(top[live].max()), float(bottom[live_low].min())
    if not (tau < high - 2 * error and tau_low > low + 2 * error):
        return None
    return np.concatenate([top_rows[live], bottom_rows[live_low & (bottom <= low + 2 * error)]])


def _exact(snap: Snapshot, rows: np.ndarray, rankers, likes: list[int]) -> np.ndarray:
    """(len(rows), m) float32: the examples' exact similarities at those rows, summed in float64 as
    `EmbeddingMatrix.__matmul__` sums them (one matrix-vector product per example)."""
    emb = snap.embeddings[rows].astype(np.float64)
    return np.stack([emb @ np.asarray(rankers[i].vector, dtype=np.float64) for i in likes], axis=1).astype(np.float32)
