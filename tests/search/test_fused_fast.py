"""Issue 20, item 5: fused queries (concepts plus examples) take a fast path whose top k, scores and order are
those of scoring every segment exactly (search/fused.py, index/scan.py).

Each query runs twice on the same index: once with the fast path on from the first segment, once with it off
(every example scored exactly, as before): the hits must be identical, and the fast path must have been taken.
Embeddings are stored through the real store: clustered 1280-d vectors in several batch files with removed
segments among them, and the CNN embeddings of the sample photos.
"""

from __future__ import annotations

import numpy as np
import pytest

from mmindex import Engine
from mmindex.concepts import Vocabulary
from mmindex.index.scan import EmbeddingScan
from mmindex.index.store import Store
from mmindex.records import MediaRecord, SegmentRecord
from mmindex.search import fused
from mmindex.search.fused import FusedColumns

D, N, BATCH = 1280, 6000, 500


def synthetic(n: int, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(scores (n, 1000), unit embeddings (n, D)): 60 clusters of 4 sub-clusters, noise in a 48-d subspace."""
    model = np.random.default_rng(0)
    centres = model.standard_normal((60, D)) / np.sqrt(D)
    subs = 0.6 * model.standard_normal((60, 4, D)) / np.sqrt(D)
    basis = model.standard_normal((48, D)) / np.sqrt(D)
    rng = np.random.default_rng([1, start])
    cls, sub = rng.integers(0, 60, n), rng.integers(0, 4, n)
    emb = centres[cls] + subs[cls, sub] + 0.5 * rng.standard_normal((n, 48)) @ basis
    emb += 0.15 * rng.standard_normal((n, D)) / np.sqrt(D)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    logits = 2.0 * rng.standard_normal((n, 1000))
    logits[np.arange(n), cls * 16] += 5.0
    scores = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (scores / scores.sum(axis=1, keepdims=True)).astype(np.float32), emb.astype(np.float32)


def write(store: Store, scores: np.ndarray, emb: np.ndarray, start: int = 0) -> None:
    for s in range(0, len(emb), BATCH):
        store.write_batch([MediaRecord(f"/synthetic/{start + i:06d}.jpg", "image", f"{start + i:064x}", 1, 0,
                                       [SegmentRecord(scores[i], emb[i])]) for i in range(s, min(len(emb), s + BATCH))])


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = tmp_path_factory.mktemp("fused") / "idx"
    vocab = Vocabulary.imagenet()
    with Store.create(root, "efficientnet_lite0", D, [(c.id, c.name, c.source) for c in vocab.classes]) as store:
        write(store, *synthetic(N))
    Engine(root).remove([f"/synthetic/{i:06d}.jpg" for i in range(0, N, 37)])  # dead rows in every file
    return root


def both(root, **query) -> tuple[list, list, int]:
    """The query's hits (segment id, score) by the fast path and by exact scoring, and whether it went fast."""
    engine = Engine(root)
    engine.searcher._fused = FusedColumns(fast_from=0)
    fast = [(h.segment_id, h.score, h.why, h.parts) for h in engine.search(remember=False, **query)]
    went_fast = engine.searcher._fused.fast
    engine.searcher._fused = FusedColumns(fast_from=10**12)
    exact = [(h.segment_id, h.score, h.why, h.parts) for h in engine.search(remember=False, **query)]
    assert engine.searcher._fused.fast == 0
    return fast, exact, went_fast


def queries(root, n: int, seed: int) -> list[dict]:
    with Store.open(root) as store:
        ids = store.snapshot().ids
    rng = np.random.default_rng(seed)
    names = [c.name for c in Vocabulary.imagenet().classes]
    out = []
    for i in range(n):
        like = [str(x) for x in rng.choice(ids, 1 + (i % 3 == 2))]  # every third: two examples
        if i % 4 == 1:
            like[0] += "^0.5"
        concepts = [names[int(rng.integers(0, 60)) * 16]] + (["dog"] if i % 5 == 4 else [])
        out.append(dict(concepts=concepts, like=like, k=(10, 50)[i % 2], explain=i % 3 == 0))
    return out


def test_fast_fused_queries_give_the_exact_top_k(index):
    went = 0
    for q in queries(index, 24, seed=3):
        fast, exact, took = both(index, **q)
        assert fast == exact, q
        assert len(fast) == q["k"]
        went += took
    assert went == 24  # every one of them took the fast path


def test_only_examples_and_a_text_like_query_too(index):
    with Store.open(index) as store:
        ids = store.snapshot().ids
    fast, exact, took = both(index, like=[int(ids[5]), int(ids[900])], k=10)
    assert fast == exact and took == 1
    fast, exact, took = both(index, concepts=["tench"], like=[int(ids[5])], k=10, fusion_method="rrf")
    assert fast == exact and took == 0  # another fusion: every segment scored exactly


def test_the_scan_error_bound_holds_for_every_row(index):
    with Store.open(index) as store:
        snap = store.snapshot()
    scan = EmbeddingScan(snap.parts, len(snap.ids), D, {})
    rng = np.random.default_rng(0)
    vectors = np.asarray(snap.embeddings[rng.integers(0, len(snap.ids), 4)])
    vectors[3] = -vectors[3] / 3  # not unit, negated
    rows, approx, tau = scan.top(vectors, scan.rows_scanned)
    assert np.all(tau == -np.inf)
    bound = scan.error_bound(vectors)
    assert np.all(bound < 1e-3)
    for j, v in enumerate(vectors):
        live = rows[j] >= 0
        exact = np.asarray(snap.embeddings @ v)[rows[j][live]]
        assert sorted(rows[j][live]) == list(range(len(snap.ids)))
        assert np.abs(approx[j][live] - exact).max() <= bound[j]


def test_near_ties_beyond_the_lists_fall_back_to_exact_scoring(tmp_path):
    scores, emb = synthetic(fused.LIST + 300)
    emb[: fused.LIST + 100] = emb[0]  # more copies of one embedding than the list holds
    root = tmp_path / "dups"
    vocab = Vocabulary.imagenet()
    with Store.create(root, "efficientnet_lite0", D, [(c.id, c.name, c.source) for c in vocab.classes]) as store:
        write(store, scores, emb)
    fast, exact, took = both(root, concepts=["tench"], like=[1], k=10)
    assert fast == exact and took == 0


def test_the_photo_index_real_cnn_embeddings(photo_index):
    for q in (dict(concepts=["espresso"], like=[1]), dict(concepts=["cat", "rocket"], like=[2, 3], k=7),
              dict(concepts=["cup"], like=["4^2"], explain=True)):
        fast, exact, took = both(photo_index, **q)
        assert fast == exact and took == 1
