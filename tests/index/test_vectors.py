import numpy as np
import pytest

from mmindex.index.vectors import VectorIndex


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3000, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = np.sort(rng.choice(10**6, 3000, replace=False)).astype(np.int64)
    return x, ids


def test_flat_is_exact_and_returns_segment_ids(data):
    x, ids = data
    index = VectorIndex(x, ids)
    got, sims = index.search(x[17], 5)
    expected = np.argsort(-(x @ x[17]))[:5]
    assert got.tolist() == ids[expected].tolist()
    np.testing.assert_allclose(sims, (x @ x[17])[expected], rtol=1e-5)
    assert got[0] == ids[17] and sims[0] == pytest.approx(1.0, abs=1e-5)


def test_approximate_index_is_reranked_exactly(data):
    x, ids = data
    approx, flat = VectorIndex(x, ids, "SQ8"), VectorIndex(x, ids)
    recall = []
    for q in x[:50]:
        a_ids, a_sims = approx.search(q, 10)
        f_ids, _ = flat.search(q, 10)
        recall.append(len(set(a_ids) & set(f_ids)) / 10)
        np.testing.assert_allclose(a_sims, x[np.searchsorted(ids, a_ids)] @ q, rtol=1e-5)  # exact scores
    assert np.mean(recall) >= 0.99


def test_empty_and_small(data):
    x, ids = data
    assert len(VectorIndex(x[:0], ids[:0])) == 0
    assert VectorIndex(x[:0], ids[:0]).search(x[0], 10)[0].size == 0
    assert VectorIndex(x[:3], ids[:3]).search(x[0], 10)[0].size == 3
