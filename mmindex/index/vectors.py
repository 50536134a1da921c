"""The vector index of one embedding space, over FAISS. Segment id = vector id.

FAISS returns inner products of unit vectors, i.e. cosine similarities: higher is better, as
everywhere in mmindex. The index is built in memory from the committed embeddings when an index
is opened; it is derived data, so a crash can never leave it out of step with the store.

`factory` is a FAISS index factory string. "Flat" (the default) is exact. Any other index (for
example "SQ8", 8-bit scalar quantisation, a quarter of the memory traffic) is used to find
candidates, which are then re-ranked with the exact float32 inner product, so that the scores
returned are always exact and only the candidate set is approximate.
"""

from __future__ import annotations

import faiss
import numpy as np

DEFAULT_FACTORY = "Flat"
RERANK_FACTOR = 10  # candidates per hit fetched from an approximate index before exact re-ranking


class VectorIndex:
    """Nearest neighbours by inner product over (N, D) unit vectors with int64 ids."""

    def __init__(self, embeddings: np.ndarray, ids: np.ndarray, factory: str = DEFAULT_FACTORY):
        dim = embeddings.shape[1]
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.exact = factory.strip().lower() == "flat"
        self.ids = np.asarray(ids, dtype=np.int64)  # sorted, as in a Snapshot
        self.index = faiss.IndexIDMap2(faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT))
        if not self.index.is_trained and len(ids):
            self.index.train(self.embeddings)
        if len(ids):
            self.index.add_with_ids(self.embeddings, self.ids)

    def __len__(self) -> int:
        return self.index.ntotal

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (segment ids, cosine similarities) for one query vector, best first."""
        k = min(k, self.index.ntotal)
        if k == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        q = np.ascontiguousarray(query, dtype=np.float32)[None, :]
        fetch = k if self.exact else min(self.index.ntotal, max(100, RERANK_FACTOR * k))
        # One query is memory-bound: a second OpenMP thread only adds synchronisation (measured 3x
        # slower on 2 cores in bench/query_latency.py), so single queries run on one thread.
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            sims, found = self.index.search(q, fetch)
        finally:
            faiss.omp_set_num_threads(threads)
        keep = found[0] >= 0
        if self.exact:
            return found[0][keep], sims[0][keep]
        found = found[0][keep]
        exact = self.embeddings[np.searchsorted(self.ids, found)] @ q[0]
        best = np.argsort(-exact, kind="stable")[:k]
        return found[best], exact[best]
