"""Temporal queries and video-level results (search/temporal.py): the sorted-times algorithm against a join of all
pairs on random timelines, then real videos with a known order of shots (tests/conftest.py's TEMPORAL_VIDEOS),
indexed by the real CLI and searched through the Python API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmindex import Engine
from mmindex.errors import QueryError
from mmindex.search import temporal
from mmindex.search.temporal import Timeline, group_by_media, normalise, rank_chains, window_best


def test_window_best_is_the_max_of_each_run():
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 100, 1000):
        values = rng.integers(0, 5, n).astype(float)  # ties: the earliest position wins
        lo = rng.integers(0, n + 1, n)
        hi = np.minimum(lo + rng.integers(0, 40, n), n)
        best, where = window_best(values, lo, hi)
        for i in range(n):
            if hi[i] > lo[i]:
                run = values[lo[i]:hi[i]]
                assert best[i] == run.max() and where[i] == lo[i] + int(np.argmax(run)), (n, i)
            else:
                assert (best[i], where[i]) == (0, -1)


def random_timeline(rng, videos: int, n: int):
    """`videos` videos of contiguous shots (1-8 s each), in a random row order, and a row or two of images."""
    media, start, end = [], [], []
    for v in range(videos):
        lengths = rng.uniform(1, 8, rng.integers(1, n))
        t = np.concatenate([[0.0], np.cumsum(lengths)]) + rng.uniform(0, 50)
        media += [v] * len(lengths)
        start += list(t[:-1])
        end += list(t[1:])
    media += [videos, videos + 1]
    start += [np.nan, np.nan]
    end += [np.nan, np.nan]
    perm = rng.permutation(len(media))
    return np.array(media)[perm], np.array(start)[perm], np.array(end)[perm]


def all_pairs(media, start, end, columns, within):
    """The naive join: every ordered pair of shots of one video, b after a within the window."""
    n = len(media)
    video = np.isfinite(start)
    steps = [normalise(np.where(video, c, np.nan)) for c in columns]
    best = steps[-1].copy()
    for s in range(len(columns) - 2, -1, -1):
        nxt = np.zeros(n)
        for a in np.flatnonzero(video):
            follows = video & (media == media[a]) & (start > start[a]) & (start - end[a] <= within + 1e-9)
            nxt[a] = best[follows].max(initial=0.0)
        best = steps[s] * nxt
    return np.where(video, best, 0.0)


@pytest.mark.parametrize("seed", range(4))
def test_chains_score_as_a_join_of_all_pairs(seed):
    rng = np.random.default_rng(seed)
    media, start, end = random_timeline(rng, videos=12, n=15)

    class Snap:  # what Timeline.build reads of a snapshot
        ids = np.arange(len(media)) * 3 + 1
        generation = 1

    timeline = Timeline.build(Snap, Snap.ids, media, start, end)
    for steps, within in ((2, 10.0), (3, 4.0), (2, 0.5)):
        columns = [rng.random(len(media)) for _ in range(steps)]
        chains = rank_chains(timeline, columns, [1.0] * steps, within)
        expected = all_pairs(media, start, end, columns, within)
        np.testing.assert_allclose(chains.scores, expected[timeline.order], rtol=1e-12, atol=1e-15)
        for p in np.flatnonzero(chains.scores > 0)[:20]:  # each chain: later shots of the same video, in the window
            shots = [int(p)] + [q for q, _ in chains.chain(int(p))]
            rows = timeline.order[shots]
            assert len(set(media[rows])) == 1 and np.all(np.diff(start[rows]) > 0)
            assert np.all(start[rows[1:]] - end[rows[:-1]] <= within + 1e-6)


def test_group_by_media_keeps_each_files_best_and_counts_its_rows():
    media = np.array([5, 5, 7, 9, 7, 5])
    rows = np.array([0, 2, 1, 5, 3, 4])  # a ranking, best first: files 5, 7, 5, 5, 9, 7
    first, matches = group_by_media(media, rows, k=10, depth=4)
    assert rows[first].tolist() == [0, 2, 3] and matches.tolist() == [3, 1, 1]  # file 9 beyond depth: its best row
    first, _ = group_by_media(media, rows, k=2)
    assert rows[first].tolist() == [0, 2]


def test_steps_and_windows_checked():
    assert temporal.parse_step("text: a red car") == ("text", "a red car")
    assert temporal.parse_step("like:42") == ("like", "42")
    assert temporal.parse_step('"text:x" AND dog') == ("concept", '"text:x" AND dog')
    with pytest.raises(QueryError, match="first criterion"):
        temporal.check_steps(["cat"], False, 10.0)
    for bad in (0.0, -1.0, float("nan"), float("inf"), 1e9):
        with pytest.raises(QueryError, match="within"):
            temporal.check_steps(["cat"], True, bad)
    with pytest.raises(QueryError, match="empty then step"):
        temporal.check_steps(["text:  "], True, 10.0)


# ---- real videos ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine(temporal_index):
    eng = Engine(temporal_index)
    yield eng
    eng.close()


def shots(engine) -> dict[tuple[str, float], int]:
    """(file name, start) -> segment id of every shot of the temporal index."""
    hits = engine.search(concepts=["entity"], k=100, remember=False)
    return {(Path(h.path).name, h.start): h.segment_id for h in hits if h.kind == "video"}


def test_a_then_b_finds_the_video_where_a_precedes_b_within_the_window(engine):
    ids = shots(engine)
    assert len(ids) == 8  # every cut of the three videos was found
    hits = engine.search(concepts=["espresso"], then=["cat"], k=10, remember=False)
    top = hits[0]
    assert (Path(top.path).name, top.start, top.kind) == ("forward.mp4", 0.0, "video")
    assert [c["segment_id"] for c in top.then] == [ids["forward.mp4", 2.0]]
    assert top.then[0]["start"] == 2.0 and top.then[0]["score"] > 0.9 and top.score > 0.9
    # the reverse order: its espresso shot is its last, followed by nothing; no hit starts there
    assert ids["reverse.mp4", 2.0] not in [h.segment_id for h in hits]
    # too large a gap: the espresso shot of gap.mp4 is followed by 12 s of temple, and its cat comes too late
    gap = [h for h in hits if h.segment_id == ids["gap.mp4", 0.0]]
    assert all(h.score < 0.01 * top.score and h.then[0]["segment_id"] != ids["gap.mp4", 14.0] for h in gap)
    assert all(h.kind == "video" for h in hits)  # the coffee photo is no part of any chain
    wider = engine.search(concepts=["espresso"], then=["cat"], within=20, k=2, remember=False)
    assert {h.segment_id for h in wider} == {ids["forward.mp4", 0.0], ids["gap.mp4", 0.0]}
    assert {h.then[0]["segment_id"] for h in wider} == {ids["forward.mp4", 2.0], ids["gap.mp4", 14.0]}


def test_three_steps_of_every_kind(engine):
    ids = shots(engine)
    hits = engine.search(concepts=["espresso"], then=["cat", "daisy"], remember=False)
    assert hits[0].segment_id == ids["forward.mp4", 0.0]
    assert [c["segment_id"] for c in hits[0].then] == [ids["forward.mp4", 2.0], ids["forward.mp4", 4.0]]
    mixed = engine.search(text="a cup of coffee", then=["text:a cat", f"like:{ids['forward.mp4', 4.0]}"],
                          remember=False, explain=True)
    assert mixed[0].segment_id == ids["forward.mp4", 0.0] and mixed[0].why
    assert [c["segment_id"] for c in mixed[0].then] == [ids["forward.mp4", 2.0], ids["forward.mp4", 4.0]]
    assert [s["kind"] for s in mixed.explanation["then"]["steps"]] == ["text", "like"]
    # the steps' order matters: daisy then cat is in no video
    backwards = engine.search(concepts=["espresso"], then=["daisy", "cat"], remember=False)
    assert not backwards or backwards[0].score < 0.01


def test_one_hit_per_video(engine):
    ids = shots(engine)
    hits = engine.search(concepts=["espresso"], group="video", k=10, remember=False)
    assert sorted(Path(h.path).name for h in hits) == ["coffee.jpg", "forward.mp4", "gap.mp4", "reverse.mp4"]
    best = {Path(h.path).name: h.segment_id for h in hits}
    assert best["forward.mp4"] == ids["forward.mp4", 0.0] and best["reverse.mp4"] == ids["reverse.mp4", 2.0]
    assert {Path(h.path).name: h.matches for h in hits} == {"coffee.jpg": 1, "forward.mp4": 3, "gap.mp4": 3,
                                                           "reverse.mp4": 2}
    chained = engine.search(concepts=["espresso"], then=["cat"], within=20, group="video", remember=False)
    assert [Path(h.path).name for h in chained][:2] == ["forward.mp4", "gap.mp4"] and chained[0].then
    assert chained[0].to_dict()["matches"] == chained[0].matches >= 1
    pytest.importorskip("pyarrow")  # the table of hits carries the chains and the counts too
    table = chained.to_arrow()
    assert table.column("then").to_pylist() == [h.then for h in chained]
    assert table.column("matches").to_pylist() == [h.matches for h in chained]
