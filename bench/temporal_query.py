"""Temporal queries ("A, then B within 10 s") at 100k shots, against a join of all pairs measured in the same run.

    python bench/temporal_query.py [--videos 2000] [--shots 50] [--queries 40] [--within 10] [--work DIR]

The index is built through the real store as bench/query_latency.py builds its own: `--videos` videos of
`--shots` contiguous shots of 1 to 8 s each, with bench/scale_1m.py's synthetic concept scores (1000 softmax
classes in which one class stands out per shot) and 64-d embeddings, in batch files of 1000 segments. Each query
is `Engine.search([A], then=[B], within=W, k=10)` for a random pair of ImageNet classes, in-process, after the
index is loaded, one at a time: p50/p99 wall and CPU ms. The first query, which reads the shots' times from
SQLite (once per committed generation), is timed apart.

Baseline, in the same run on the same columns: a join of all pairs, vectorised with NumPy: every ordered pair of
shots of one video (Σ shots² pairs), kept when the second starts within the window after the first ends, the best
product per first shot. It is given the step columns and the sorted times, so it is timed on the join alone, and
its top 10 must equal the engine's (ids and scores). The engine's own chain step (`temporal.rank_chains`: sorted
times, searchsorted, a sparse table) is timed alone too, on the same columns. With --work the index is kept.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from query_latency import percentiles
from scale_1m import _model, segments

from mmindex import Engine
from mmindex.concepts import Vocabulary
from mmindex.index.store import Store
from mmindex.records import MediaRecord, SegmentRecord
from mmindex.search import fusion, temporal

DIM = 64


def build(root: Path, videos: int, shots: int, batch: int = 1000, seed: int = 0) -> None:
    """`videos` videos of `shots` shots each, written through the store in batches of about `batch` segments."""
    vocab = Vocabulary.imagenet()
    model = _model(DIM, seed)
    rng = np.random.default_rng(seed)
    per_batch = max(1, batch // shots)
    with Store.create(root, "efficientnet_lite0", DIM, [(c.id, c.name, c.source) for c in vocab.classes]) as store:
        for first in range(0, videos, per_batch):
            n = min(per_batch, videos - first)
            _, probs, emb = segments(model, first * shots, n * shots, seed)
            records = []
            for v in range(n):
                ends = np.cumsum(rng.uniform(1, 8, shots))
                starts = np.r_[0.0, ends[:-1]]
                segs = [SegmentRecord(probs[v * shots + i], emb[v * shots + i], start=float(starts[i]),
                                      end=float(ends[i]), keyframes=((float(starts[i]), i),)) for i in range(shots)]
                records.append(MediaRecord(f"/synthetic/video{first + v:06d}.mp4", "video", f"{first + v:064x}", 1, 0,
                                           segs, duration=float(ends[-1])))
            store.write_batch(records)


def all_pairs_join(timeline: temporal.Timeline, first: np.ndarray, then: np.ndarray, within: float) -> np.ndarray:
    """Each shot's score, best_0, by a join of every ordered pair of shots of one video (the naive way)."""
    n0, n1 = temporal.normalise(first[timeline.order]), temporal.normalise(then[timeline.order])
    m = len(n0)
    starts = np.flatnonzero(np.r_[True, timeline.video[1:] != timeline.video[:-1]])
    sizes = np.diff(np.r_[starts, m])[timeline.video]  # each shot's video's number of shots
    a = np.repeat(np.arange(m), sizes)  # every shot paired with every shot of its video
    runs = np.r_[0, np.cumsum(sizes)[:-1]]
    b = starts[timeline.video][a] + np.arange(len(a)) - np.repeat(runs, sizes)
    keep = (b > a) & (timeline.start[b] - timeline.end[a] <= within + 1e-6)
    return n0 * np.maximum.reduceat(np.where(keep, n1[b], 0.0), runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=2000)
    ap.add_argument("--shots", type=int, default=50)
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--within", type=float, default=10.0)
    ap.add_argument("--work", type=Path, default=None, help="Keep the index here and reuse it.")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    tmp = args.work or Path(tempfile.mkdtemp(prefix="mmindex-temporal-"))
    try:
        root = tmp / "idx"
        t = time.perf_counter()
        if not root.exists():
            build(root, args.videos, args.shots)
        build_s = time.perf_counter() - t
        rows, checks = measure(Engine(root), args)
    finally:
        if args.work is None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"shots: {args.videos * args.shots:,} ({args.videos:,} videos of {args.shots}); within {args.within:g} s; "
          f"build through the store {build_s:.1f} s; load average {load:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end")
    print(checks)
    print()
    print("| query | p50 ms | p99 ms | CPU ms p50 |")
    print("|---|---:|---:|---:|")
    for name, p50, p99, cpu in rows:
        print(f"| {name} | {p50:.2f} | {p99:.2f} | {cpu:.2f} |")
    engine_p50, join_p50 = rows[1][1], rows[-1][1]
    print(f"\nA then B, whole query: p50 {engine_p50:.1f} ms (goal <= 50 ms); the join of all pairs alone "
          f"{join_p50:.1f} ms: {join_p50 / engine_p50:.1f}x the whole query, {join_p50 / rows[3][1]:.0f}x the chain "
          "step alone")


def measure(engine: Engine, args) -> tuple[list, str]:
    rng = np.random.default_rng(1)
    names = [c.name for c in rng.choice(engine.vocabulary.classes, 2 * args.queries)]
    pairs = list(zip(names[::2], names[1::2], strict=True))
    engine.search([pairs[0][0]], k=10, remember=False)  # the arrays loaded, as a server has them
    t, c = time.perf_counter(), time.process_time()
    engine.search([pairs[0][0]], then=[pairs[0][1]], within=args.within, k=10, remember=False)
    first = ((time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000)
    rows = [("first A then B (reads the shots' times from SQLite)", *first[:1], first[0], first[1]),
            ("A then B (2 steps), `search --concept A --then B`", *percentiles(
                lambda p: engine.search([p[0]], then=[p[1]], within=args.within, k=10, remember=False), pairs)),
            ("A then B, --group video", *percentiles(
                lambda p: engine.search([p[0]], then=[p[1]], within=args.within, k=10, group="video",
                                        remember=False), pairs))]
    searcher = engine.searcher
    snap, _ = searcher._arrays(vectors=False)
    timeline = searcher._timelines.get(searcher.reader(), snap)
    columns = {p: [engine.searcher.vocabulary.resolve(n).classes for n in p] for p in pairs}
    columns = {p: [snap.scores.combine([(cls, 1.0)]) for cls in c] for p, c in columns.items()}
    rows.append(("the chain step alone (sorted times, searchsorted, sparse table)", *percentiles(
        lambda p: temporal.rank_chains(timeline, columns[p], [1.0, 1.0], args.within), pairs)))
    same = 0
    for p in pairs[:10]:  # the join finds what the engine finds: the same top 10, ids and scores
        joined = all_pairs_join(timeline, *columns[p], args.within)
        top = fusion.top_k(joined, 10)
        expect = [(int(snap.ids[timeline.order[i]]), round(float(joined[i]), 12)) for i in top if joined[i] > 0]
        got = [(h.segment_id, round(h.score, 12)) for h in engine.search([p[0]], then=[p[1]], within=args.within,
                                                                         k=10, remember=False)]
        same += got == expect
    pairs_n = int(np.sum(np.bincount(timeline.video) ** 2))
    rows.append((f"baseline: join of all pairs alone ({pairs_n:,} pairs), NumPy", *percentiles(
        lambda p: all_pairs_join(timeline, *columns[p], args.within), pairs[:max(5, args.queries // 4)])))
    return rows, f"the join's top 10 = the engine's (ids and scores) on {same}/10 queries"


if __name__ == "__main__":
    main()
