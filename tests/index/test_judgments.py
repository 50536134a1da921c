"""Judgments are data (issue 17): schema v5 keeps them in the index, one per (segment, concept); they go with their
segment (remove, a changed file indexed again), survive compaction and a rebuilt vector index, and an index of
schema v4 is migrated. A taught detector killed at any commit point is either not there or whole.

Indexes are built without a model (random scores and embeddings, real files), as in test_faults.py."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mmindex import Engine
from mmindex.errors import IndexLocked, QueryError, StoreError
from mmindex.index.schema import MIGRATIONS, SCHEMA_VERSION
from mmindex.index.store import Store
from tests.index.test_faults import KILL_POINTS, build, checked, records

ROOT = Path(__file__).resolve().parents[2]


def ids_of(store: Store, *paths: str) -> list[int]:
    return [i for p in paths for i in store.segment_ids_of(p)]


def test_judgments_are_upserted_and_go_with_their_segments(tmp_path):
    root = tmp_path / "idx"
    build(root, vectors=False)
    with Store.open(root, write=True) as store:
        a, b, c = ids_of(store, "/photos/b0/0.jpg", "/photos/b1/0.jpg", "/photos/b2/0.jpg")
        with store.transaction():
            assert store.add_judgments([(a, "cat", 1, "cli"), (b, "cat", 0, "cli"), (c, "cat", 1, "import"),
                                        (a, "dog", 0, "feedback")]) == (4, 0)
        with store.transaction():  # the same again changes nothing; a new label replaces the old one
            assert store.add_judgments([(a, "cat", 1, "ui"), (b, "cat", 1, "active")]) == (0, 1)
        assert store.judgment_labels("cat") == {a: 1, b: 1, c: 1}
        assert [(j["segment_id"], j["origin"]) for j in store.judgments("cat")] == [(a, "cli"), (b, "active"),
                                                                                    (c, "import")]
        assert store.judgments("cat")[0]["path"] == "/photos/b0/0.jpg"
        assert store.judged_concepts() == {"cat": (3, 0), "dog": (0, 1)}
        with pytest.raises(StoreError, match="1 or 0"), store.transaction():
            store.add_judgments([(a, "cow", 2, "cli")])

    Engine(root).remove(["/photos/b1"])  # a removed file drops its segments' judgments
    with Store.open(root, write=True) as store:
        assert store.judgment_labels("cat") == {a: 1, c: 1}
        store.write_batch(records(["/photos/b0/0.jpg"], 42))  # the file changed: indexed again, new segments
        assert store.judgment_labels("cat") == {c: 1} and store.judgment_labels("dog") == {}
        with store.transaction():
            assert store.delete_judgments("cat", [c]) == 1
        assert store.judged_concepts() == {}


def test_judgments_survive_compaction_and_a_rebuilt_vector_index(tmp_path):
    root = tmp_path / "idx"
    build(root, batches=4, vectors=False)
    engine = Engine(root)
    with Store.open(root) as store:
        ids = store.snapshot().ids.tolist()
    engine.judge("cat", positive=ids[:3], negative=ids[-3:])
    engine.remove(["/photos/b1/1.jpg"])  # a dead row, so that compaction rewrites every file
    before = engine.judgments("cat")
    report = engine.compact(target_rows=64)
    assert report["files_before"] == 4 and report["files_after"] == 1
    assert engine.judgments("cat") == before
    engine.rebuild("hnsw")
    assert engine.judgments("cat") == before and len(before) == 6
    assert not checked(root)["damaged"]


def test_an_index_of_schema_v4_is_migrated_with_its_rows(tmp_path):
    root = tmp_path / "v4"
    (root / "batches").mkdir(parents=True)
    with sqlite3.connect(root / "index.sqlite") as db:  # a v4 index as version 4 wrote it, with an applied detector
        for v in range(1, 5):
            db.executescript(MIGRATIONS[v])
        db.execute("INSERT INTO meta VALUES ('model', 'efficientnet_lite0'), ('embed_dim', '8')")
        db.execute("INSERT INTO media VALUES (1, '/a.jpg', 'image', 'x', 1, 1, 2, 2, NULL, 0)")
        db.execute("INSERT INTO batches VALUES (1, '00000001.arrays', 1, 0, NULL, NULL)")
        db.execute("INSERT INTO segments VALUES (1, 1, 1, 0, NULL, NULL)")
        db.execute("INSERT INTO detectors VALUES (1, 'fm3', '0001.mmdet', 'probe', 'efficientnet_lite0', 'w', "
                   "'bag\ntrouser', 1000, 2, 0)")
        db.execute("PRAGMA user_version = 4")
    assert SCHEMA_VERSION >= 5  # v6 (keyframe embeddings) came after; the migration runs every step
    with Store.open(root, write=True) as store:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.counts()["media"] == 1 and store.segments([1])[1]["path"] == "/a.jpg"
        (det,) = store.detector_list()
        assert (det["name"], det["labels"], det["version"], det["kind"]) == ("fm3", ["bag", "trouser"], 1, "applied")
        with store.transaction():
            store.add_judgments([(1, "cat", 1, "cli")])
        assert store.judged_concepts() == {"cat": (1, 0)}


def test_teach_checks_its_input_before_writing_and_waits_for_no_other_writer(tmp_path):
    root = tmp_path / "idx"
    build(root, vectors=False)
    engine = Engine(root)
    with Store.open(root) as store:
        ids = store.snapshot().ids.tolist()
    with pytest.raises(QueryError, match="segment ids not in the index: 9998, 9999"):
        engine.teach("cat", positive=[ids[0], 9999, 9998])
    with pytest.raises(QueryError, match="judged both"):
        engine.teach("cat", positive=ids[:2], negative=ids[1:3])
    with Store.open(root, write=True), pytest.raises(IndexLocked, match="index is locked"):
        engine.teach("cat", positive=ids[:2])
    assert engine.judgments() == []  # nothing was recorded by a refused call


# ---- kill -9 at each commit point of teach -------------------------------------------------------------------
# As in test_faults.py: the child kills itself (SIGKILL) at the N-th commit point it reaches (before and after each
# SQLite COMMIT and each file rename): the judgments, the bundle written in a temporary folder, the detector's
# bundle copy and score files, and the transaction that makes it visible.
_TEACH_KILLED_AT = KILL_POINTS + """
root = Path(sys.argv[2])
engine = Engine(root)
report = engine.teach("thing", positive=[1, 2, 3, 5], negative=[4, 6, 7])
print("finished", report["version"], seen)
"""


def _taught_state(root: Path) -> tuple[list, dict, set]:
    """The detectors, the judgments of "thing" and the detector files referenced; asserts that a detector that
    is there is whole (its concept column, its bundle and a score file for every batch)."""
    with Store.open(root) as store:
        detectors = [(d["name"], d["version"], d["kind"]) for d in store.detector_list()]
        columns = [c for c in store.concept_columns() if c[3] == "trained"]
        assert len(columns) == len(detectors), "a detector's concept columns without it, or the reverse"
        for det_id, _, bundle in store.detector_bundles():
            assert (root / "detectors" / bundle).is_file()
            assert set(store.detector_score_files(det_id)) == set(store.batch_file_names())
        return detectors, store.judgment_labels("thing"), store.detector_files()


def _teach(root: Path, kill_at: int = 0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _TEACH_KILLED_AT, str(kill_at), str(root)], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def test_kill_9_during_teach_leaves_no_half_applied_detector_and_a_rerun_duplicates_nothing(tmp_path):
    pristine = tmp_path / "pristine"
    build(pristine, vectors=False)
    judged = {1: 1, 2: 1, 3: 1, 5: 1, 4: 0, 6: 0, 7: 0}
    shutil.copytree(pristine, tmp_path / "whole")
    finished = _teach(tmp_path / "whole")
    assert finished.returncode == 0, finished.stderr
    points = int(finished.stdout.split()[-1])
    assert points >= 14, finished.stdout  # judgments, bundle, bundle copy, three score files, the apply: 2 each
    for kill_at in range(1, points, 2):  # just before each commit and each rename (just after: the next one's state)
        root = tmp_path / f"kill-{kill_at}"
        shutil.copytree(pristine, root)
        proc = _teach(root, kill_at)
        assert proc.returncode == -signal.SIGKILL, (kill_at, proc.stdout, proc.stderr)
        detectors, labels, _ = _taught_state(root)
        assert detectors in ([], [("thing", 1, "taught")]), f"killed at point {kill_at}: {detectors}"
        assert labels in ({}, judged), f"killed at point {kill_at}: half the judgments"
        if kill_at in (1, 3, points - 1):  # nothing recorded; judgments only; all but the detector's commit
            rerun = _teach(root)
            assert rerun.returncode == 0, rerun.stderr
            detectors, labels, files = _taught_state(root)
            assert detectors == [("thing", 1, "taught")] and labels == judged
            assert files == {p.name for p in (root / "detectors").iterdir()}  # no orphan left behind
            assert not checked(root)["damaged"]
