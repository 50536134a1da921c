"""Keyframe embeddings (schema v6): an index of schema v5 is migrated with its rows, they are stored only when the
index keeps them, and a temporal model scores the same sequences at `apply` (read from the store) as at `add` (from
the new records), a segment indexed without them being the sequence of its one pooled embedding."""

from __future__ import annotations

import sqlite3

import numpy as np
import torch

from mmindex.extract.inputs import ModelInput
from mmindex.index import detectors
from mmindex.index.detector_inputs import Scorer, score_records
from mmindex.index.schema import MIGRATIONS, SCHEMA_VERSION
from mmindex.index.store import Store
from mmindex.learn.applicable import Applicable, _sequence_scorer
from mmindex.learn.sequence import SequenceClassifier
from mmindex.records import MediaRecord, SegmentRecord

C, D = 4, 8


def records(prefix: str, n: int, seed: int, keyframes: int = 3) -> list[MediaRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        e = rng.standard_normal((keyframes, D)).astype(np.float32)
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        pooled = e.mean(0) / np.linalg.norm(e.mean(0))
        seg = SegmentRecord(rng.dirichlet(np.ones(C)), pooled, start=0.0, end=3.0,
                            keyframes=[(0.5 + k, 12 + 24 * k) for k in range(keyframes)], keyframe_embeddings=e)
        out.append(MediaRecord(f"{prefix}/{i}.mp4", "video", f"{seed:032x}{i:032x}", 10, 1, [seg]))
    return out


def test_an_index_of_schema_v5_is_migrated_with_its_keyframes(tmp_path):
    root = tmp_path / "v5"
    (root / "batches").mkdir(parents=True)
    with sqlite3.connect(root / "index.sqlite") as db:
        for v in range(1, 6):
            db.executescript(MIGRATIONS[v])
        db.execute("INSERT INTO meta VALUES ('model', 'efficientnet_lite0'), ('embed_dim', '8')")
        db.execute("INSERT INTO media VALUES (1, '/a.mp4', 'video', 'x', 1, 1, 2, 2, 3.0, 0)")
        db.execute("INSERT INTO batches VALUES (1, '00000001.arrays', 1, 0, NULL, NULL)")
        db.execute("INSERT INTO segments VALUES (1, 1, 1, 0, 0.0, 3.0)")
        db.execute("INSERT INTO keyframes VALUES (1, 1.5, 36)")
        db.execute("PRAGMA user_version = 5")
    assert SCHEMA_VERSION >= 6  # v7 (pending applies) came after; the migration runs every step
    with Store.open(root, write=True) as store:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.batch_keyframes(1, embeddings=True) == {1: [(1.5, None)]}
        assert store.keyframe_settings() == (False, None) and store.keyframe_embedding_bytes() == 0


def test_keyframe_embeddings_are_stored_only_when_the_index_keeps_them(tmp_path):
    store = Store.create(tmp_path / "idx", "m", D, [(f"c{i}", f"c {i}", "imagenet") for i in range(C)])
    store.write_batch(records("/before", 2, 0))
    with store.transaction():
        store.set_keyframe_settings(True, 2.0)
    kept = records("/after", 2, 1)
    store.write_batch(kept)
    assert store.keyframe_settings() == (True, 2.0)
    assert store.keyframe_embedding_bytes() == 2 * 3 * D * 2  # the two later segments, 3 keyframes, float16
    stored = store.batch_keyframes(2, embeddings=True)
    (first, *_), = [v for v in stored.values()][:1]
    assert first[0] == 0.5 and np.array_equal(np.frombuffer(first[1], np.float16),
                                              kept[0].segments[0].keyframe_embeddings[0].astype(np.float16))
    assert all(e is None for kf in store.batch_keyframes(1, embeddings=True).values() for _, e in kf)
    store.close()


def test_a_temporal_model_scores_the_same_sequences_at_apply_and_at_add(tmp_path):
    torch.manual_seed(0)
    model = SequenceClassifier("gru", D, 16, 2, "softmax").eval()
    scorer = Scorer(ModelInput("sequence", dim=D, frames=8, rate=1.0), _sequence_scorer(model), 2)
    store = Store.create(tmp_path / "idx", "m", D, [(f"c{i}", f"c {i}", "imagenet") for i in range(C)])
    old = records("/old", 3, 0)
    store.write_batch(old)  # indexed without keyframe embeddings
    with store.transaction():
        store.set_keyframe_settings(True, None)
    new = records("/new", 3, 1)
    store.write_batch(new)
    (tmp_path / "order.mmseq").write_bytes(b"the bundle file (copied into the index as it is)")
    model = Applicable("order", "sequence", ["a", "b"], scorer.input, scorer.score, str(tmp_path / "order.mmseq"))
    detectors.apply(store, model.path, model, scorer)
    snap = store.snapshot()
    cols = [c for c, cid, _, _ in store.concept_columns() if cid.startswith("order:")]
    trained = np.stack([snap.scores.column(c) for c in cols], 1)  # segments in id order: the old ones first
    at_add = score_records(scorer, new).astype(np.float32)
    assert np.allclose(trained[3:], at_add, atol=2e-3)  # from the stored float16 keyframe embeddings
    pooled = np.stack([s.embedding for m in old for s in m.segments]).astype(np.float16).astype(np.float32)
    one_frame = scorer(pooled[:, None, :], np.ones(3, np.int64)).astype(np.float32)
    assert np.allclose(trained[:3], one_frame, atol=2e-3) and not np.allclose(trained[:3], trained[3:], atol=0.05)
    store.close()
