"""Compaction (`mmindex.index.compact`) on a real store built without a model: which batch files are grouped,
that merging keeps every live segment's scores, trained scores and embedding bit for bit while dropping dead rows,
that a second run does nothing, and when `add` finds compaction worth running."""

from __future__ import annotations

import types

import numpy as np
import pytest

from mmindex.index import compact, detectors
from mmindex.index.store import Store
from mmindex.records import MediaRecord, SegmentRecord

C, D = 5, 8


def records(prefix: str, n: int, seed: int) -> list[MediaRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        e = rng.standard_normal(D)
        out.append(MediaRecord(f"{prefix}/{i}.jpg", "image", f"{seed:032x}{i:032x}", 10, 1,
                               [SegmentRecord(rng.dirichlet(np.ones(C)), e / np.linalg.norm(e))]))
    return out


@pytest.fixture
def store(tmp_path):
    """Six batch files of five segments each: /b0/0.jpg ... /b5/4.jpg."""
    s = Store.create(tmp_path / "idx", "m", D, [(f"c{i}", f"concept {i}", "imagenet") for i in range(C)])
    for b in range(6):
        s.write_batch(records(f"/b{b}", 5, seed=b))
    yield s
    s.close()


def state(store: Store) -> dict[int, tuple[bytes, bytes]]:
    """{segment id: (its score column, its embedding)} as stored: float16 bytes, compared exactly."""
    snap = store.snapshot()
    scores, emb = np.asarray(snap.scores), np.asarray(snap.embeddings)
    return {int(sid): (scores[:, i].tobytes(), emb[i].tobytes()) for i, sid in enumerate(snap.ids)}


def files(store: Store, folder: str = "batches") -> set[str]:
    return {p.name for p in (store.root / folder).iterdir()}


def groups(store: Store, target: int) -> list[list[int]]:
    """The plan as segment counts per batch, for readable assertions."""
    return [[b.live for b in g] for g in compact.plan(store, target)]


def test_plan_groups_consecutive_small_batches_up_to_the_target(store):
    assert groups(store, 12) == [[5, 5], [5, 5], [5, 5]]  # a third file would pass 12 rows
    assert groups(store, 15) == [[5, 5, 5], [5, 5, 5]]
    assert groups(store, 1000) == [[5] * 6]
    assert groups(store, 10) == []  # every file holds at least half the target: settled, left alone
    plan = compact.plan(store, 12)
    ids = [b.id for g in plan for b in g]
    assert ids == sorted(ids)  # in segment-id order


def test_a_file_with_dead_rows_is_rewritten_even_alone(store):
    store.remove(["/b2/0.jpg", "/b2/1.jpg"])
    plan = compact.plan(store, 10)  # the others are settled; b2 has 3 live rows of 5
    assert [[(b.rows, b.live) for b in g] for g in plan] == [[(5, 3)]]
    store.remove(["/b4"])  # a whole batch removed: its file is gone, not planned
    assert store.counts()["batches"] == 5
    assert [[(b.rows, b.live) for b in g] for g in compact.plan(store, 10)] == [[(5, 3)]]


def test_compact_merges_files_drops_dead_rows_and_keeps_every_value(store):
    store.remove(["/b1/3.jpg", "/b3", "/b5/0.jpg", "/b5/4.jpg"])
    before = state(store)
    assert store.batch_files() == {"files": 5, "legacy_files": 0, "rows": 25, "dead_rows": 3}  # b3's file is gone
    progress = []
    report = compact.compact(store, target_rows=12, progress=lambda *a: progress.append(a))
    # b0+b1 (9 live rows), b2+b4 (10), then b5 alone (3 live of 5): a group never passes 12 rows
    assert (report.files_before, report.files_after, report.rows_dropped, report.groups) == (5, 3, 3, 3)
    assert store.batch_files() == {"files": 3, "legacy_files": 0, "rows": 22, "dead_rows": 0}
    assert state(store) == before  # the same segment ids, with the very same bytes
    assert files(store) == {r[0] for r in store.db.execute("SELECT file FROM batches")}  # old files deleted
    assert progress[-1] == (22, 22) and [p[0] for p in progress] == sorted(p[0] for p in progress)
    # a merged file holds its segments in id order, one run of rows
    rows = store.db.execute("SELECT batch_id, row FROM segments ORDER BY id").fetchall()
    for batch_id in {b for b, _ in rows}:
        assert [r for b, r in rows if b == batch_id] == list(range(sum(1 for b, _ in rows if b == batch_id)))
    # a reader opened afterwards sees the same, and a second run has nothing to do
    with Store.open(store.root) as reader:
        assert state(reader) == before
    again = compact.compact(store, target_rows=12)
    assert (again.groups, again.files_before, again.files_after, again.rows_dropped) == (0, 3, 3, 0)
    assert state(store) == before
    # new batches after a compaction are merged with each other, not with the settled files
    store.write_batch(records("/new", 2, seed=7))
    store.write_batch(records("/newer", 2, seed=8))
    assert groups(store, 12) == [[3, 2, 2]]  # the small clean b5 file joins them


def test_writes_and_removals_after_a_compaction_still_work(store):
    compact.compact(store, target_rows=100)
    assert store.counts()["batches"] == 1
    store.remove(["/b0"])
    store.write_batch(records("/b0", 5, seed=0))  # the same paths again: new ids
    before = state(store)
    assert compact.compact(store, target_rows=100).rows_dropped == 5
    assert state(store) == before and store.counts() == {**store.counts(), "batches": 1, "segments": 30}


def test_worth_compacting_counts_the_files_a_compaction_would_rewrite(store):
    assert not compact.worth_compacting(store, 0)  # 0: never
    assert compact.worth_compacting(store, 6, target_rows=1000)  # all six would be merged
    assert not compact.worth_compacting(store, 7, target_rows=1000)  # only six files exist
    assert compact.worth_compacting(store, 6, target_rows=12)  # 3 groups of 2 files
    assert not compact.worth_compacting(store, 1, target_rows=10)  # all settled
    store.remove(["/b0/0.jpg"])
    assert compact.worth_compacting(store, 1, target_rows=10) and not compact.worth_compacting(store, 2, 10)


def test_applied_detector_scores_are_merged_with_their_batches(store, tmp_path):
    bundle = tmp_path / "det.mmdet"
    bundle.write_bytes(b"the bundle is only copied here")
    about = types.SimpleNamespace(name="det", mode="probe", backbone="m", weights_id="w", labels=["x", "y"])
    score = lambda e: np.stack([e[:, 0] ** 2, np.abs(e[:, 1])], axis=1).astype(np.float16)  # noqa: E731
    detectors.apply(store, bundle, about, score)
    store.remove(["/b2/1.jpg", "/b4"])
    before = state(store)
    assert [c[1] for c in store.concept_columns()][-2:] == ["det:x", "det:y"]
    assert len(next(iter(before.values()))[0]) == 4 * (store.concept_columns()[-1][0] + 1)  # float32, trained too
    score_files = {f for f in files(store, detectors.FOLDER) if f.endswith(".npy")}
    assert len(score_files) == 5
    report = compact.compact(store, target_rows=100)
    assert (report.files_after, report.rows_dropped) == (1, 1)
    assert state(store) == before  # trained columns too, bit for bit
    [(batch_id,)] = store.db.execute("SELECT id FROM batches").fetchall()
    assert files(store, detectors.FOLDER) == {detectors.bundle_file(1), detectors.score_file(1, batch_id)}
    # media added afterwards are scored with the same function and merged again
    store.write_batch(records("/later", 3, seed=9), trained={1: score(np.stack(
        [r.segments[0].embedding for r in records("/later", 3, seed=9)]).astype(np.float32))})
    before = state(store)
    compact.compact(store, target_rows=100)
    assert state(store) == before and store.counts()["batches"] == 1
