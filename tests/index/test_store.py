import sqlite3

import numpy as np
import pytest

from mmindex.errors import IndexLocked, StoreError
from mmindex.index.store import Store
from mmindex.records import MediaRecord, SegmentRecord

C, D = 5, 8


def record(path: str, n_segments: int = 1, seed: int = 0) -> MediaRecord:
    rng = np.random.default_rng(seed)
    segs = []
    for i in range(n_segments):
        e = rng.normal(size=D)
        segs.append(SegmentRecord(rng.dirichlet(np.ones(C)), e / np.linalg.norm(e),
                                  start=float(i) if n_segments > 1 else None))
    return MediaRecord(path, "image", f"hash-{path}-{seed}", 10, 1, segs)


@pytest.fixture
def store(tmp_path):
    s = Store.create(tmp_path / "idx", "m", D, [(f"c{i}", f"concept {i}", "imagenet") for i in range(C)])
    yield s
    s.close()


def test_write_read_roundtrip_and_replace(store, tmp_path):
    a, b = record("/a.jpg", seed=1), record("/v.mp4", n_segments=3, seed=2)
    store.write_batch([a, b], errors=[("/bad.jpg", "corrupt")])
    snap = store.snapshot()
    assert len(snap.ids) == 4 and snap.scores.shape == (C, 4) and snap.embeddings.shape == (4, D)
    row = snap.row_of(store.segment_ids_of("/a.jpg")[0])
    np.testing.assert_allclose(snap.scores[:, row], a.segments[0].scores, atol=1e-3)
    np.testing.assert_allclose(snap.embeddings[row], a.segments[0].embedding, atol=1e-3)
    assert store.errors() == [{"path": "/bad.jpg", "error": "corrupt"}]
    # re-writing a path replaces it: no duplicates, new id, old segments gone
    old = store.segment_ids_of("/a.jpg")
    store.write_batch([record("/a.jpg", seed=3), record("/bad.jpg", seed=4)])
    assert store.counts()["media"] == 3 and store.counts()["segments"] == 5
    assert store.segment_ids_of("/a.jpg") != old
    assert store.errors() == []  # the file that failed before now succeeded
    # removing by folder prefix, and batches whose rows all died are deleted with their files
    assert store.remove(["/v.mp4", "/nope"]) == 1
    assert store.counts()["segments"] == 2
    files = sorted(p.name for p in (store.root / "batches").iterdir())
    assert len(files) == store.counts()["batches"] == 1


def test_single_writer_lock_and_readers(store):
    with pytest.raises(IndexLocked, match="locked"):
        Store.open(store.root, write=True)
    reader = Store.open(store.root)  # readers need no lock
    assert reader.counts()["media"] == 0
    reader.close()


def test_failed_batch_leaves_nothing_and_orphans_are_cleaned(store, monkeypatch):
    gen = store.generation
    bad = record("/x.jpg")
    bad.segments[0].keyframes = "not a list of pairs"  # makes the keyframe insert fail mid-transaction
    with pytest.raises((sqlite3.Error, ValueError, TypeError)):
        store.write_batch([record("/ok.jpg"), bad])
    assert store.counts() == {**store.counts(), "media": 0, "segments": 0, "batches": 0}
    assert store.generation == gen
    # its array file was written before the failure: an orphan, deleted when a writer next opens
    assert any((store.root / "batches").iterdir())
    root = store.root
    store.close()
    Store.open(root, write=True).close()
    assert not any((root / "batches").iterdir())


def test_reader_sees_only_committed_batches(store):
    reader = Store.open(store.root)
    store.db.execute("BEGIN IMMEDIATE")
    store.db.execute("INSERT INTO batches (file, rows, created) VALUES ('x', 1, 0)")
    assert reader.snapshot().ids.size == 0 and reader.counts()["batches"] == 0
    store.db.execute("ROLLBACK")
    store.write_batch([record("/a.jpg")])
    assert reader.snapshot().ids.size == 1
    reader.close()


def test_bad_index_paths(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StoreError, match="not a folder"):
        Store.create(f, "m", D, [])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "other.txt").write_text("x")
    with pytest.raises(StoreError, match="not an mmindex index"):
        Store.create(tmp_path / "full", "m", D, [])
    with pytest.raises(StoreError, match="no index"):
        Store.open(tmp_path / "missing")
    with pytest.raises(StoreError, match="cannot create index folder"):
        Store.create(f / "idx", "m", D, [])  # a parent that is a file


def test_newer_schema_is_refused(store):
    store.db.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="schema version 99"):
        Store.open(store.root)
