"""Scale (issue 8): vector-index types against exact search, deletions, settings, rebuild, compaction (also under
kill -9), memory-mapped batch files next to legacy .npz ones, and `info`. Small synthetic indexes written
through the real store; clustered embeddings so that nearest neighbours mean something."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from mmindex import Engine
from mmindex.concepts import Vocabulary
from mmindex.config import IngestConfig
from mmindex.errors import VectorIndexError
from mmindex.index import arrays, vectors
from mmindex.index.store import Store
from mmindex.records import MediaRecord, SegmentRecord
from tests.conftest import run_cli

D = 64
KINDS = ["flat", "hnsw", "ivfpq", "IVF32,SQ8", "PCA16,HNSW64"]  # the last: what "hnsw" is over 1280-d


def synthetic(n: int, seed: int = 0, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(scores (n, 1000), unit embeddings (n, D)): 40 clusters of 4 sub-clusters; the cluster's class stands out."""
    model = np.random.default_rng(0)
    centres, subs = model.standard_normal((40, D)), 0.6 * model.standard_normal((40, 4, D))
    rng = np.random.default_rng([seed, start])
    cls, sub = rng.integers(0, 40, n), rng.integers(0, 4, n)
    emb = centres[cls] + subs[cls, sub] + 0.5 * rng.standard_normal((n, D))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    logits = rng.standard_normal((n, 1000))
    logits[np.arange(n), cls * 25] += 5  # classes 0, 25, 50, ... (0 = tench, 275 = African hunting dog, ...)
    scores = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (scores / scores.sum(axis=1, keepdims=True)).astype(np.float32), emb.astype(np.float32)


def write(store: Store, n: int, batch: int, start: int = 0) -> None:
    scores, emb = synthetic(n, start=start)
    for s in range(0, n, batch):
        store.write_batch([MediaRecord(f"/synthetic/{start + i:06d}.jpg", "image", f"{start + i:064x}", 1, 0,
                                       [SegmentRecord(scores[i], emb[i])]) for i in range(s, min(n, s + batch))])


def build(root, setting: str = "flat", n: int = 3000, batch: int = 100):
    vocab = Vocabulary.imagenet()
    with Store.create(root, "efficientnet_lite0", D, [(c.id, c.name, c.source) for c in vocab.classes],
                      vector_index=setting) as store:
        write(store, n, batch)
        vectors.update(store, store.snapshot())  # what `Engine.add` does after ingesting
    return root


def exact_top(snap, q: np.ndarray, k: int) -> np.ndarray:
    return snap.ids[np.argsort(-(np.asarray(snap.embeddings) @ q), kind="stable")[:k]]


def results(engine: Engine) -> list:
    """A fixed set of queries (concepts, examples, fused), as (segment id, score) lists."""
    queries = [dict(concepts=["tench"]), dict(concepts=["dog"]), dict(concepts=["tench OR goldfish AND NOT dog"]),
               dict(like=[7]), dict(like=[700]), dict(concepts=["tench"], like=[7])]
    return [[(h.segment_id, h.score) for h in engine.search(k=20, remember=False, **q)] for q in queries]


@pytest.mark.parametrize("kind", KINDS)
def test_vector_index_types_against_exact_search(tmp_path, kind):
    root = build(tmp_path / "idx", kind)
    engine = Engine(root, vector_index=kind)
    snap, index = engine.searcher._arrays()
    d = index.describe()
    assert d["in_index"] == 3000 and d["pending"] == 0 and d["tombstones"] == 0 and d["mapped"]
    assert d["factory"] == vectors.factory_for(kind, 3000, D) and d["factory"] != "Flat" or kind == "flat"
    _, queries = synthetic(40, seed=1)  # held out
    recall = []
    for q in queries:
        got, sims = index.search(q, 10)
        recall.append(len(set(got) & set(exact_top(snap, q, 10))) / 10)
        rows = np.searchsorted(snap.ids, got)
        np.testing.assert_allclose(sims, np.asarray(snap.embeddings)[rows] @ q, rtol=1e-5)  # re-ranked: exact
        assert np.all(np.diff(sims) <= 0)
    assert np.mean(recall) == 1.0 if kind == "flat" else np.mean(recall) >= 0.9, np.mean(recall)
    assert engine.search(like=[1234], k=1, remember=False)[0].segment_id == 1234


@pytest.mark.parametrize("kind", KINDS)
def test_removed_segments_never_come_back(tmp_path, kind):
    root = build(tmp_path / "idx", kind)
    engine = Engine(root)
    snap, _ = engine.searcher._arrays()
    gone = [f"/synthetic/{i:06d}.jpg" for i in range(0, 3000, 300)]  # 10 segments: kept as tombstones
    gone_ids = [snap.ids[i] for i in range(0, 3000, 300)]
    probes = np.asarray(snap.embeddings)[list(range(0, 3000, 300))]
    assert engine.remove(gone) == 10
    with Store.open(root, write=True) as store:  # and new ones arrive: the in-memory delta
        write(store, 20, 20, start=5000)
        vectors.update(store, store.snapshot())

    def check(expect_tombstones: bool):
        snap, index = engine.searcher._arrays()
        d = index.describe()
        assert len(snap.ids) == 3010 and (d["tombstones"] == 10) == expect_tombstones
        for q in probes:
            got, _ = index.search(q, 50)
            assert not set(got) & set(gone_ids)
            assert set(exact_top(snap, q, 5)) <= set(got)
        new = snap.ids[-1]
        assert index.search(np.asarray(snap.embeddings)[-1], 1)[0][0] == new

    check(expect_tombstones=True)
    engine.compact()  # drops the dead rows, and the tombstones (an HNSW graph is rebuilt)
    check(expect_tombstones=False)
    assert engine.searcher._arrays()[1].describe()["in_index"] == 3010


def test_settings_mismatch_bad_factory_and_rebuild(tmp_path):
    root = build(tmp_path / "idx", "flat", n=1000)
    with pytest.raises(VectorIndexError, match="built with vector index 'flat', not 'hnsw'.*rebuild"):
        Engine(root, vector_index="hnsw").search(["tench"], remember=False)
    proc = run_cli("search", "--index", str(root), "--concept", "tench", "--vector-index", "ivfpq", check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("error: the index was built with vector index 'flat'")
    assert "Traceback" not in proc.stderr
    proc = run_cli("add", str(tmp_path), "--index", str(root), "--vector-index", "HNSW16", "-q", check=False)
    assert proc.returncode == 1 and "built with vector index 'flat', not 'HNSW16'" in proc.stderr
    with pytest.raises(VectorIndexError, match="bad vector index 'NoSuchIndex'"):
        Engine(root).rebuild("NoSuchIndex")
    proc = run_cli("add", str(tmp_path), "--index", str(tmp_path / "new"), "--vector-index", "IVF,,", check=False)
    assert proc.returncode == 1 and "error: bad vector index" in proc.stderr and not (tmp_path / "new").exists()

    before = results(Engine(root))
    report = Engine(root).rebuild("hnsw")
    assert report["factory"] == "HNSW32" and report["vectors"] == 1000
    assert vectors.factory_for("hnsw", 1000, 1280) == "PCA128,HNSW64"  # wide embeddings: a graph of PCA codes
    assert results(Engine(root, vector_index="hnsw")) == before  # HNSW finds the exact top-20 here
    with pytest.raises(VectorIndexError, match="built with vector index 'hnsw'"):
        Engine(root, vector_index="flat").search(like=[3], remember=False)
    # too few vectors to train IVF-PQ: recorded, no index file, and searches stay exact meanwhile
    out = run_cli("rebuild", "--index", str(root), "--vector-index", "ivfpq", "--json").stdout
    assert '"factory": null' in out and not any((root / "vectors").iterdir())
    assert results(Engine(root, vector_index="ivfpq")) == before


def test_hierarchy_sums_are_stored_and_equal_the_sum_of_their_classes(tmp_path):
    root = build(tmp_path / "idx", n=400, batch=100)
    dog = tuple(sorted(Vocabulary.imagenet().resolve("dog").classes))
    with Store.open(root, write=True) as store:
        hierarchy = store.hierarchy()
        snap = store.snapshot()
        assert dog in hierarchy and min(map(len, hierarchy)) >= 2
        assert all(p.arrays.nodes.shape == (len(hierarchy), p.size) for p in snap.parts)
        leaves = np.asarray(snap.scores)
        stored = snap.scores.combine([(dog, 1.0)])
        np.testing.assert_allclose(stored, np.minimum(leaves[list(dog)].sum(axis=0), 1), rtol=2e-3)
        mixed = snap.scores.combine([(dog, 0.25), ((275,), 0.75)])  # a text query's weighted concepts
        np.testing.assert_allclose(mixed, 0.25 * stored + 0.75 * leaves[275], rtol=1e-6)
        # files written before the sums existed: summed at query time, to the very same numbers
        for batch_id, file in store.db.execute("SELECT id, file FROM batches").fetchall()[::2]:
            old = arrays.read_batch_file(root / "batches" / file)
            arrays.write_batch_file(root / "batches" / f"{batch_id:08d}old.arrays", old.scores.T, old.embeddings)
            with store.transaction() as db:
                db.execute("UPDATE batches SET file = ? WHERE id = ?", (f"{batch_id:08d}old.arrays", batch_id))
        snap = store.snapshot()
        assert [p.arrays.nodes is None for p in snap.parts] == [True, False, True, False]
        np.testing.assert_array_equal(snap.scores.combine([(dog, 1.0)]), stored)


def test_add_compacts_by_itself_once_files_pile_up(tmp_path, sample_photos):
    def hits(engine):
        return [[(h.path, round(h.score, 6)) for h in engine.search(q, k=5, remember=False)]
                for q in (["tabby"], ["dog"], ["cat OR coffee mug"])]

    config = {"batch_size": 2, "workers": 1}
    piled = Engine(tmp_path / "piled", IngestConfig(**config, auto_compact=0))
    assert piled.add([sample_photos]).compacted == 0
    n_files = piled.info()["batch_files"]["files"]
    assert n_files >= 4
    merged = Engine(tmp_path / "merged", IngestConfig(**config, auto_compact=n_files))
    assert merged.add([sample_photos]).compacted == n_files - 1
    assert merged.info()["batch_files"]["files"] == 1
    assert hits(merged) == hits(piled)
    more = Engine(tmp_path / "more", IngestConfig(**config, auto_compact=n_files + 1))  # one file short
    assert more.add([sample_photos]).compacted == 0 and more.info()["batch_files"]["files"] == n_files


def test_compact_keeps_results_drops_dead_rows_and_reads_legacy_files(tmp_path):
    root = build(tmp_path / "idx", "flat", n=2000, batch=50)
    with Store.open(root, write=True) as store:  # two batches in the pre-v3 format: scores (n, C) in an .npz
        for batch_id, file in store.db.execute("SELECT id, file FROM batches LIMIT 2").fetchall():
            old = arrays.read_batch_file(root / "batches" / file)
            legacy = f"{batch_id:08d}.npz"
            np.savez(root / "batches" / legacy, scores=old.scores.T, embeddings=old.embeddings)
            with store.transaction() as db:
                db.execute("UPDATE batches SET file = ? WHERE id = ?", (legacy, batch_id))
    engine = Engine(root)
    engine.remove([f"/synthetic/{i:06d}.jpg" for i in range(0, 2000, 7)])
    assert engine.info()["batch_files"] == {"files": 40, "legacy_files": 2, "rows": 2000, "dead_rows": 286}
    snap, _ = engine.searcher._arrays()
    dense = (snap.ids.copy(), np.asarray(snap.scores), np.asarray(snap.embeddings))
    np.testing.assert_array_equal(np.asarray(snap.scores)[275], snap.scores[275])  # one concept, lazily
    np.testing.assert_allclose(snap.scores.combine([([1, 25, 999], 1.0)]), dense[1][[1, 25, 999]].sum(axis=0),
                               rtol=1e-6)
    before = results(engine)

    report = engine.compact(target_rows=600)
    assert (report["files_before"], report["files_after"], report["rows_dropped"]) == (40, 3, 286)
    info = engine.info()
    assert info["batch_files"] == {"files": 3, "legacy_files": 0, "rows": 1714, "dead_rows": 0}
    with Store.open(root) as store:
        referenced = {r[0] for r in store.db.execute("SELECT file FROM batches")}
    assert {p.name for p in (root / "batches").iterdir()} == referenced
    snap, _ = engine.searcher._arrays()
    for a, b in zip(dense, (snap.ids, np.asarray(snap.scores), np.asarray(snap.embeddings)), strict=True):
        np.testing.assert_array_equal(a, b)  # the very same float16 values, in the same order
    assert results(engine) == before
    assert engine.compact(target_rows=600)["groups"] == 0  # nothing left to do


def committed_batch_files(root) -> int:
    """Batch files the committed state references (300 until compaction commits its first merge)."""
    try:
        with sqlite3.connect(f"file:{root / 'index.sqlite'}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute("SELECT COUNT(*) FROM batches").fetchone()[0])
    except sqlite3.Error:
        return 300


def test_kill_9_during_compact_leaves_a_consistent_index(tmp_path):
    root = build(tmp_path / "idx", "hnsw", n=3000, batch=10)  # 300 files, merged 3 by 3: 100 transactions
    engine = Engine(root)
    snap, _ = engine.searcher._arrays()
    dense = (snap.ids.copy(), np.asarray(snap.scores), np.asarray(snap.embeddings))
    before = results(engine)
    cmd = [sys.executable, "-m", "mmindex.cli", "compact", "--index", str(root), "--target-rows", "30", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    # Kill once three merges (3 files -> 1) are committed: mid-run, whatever the machine's speed.
    while time.time() < deadline and proc.poll() is None and committed_batch_files(root) > 294:
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Store.open(root) as store:
        files = store.batch_files()["files"]
    assert 100 < files < 300, f"kill came too late or too early ({files} batch files)"

    reader = Engine(root)  # readable and consistent, before any writer cleaned up
    snap, _ = reader.searcher._arrays()
    for a, b in zip(dense, (snap.ids, np.asarray(snap.scores), np.asarray(snap.embeddings)), strict=True):
        np.testing.assert_array_equal(a, b)
    assert results(reader) == before
    out = run_cli("compact", "--index", str(root), "--target-rows", "30", "--json").stdout
    assert '"files_after": 100' in out
    with Store.open(root) as store:
        referenced = {r[0] for r in store.db.execute("SELECT file FROM batches")}
    assert {p.name for p in (root / "batches").iterdir()} == referenced  # orphans of the killed run deleted
    assert results(Engine(root)) == before


def test_info_shows_batch_files_vector_index_memory_and_disk(tmp_path):
    root = build(tmp_path / "idx", "hnsw", n=2500)
    info = Engine(root).info()
    assert info["batch_files"]["files"] == 25 and info["vector_index"]["setting"] == "hnsw"
    v = info["vector_index"]
    assert (v["factory"], v["vectors"], v["in_index"], v["pending"], v["mapped"]) == ("HNSW32", 2500, 2500, 0, True)
    assert v["file_bytes"] > 2500 * D * 4  # float32 vectors plus the graph
    assert info["disk"]["vectors"] == v["file_bytes"] and info["disk"]["batches"] > 2500 * (1000 + D) * 2
    assert info["disk"]["total"] == info["disk_bytes"] >= sum(info["disk"][k] for k in ("batches", "vectors"))
    mem = info["memory"]
    assert mem["rss_bytes"] > 0 and mem["mapped_bytes"] >= info["disk"]["batches"] - 25 * 4096
    out = run_cli("info", "--index", str(root)).stdout
    assert "25 batch files (0 in the old format), 2500 rows of which 0 dead" in out
    assert "vector index: hnsw (HNSW32): 2500 vectors, 2500 in the index file" in out and "memory-mapped" in out
