"""Trained detectors applied to an index (`mmindex.index.detectors`), on a real store and a real probe detector bundle
(a linear head on 8-dimensional embeddings, built and saved here in a few milliseconds): the bundle copy, the concept
columns, one score file per batch, what readers see, replacement, refusals, orphans, and media added afterwards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmindex.errors import DetectorError
from mmindex.index import detectors
from mmindex.index.ingest import BatchWriter
from mmindex.index.store import Store
from mmindex.learn.checkpoint import load_bundle, save_bundle
from mmindex.learn.config import TrainConfig
from mmindex.learn.model import Detector
from mmindex.records import MediaRecord, SegmentRecord

C, D = 5, 8
LABELS = ["cat", "dog", "car"]


def records(prefix: str, n: int, seed: int, segments: int = 1) -> list[MediaRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        segs = []
        for _ in range(segments):
            e = rng.standard_normal(D)
            segs.append(SegmentRecord(rng.dirichlet(np.ones(C)), e / np.linalg.norm(e)))
        out.append(MediaRecord(f"{prefix}/{i}.jpg", "image", f"{seed:032x}{i:032x}", 10, 1, segs))
    return out


@pytest.fixture
def store(tmp_path):
    s = Store.create(tmp_path / "idx", "m", D, [(f"c{i}", f"concept {i}", "imagenet") for i in range(C)])
    for b in range(3):
        s.write_batch(records(f"/b{b}", 4, seed=b))
    yield s
    s.close()


def make_bundle(path, name: str = "pets", seed: int = 0):
    """A real probe detector bundle: normalisation from random features, a seeded linear head, softmax."""
    torch.manual_seed(seed)
    detector = Detector(TrainConfig(mode="probe", backbone="m"), LABELS, "softmax", in_dim=D)
    detector.set_normalisation(torch.randn(64, D))
    save_bundle(path, name, detector, "w", D)
    return load_bundle(path)


def embeddings(store: Store) -> tuple[np.ndarray, np.ndarray]:
    snap = store.snapshot()
    return snap.ids, np.asarray(snap.embeddings).astype(np.float32)


def test_file_names():
    assert detectors.bundle_file(3) == "0003.mmdet"
    assert detectors.score_file(3, 12) == "0003-00000012.npy"


def test_write_npy_leaves_one_whole_file(tmp_path):
    a = np.arange(12, dtype=np.float16).reshape(4, 3)
    detectors.write_npy(tmp_path / "x.npy", a)
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]  # no temporary file left beside it
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), a)
    detectors.write_npy(tmp_path / "x.npy", a * 2)  # replaced whole
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), a * 2)


def test_apply_scores_every_segment_and_adds_the_labels_as_concepts(store, tmp_path):
    bundle = make_bundle(tmp_path / "pets.mmdet")
    out = detectors.apply(store, tmp_path / "pets.mmdet", bundle, bundle.score_embeddings)
    assert out == {"name": "pets", "detector_id": 1, "version": 1, "concepts": [(f"pets:{x}", x) for x in LABELS],
                   "segments": 12, "replaced": False, "resumed": 0, "errors": []}
    # the index keeps its own copy of the bundle, and a loadable one
    [(det_id, name, copy)] = detectors.applied(store)
    assert (det_id, name, copy) == (1, "pets", store.root / detectors.FOLDER / "0001.mmdet")
    assert copy.read_bytes() == (tmp_path / "pets.mmdet").read_bytes()
    assert load_bundle(copy).labels == LABELS
    # the labels are concept columns after the ImageNet ones, marked trained
    columns = store.concept_columns()
    assert columns[-3:] == [(C + j, f"pets:{x}", x, "trained") for j, x in enumerate(LABELS)]
    # one score file per batch, holding that batch's rows scored by the detector
    [(det_id, first, n, score_files)] = store.trained_layout()
    assert (det_id, first, n) == (1, C, 3)
    batches = dict(store.db.execute("SELECT id, file FROM batches"))
    assert set(score_files) == set(batches)
    assert set(score_files.values()) == {detectors.score_file(1, b) for b in batches}
    # readers see the detector's scores as columns, equal to the detector's own output on the stored embeddings
    ids, emb = embeddings(store)
    expected = bundle.detector.scores(torch.from_numpy(emb)).numpy()
    got = np.asarray(store.snapshot().scores)[C:C + 3].T
    np.testing.assert_allclose(got, expected, atol=1e-3)
    assert np.allclose(got.sum(axis=1), 1.0, atol=1e-2)  # softmax over the labels
    assert np.argmax(expected, axis=1).tolist() == np.argmax(got, axis=1).tolist()


def test_reapplying_a_name_replaces_the_detector_and_its_files(store, tmp_path):
    first = make_bundle(tmp_path / "a.mmdet", seed=0)
    detectors.apply(store, tmp_path / "a.mmdet", first, first.score_embeddings)
    old_files = set((store.root / detectors.FOLDER).iterdir())
    second = make_bundle(tmp_path / "b.mmdet", seed=1)
    out = detectors.apply(store, tmp_path / "b.mmdet", second, second.score_embeddings, name="pets")
    assert out["replaced"] and out["detector_id"] == 2
    assert not old_files & set((store.root / detectors.FOLDER).iterdir())  # the old copy and scores deleted
    assert [c[1] for c in store.concept_columns()].count("pets:cat") == 1
    [(det_id, first_col, _, _)] = store.trained_layout()
    assert det_id == 2 and first_col == C  # the last detector's columns are free again: reused
    _, emb = embeddings(store)
    got = np.asarray(store.snapshot().scores)[first_col:first_col + 3].T
    np.testing.assert_allclose(got, second.detector.scores(torch.from_numpy(emb)).numpy(), atol=1e-3)
    # under another name, both stay
    detectors.apply(store, tmp_path / "a.mmdet", first, first.score_embeddings, name="other")
    assert [name for _, name, _ in detectors.applied(store)] == ["pets", "other"]


@pytest.mark.parametrize(("bundle_name", "name"), [("pets", "has:colon"), ("pets", "   "), ("a:b", None), ("a:b", "")])
def test_a_bad_name_is_refused_before_anything_is_written(store, tmp_path, bundle_name, name):
    bundle = make_bundle(tmp_path / "a.mmdet", name=bundle_name)  # no name given: the bundle's own
    generation = store.generation
    with pytest.raises(DetectorError, match="must be non-empty and contain no ':'"):
        detectors.apply(store, tmp_path / "a.mmdet", bundle, bundle.score_embeddings, name=name)
    assert store.generation == generation and detectors.applied(store) == []
    folder = store.root / detectors.FOLDER
    assert not folder.exists() or list(folder.iterdir()) == []


def test_a_failing_scorer_leaves_nothing_visible_and_a_rerun_goes_on_from_its_last_commit(store, tmp_path):
    bundle = make_bundle(tmp_path / "a.mmdet")

    def fails_on_the_second_batch(emb, calls=[]):  # noqa: B006 - counts calls
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        return bundle.score_embeddings(emb)

    with pytest.raises(RuntimeError):  # commits after every batch: the first one's scores are kept
        detectors.apply(store, tmp_path / "a.mmdet", bundle, fails_on_the_second_batch, commit_seconds=0)
    assert detectors.applied(store) == [] and store.trained_layout() == [] and store.detector_list() == []
    assert len(store.concept_columns()) == C  # no concept of it yet: searches and `concepts` do not see it
    assert store.pending_detector("pets")[0] == 1 and len(store.detector_score_files(1)) == 1
    scored = []
    out = detectors.apply(store, tmp_path / "a.mmdet", bundle, lambda emb: scored.append(len(emb))
                          or bundle.score_embeddings(emb))
    assert out["resumed"] == 1 and out["detector_id"] == 1 and len(scored) == len(store.batch_file_names()) - 1
    assert store.pending_detector("pets") is None and [n for _, n, _ in detectors.applied(store)] == ["pets"]
    _, emb = embeddings(store)
    got = np.asarray(store.snapshot().scores)[C:C + 3].T
    np.testing.assert_allclose(got, bundle.detector.scores(torch.from_numpy(emb)).numpy(), atol=1e-3)


def test_an_interrupted_apply_of_another_bundle_is_discarded(store, tmp_path):
    first, second = make_bundle(tmp_path / "a.mmdet", seed=0), make_bundle(tmp_path / "b.mmdet", seed=1)

    def fails(emb):
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        detectors.apply(store, tmp_path / "a.mmdet", first, fails)
    out = detectors.apply(store, tmp_path / "b.mmdet", second, second.score_embeddings, name="pets")
    assert out["resumed"] == 0 and out["detector_id"] == 2
    assert {p.name for p in (store.root / detectors.FOLDER).iterdir()} == store.detector_files()
    assert store.pending_detectors() == set()


def test_orphan_files_are_deleted_and_referenced_ones_kept(store, tmp_path):
    bundle = make_bundle(tmp_path / "a.mmdet")
    detectors.apply(store, tmp_path / "a.mmdet", bundle, bundle.score_embeddings)
    folder = store.root / detectors.FOLDER
    kept = {p.name for p in folder.iterdir()}
    assert kept == store.detector_files() and len(kept) == 4  # the bundle and 3 score files
    for stray in ["0002.mmdet", "0001-00000099.npy", ".0001-00000001.npy.tmp"]:
        (folder / stray).write_bytes(b"left by a killed writer")
    detectors.delete_orphans(store)
    assert {p.name for p in folder.iterdir()} == kept


def test_score_records_scores_every_segment_in_order():
    recs = records("/r", 3, seed=5, segments=2)
    emb = np.stack([s.embedding for r in recs for s in r.segments]).astype(np.float32)
    scorers = {4: lambda e: (e[:, :2] * 10).astype(np.float16), 7: lambda e: e[:, 2:3].astype(np.float16)}
    out = detectors.score_records(scorers, recs)
    assert set(out) == {4, 7} and out[4].shape == (6, 2) and out[7].shape == (6, 1)
    np.testing.assert_array_equal(out[4], (emb[:, :2] * 10).astype(np.float16))
    np.testing.assert_array_equal(out[7], emb[:, 2:3].astype(np.float16))
    assert detectors.score_records({}, recs) == {} and detectors.score_records(scorers, []) == {}


def test_media_added_after_apply_are_scored_in_their_own_batch(store, tmp_path):
    bundle = make_bundle(tmp_path / "a.mmdet")
    detectors.apply(store, tmp_path / "a.mmdet", bundle, bundle.score_embeddings)
    scorers = {det_id: load_bundle(path).score_embeddings for det_id, _, path in detectors.applied(store)}
    writer = BatchWriter(store, batch_size=2, scorers=scorers)
    for r in records("/later", 3, seed=9):
        writer.take(r.path, r)
    writer.flush()
    [(_, _, _, score_files)] = store.trained_layout()
    assert len(score_files) == store.counts()["batches"] == 5  # every batch, the new ones included
    _, emb = embeddings(store)
    got = np.asarray(store.snapshot().scores)[C:C + 3].T
    np.testing.assert_allclose(got, bundle.detector.scores(torch.from_numpy(emb)).numpy(), atol=1e-3)
    # removing every media of a batch deletes its score file with it
    store.remove(["/later"])
    [(_, _, _, score_files)] = store.trained_layout()
    assert set(score_files.values()) == {p.name for p in (store.root / detectors.FOLDER).iterdir()} - {"0001.mmdet"}
    assert len(score_files) == 3
