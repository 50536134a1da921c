"""Issue 20, item 5: the `auto` vector index (the default of a new index) is exact below a size and the `hnsw`
graph from there on, rebuilt by the writer that crosses it; `info` says which. Small synthetic indexes written
through the real store, with the threshold lowered to their size."""

from __future__ import annotations

import numpy as np
import pytest

from mmindex import Engine
from mmindex.concepts import Vocabulary
from mmindex.errors import VectorIndexError
from mmindex.index import vector_settings, vectors
from mmindex.index.store import Store
from tests.conftest import run_cli
from tests.index.test_scale import D, exact_top, write


def test_auto_is_exact_then_a_graph_then_exact_again(tmp_path, monkeypatch):
    monkeypatch.setattr(vector_settings, "AUTO_HNSW_FROM", 1500)
    root = tmp_path / "idx"
    vocab = Vocabulary.imagenet()
    with Store.create(root, "efficientnet_lite0", D, [(c.id, c.name, c.source) for c in vocab.classes],
                      vector_index="auto") as store:
        write(store, 1000, 100)
        assert vectors.update(store, store.snapshot())["factory"] == "Flat"
    info = Engine(root).info()["vector_index"]
    assert (info["setting"], info["factory"]) == ("auto", "Flat")
    assert info["auto"] == "exact below 1,500 vectors, hnsw from there on; exact (Flat) for 1,000 vectors"

    with Store.open(root, write=True) as store:
        write(store, 600, 100, start=1000)  # 1600 vectors: past the threshold, though under MERGE_FRACTION's 5%...
        report = vectors.update(store, store.snapshot())
    assert report == {"action": "rebuilt", "factory": "HNSW32", "vectors": 1600}  # ...the writer rebuilds
    engine = Engine(root)
    snap, index = engine.searcher._arrays()
    assert index.describe()["factory"] == "HNSW32" and index.describe()["pending"] == 0
    rng = np.random.default_rng(0)
    recall = [len(set(index.search(q, 10)[0]) & set(exact_top(snap, q, 10))) / 10
              for q in np.asarray(snap.embeddings)[rng.integers(0, 1600, 50)]]
    assert np.mean(recall) >= 0.95
    out = run_cli("info", "--index", str(root)).stdout
    assert "vector index: auto (HNSW32): 1600 vectors" in out
    assert "auto: exact below 50,000 vectors" in out  # a new process: the real threshold

    # a few removals keep the graph (no rebuild back and forth near the threshold); below half, exact again
    engine.remove([f"/synthetic/{i:06d}.jpg" for i in range(200)])
    assert Engine(root).info()["vector_index"]["factory"] == "HNSW32"
    engine.remove([f"/synthetic/{i:06d}.jpg" for i in range(200, 900)])
    assert Engine(root).info()["vector_index"]["factory"] == "Flat"


def test_auto_is_the_default_of_a_new_index_and_an_ordinary_setting(photo_index, tmp_path):
    info = Engine(photo_index).info()["vector_index"]
    assert (info["setting"], info["factory"]) == ("auto", "Flat")  # `mmindex add` made it
    assert vector_settings.check_setting(" AUTO ", 1280) == "auto"
    assert vector_settings.resolve("auto", 49_999) == "flat" and vector_settings.resolve("auto", 50_000) == "hnsw"
    assert vectors.factory_for("auto", 10**6, 1280) == "PCA128,HNSW64"
    with pytest.raises(VectorIndexError, match="built with vector index 'auto', not 'flat'"):
        Engine(photo_index, vector_index="flat").search(like=[1], remember=False)
    Engine(photo_index, vector_index="auto").search(like=[1], remember=False)
    legacy = tmp_path / "old"
    vocab = Vocabulary.imagenet()
    with Store.create(legacy, "efficientnet_lite0", D, [(c.id, c.name, c.source) for c in vocab.classes]) as store:
        write(store, 300, 100)
    assert Engine(legacy).info()["vector_index"]["setting"] == "flat"  # the store's own default is unchanged
