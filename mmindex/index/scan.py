"""Full scans of a snapshot's stored float16 embeddings by FAISS, in place: no conversion, no copy.

FAISS's fp16 scalar quantizer stores its codes as the IEEE float16 values themselves, which is how batch files
store embeddings ((n, D) float16, row-major, arrays.py). So an `IndexScalarQuantizer(D, QT_fp16,
METRIC_INNER_PRODUCT)` whose code array is a *view* of a mapped batch file (`MaybeOwnedVector.create_view`)
scores every row of the file at memory speed, converting in SIMD registers: 12-16 ms per 100k 1280-d rows
on one core here, where NumPy's float16 -> float64 conversion and product took 400-800 ms.

FAISS sums in float32, so its scores differ from the exact ones (float64 sums rounded to float32,
`EmbeddingMatrix.__matmul__`) by at most `error_bound`; search/fused.py scores exactly what matters.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from mmindex.index.snapshot import Part

_U = 2.0 ** -24  # unit roundoff of float32
_ROWS = 16_384  # rows per step when reading a file's per-dimension maxima
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """Threads that scan for the other queries of a call (FAISS releases the GIL while it searches)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max(1, (os.cpu_count() or 1) - 1), thread_name_prefix="mmindex-scan")
        return _POOL


class _FileView:
    """A FAISS index that reads one batch file's embeddings where they are mapped (kept with the array)."""

    def __init__(self, emb: np.ndarray):
        import faiss  # deferred: only fused queries scan

        self.emb = emb  # FAISS holds a raw pointer into it: the array (and its mapping) must outlive the index
        n, dim = emb.shape
        self.index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        codes = emb.view(np.uint8).reshape(-1)
        no_owner = faiss.MaybeOwnedVectorUInt8().owner  # an empty owner: the array above keeps the bytes alive
        self.index.codes = faiss.MaybeOwnedVectorUInt8.create_view(faiss.swig_ptr(codes), codes.nbytes, no_owner)
        self.index.ntotal = n


def scannable(parts: Sequence[Part], dim: int) -> bool:
    """Whether every part's embeddings are float16 rows that FAISS can read in place."""
    return all(p.arrays.embeddings.dtype == np.float16 and p.arrays.embeddings.flags.c_contiguous
               and p.arrays.embeddings.ndim == 2 and p.arrays.embeddings.shape[1] == dim for p in parts)


def max_abs(emb: np.ndarray) -> np.ndarray:
    """(D,) float32: the largest |x_i| of each dimension over the rows of a float16 (n, D) array (inf or nan
    if the file holds such values). Compares the float16 bit patterns without the sign: no conversion."""
    top = np.zeros(emb.shape[1], np.uint16)
    for i in range(0, len(emb), _ROWS):
        np.maximum(top, (emb[i:i + _ROWS].view(np.uint16) & np.uint16(0x7FFF)).max(axis=0), out=top)
    return top.view(np.float16).astype(np.float32)


class EmbeddingScan:
    """Approximate top and bottom inner products over every row of a snapshot, read from its batch files.

    `limits` maps a part's batch id to its `max_abs` (the caller keeps it across snapshots: batch files never
    change); missing ones are computed here.
    """

    def __init__(self, parts: Sequence[Part], n: int, dim: int, limits: dict[int, np.ndarray]):
        self.views = [_FileView(p.arrays.embeddings) for p in parts]
        # the snapshot row of each row of each file (files end to end), -1 for rows the snapshot lacks
        sizes = [p.arrays.embeddings.shape[0] for p in parts]
        self.offsets = np.cumsum([0, *sizes])
        self.row_of = np.full(int(self.offsets[-1]), -1, np.int64)
        for p, start in zip(parts, self.offsets, strict=False):
            self.row_of[start + np.arange(p.arrays.embeddings.shape[0])[p.take]] = np.arange(n)[p.dest]
        for p in parts:
            if p.batch_id not in limits:
                limits[p.batch_id] = max_abs(p.arrays.embeddings)
        self.limit = np.max([limits[p.batch_id] for p in parts], axis=0) if parts else np.zeros(dim, np.float32)
        self.rows_scanned = len(self.row_of)

    def error_bound(self, vectors: np.ndarray) -> np.ndarray:
        """(m,): how far a FAISS score of each vector can be from the exact one, for any stored row.

        FAISS rounds the vector to float32 and sums D float32 products; the exact score is the float64 sum
        rounded to float32. The standard bound of such a sum is (D + 1)·u·Σ_i |v_i x_i| (u = 2^-24); with the
        two roundings of the vector and of the result, (D + 4)·u·Σ_i |v_i|·max|x_i| bounds both, with 1%
        to spare.
        """
        dim = vectors.shape[1]
        return (dim + 4) * _U * 1.01 * (np.abs(vectors.astype(np.float64)) @ self.limit.astype(np.float64))

    def top(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each query, its k best rows by approximate inner product: (rows (m, k), scores (m, k), tau (m,)),
        in no particular order.

        Rows are snapshot rows, -1 for a row of a file that the snapshot does not see (drop those). Every
        row not listed scores at most tau (the k-th score over all the files; -inf when every row is listed):
        a file's rows that FAISS left out score at most its own k-th, which at least k listed rows reach.
        """
        q = np.ascontiguousarray(queries, dtype=np.float32)
        # One scan per query and thread: Python threads rather than FAISS's OpenMP ones, whose waiting
        # threads spin, which on a busy 2-core machine made a two-query search 2-10x slower.
        half = (len(q) + 1) // 2
        later = _pool().submit(self._scan, q[half:], k) if len(q) > 1 else None
        first = self._scan(q[:half], k)
        scores, rows = first if later is None else (np.concatenate(p) for p in zip(first, later.result(), strict=True))
        if scores.shape[1] > k:  # the k best of the files' lists (in no particular order)
            best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            scores, rows = np.take_along_axis(scores, best, 1), np.take_along_axis(rows, best, 1)
        tau = np.full(len(q), -np.inf) if self.rows_scanned <= k else scores.min(axis=1).astype(np.float64)
        rows = np.where(rows >= 0, self.row_of[np.maximum(rows, 0)], -1)
        return rows, scores, tau

    def _scan(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows of the files end to end) of each file's k best rows for queries `q`, on this thread."""
        import faiss  # deferred: as above

        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # per thread (an OpenMP setting of the calling thread)
        try:
            found_s, found_r = [], []
            for view, start in zip(self.views, self.offsets, strict=False):
                scores, idx = view.index.search(q, min(k, view.index.ntotal))
                found_s.append(scores)
                found_r.append(np.where(idx >= 0, idx + start, -1))
            return np.concatenate(found_s, axis=1), np.concatenate(found_r, axis=1)
        finally:
            faiss.omp_set_num_threads(threads)
