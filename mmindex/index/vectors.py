"""The vector index of one embedding space, over FAISS. Segment id = vector id.

FAISS returns inner products of unit vectors, i.e. cosine similarities: higher is better, as
everywhere in mmindex. The index is built in memory from the committed embeddings when an index
is opened; it is derived data, so a crash can never leave it out of step with the store.
"""

from __future__ import annotations

import faiss
import numpy as np

DEFAULT_FACTORY = "Flat"  # exact inner product


class VectorIndex:
    """Nearest neighbours by inner product over (N, D) unit vectors with int64 ids."""

    def __init__(self, embeddings: np.ndarray, ids: np.ndarray, factory: str = DEFAULT_FACTORY):
        dim = embeddings.shape[1]
        self.index = faiss.IndexIDMap2(faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT))
        vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
        if not self.index.is_trained:
            self.index.train(vectors)
        if len(ids):
            self.index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def __len__(self) -> int:
        return self.index.ntotal

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (ids, similarities) for one query vector, best first."""
        k = min(k, self.index.ntotal)
        if k == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        sims, ids = self.index.search(np.ascontiguousarray(query, dtype=np.float32)[None, :], k)
        keep = ids[0] >= 0
        return ids[0][keep], sims[0][keep]
