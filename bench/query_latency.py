"""Query latency and bytes per segment on a synthetic index built through the real store code.

    python bench/query_latency.py [--segments 100000] [--queries 200] [--work DIR] [--kinds flat,auto,sq8]
    PYTHONPATH=/path/to/other/checkout python bench/query_latency.py      # the same bench on other code

Segments are bench/scale_1m.py's clustered ones (1000 classes x 16 sub-clusters, 1280-d unit embeddings, 1000
softmax concept scores in which the class stands out), written in batches of 1000 (one batch file each, not
compacted unless --compact). Prints p50/p99 per query type, in-process, one query at a time, after the index
is loaded, next to what is measured in the same run: exact scoring of fused queries (the path before issue 20),
exact `--like` by FAISS Flat, an exact FAISS IndexFlatIP search alone and numpy argpartition over one float16
concept column. --like rows need a vector index of each kind in --kinds, built on a copy of the index (flat:
exact; auto: what a new index picks, the hnsw graph at 100k; sq8: SQ8 + exact re-ranking); recall@10 is
against exact search on the same queries. With --work the index is kept and reused.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from scale_1m import _model, segments

from mmindex import Engine
from mmindex.concepts import Vocabulary
from mmindex.index.store import Store
from mmindex.records import MediaRecord, SegmentRecord

SETTINGS = {"flat": "flat", "auto": "auto", "sq8": "SQ8"}


def build(root: Path, n: int, dim: int, batch: int = 1000, seed: int = 0) -> None:
    vocab = Vocabulary.imagenet()
    model = _model(dim, seed)
    store = Store.create(root, "efficientnet_lite0", dim, [(c.id, c.name, c.source) for c in vocab.classes])
    with store:
        for start in range(0, n, batch):
            m = min(batch, n - start)
            _, probs, emb = segments(model, start, m, seed)
            store.write_batch([
                MediaRecord(f"/synthetic/{start + i:07d}.jpg", "image", f"{start + i:064x}", 1, 0,
                            [SegmentRecord(probs[i], emb[i])]) for i in range(m)
            ])


def percentiles(fn, queries) -> tuple[float, float, float]:
    """p50 and p99 wall ms, and p50 CPU ms (of every thread of the process: less load-dependent than wall)."""
    times, cpu = [], []
    for q in queries:
        c, t = time.process_time(), time.perf_counter()
        fn(q)
        times.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99)), float(np.percentile(cpu, 50))


def hits(results) -> list:
    return [(h.segment_id, h.score) for h in results]


def fused_rows(engine: Engine, ids, exact_ids) -> list:
    """Fused queries by the default path, and by exact scoring (the only path before issue 20) on fewer."""
    rows = [("fused: concept + --like (default)", *percentiles(
        lambda i: engine.search(["tabby"], like=[int(i)], k=10, remember=False), ids))]
    searcher = engine.searcher
    if not hasattr(searcher, "_fused"):  # code before issue 20: the default is exact scoring
        return rows
    from mmindex.search.fused import FusedColumns

    before = searcher._fused.fast
    fast = [hits(engine.search(["tabby"], like=[int(i)], k=10, remember=False)) for i in exact_ids]
    taken = searcher._fused.fast - before
    searcher._fused = FusedColumns(fast_from=10**12)
    rows.append(("fused: concept + --like, every segment scored exactly (before issue 20)", *percentiles(
        lambda i: engine.search(["tabby"], like=[int(i)], k=10, remember=False), exact_ids)))
    exact = [hits(engine.search(["tabby"], like=[int(i)], k=10, remember=False)) for i in exact_ids]
    same = sum(a == b for a, b in zip(fast, exact, strict=True))
    print(f"fused: {same}/{len(exact_ids)} top-10s identical (ids and scores) to exact scoring; "
          f"fast path taken {taken}/{len(exact_ids)}")
    searcher._fused = FusedColumns()
    return rows


def like_rows(root: Path, tmp: Path, kinds: list[str], ids, exact_engine: Engine) -> list:
    """--like by each kind of vector index (on a copy of the index, rebuilt), with recall@10 against exact."""
    rows, truth = [], {int(i): {h.segment_id for h in exact_engine.search(like=[int(i)], k=10, remember=False)}
                             for i in ids[:100]}
    for kind in kinds:
        copy = tmp / f"idx-{kind}"
        if not copy.exists():
            shutil.copytree(root, copy, ignore=shutil.ignore_patterns("vectors"), copy_function=_link_arrays)
            try:
                t = time.perf_counter()
                report = Engine(copy).rebuild(SETTINGS[kind])
                print(f"vector index {kind}: {report['factory']} built in {time.perf_counter() - t:.0f} s")
            except Exception as exc:  # a setting the code under test does not know (auto before issue 20)
                print(f"vector index {kind}: not available ({exc})")
                shutil.rmtree(copy)
                continue
        engine = Engine(copy)
        engine.searcher._arrays()
        index = engine.searcher._arrays()[1]
        for i in ids[:200]:  # warm-up: a server has touched the pages of the mapped files
            engine.search(like=[int(i)], k=10, remember=False)
        recall = np.mean([len({h.segment_id for h in engine.search(like=[i], k=10, remember=False)} & t) / 10
                          for i, t in truth.items()])
        rows.append((f"--like (segment id), vector index {kind} ({index.describe()['factory']}), "
                     f"recall@10 {recall:.3f}", *percentiles(
                         lambda i, e=engine: e.search(like=[int(i)], k=10, remember=False), ids)))
    return rows


def _link_arrays(src: str, dst: str) -> None:
    """Batch files are never modified once written: a copy of the index links them (the database is copied)."""
    if src.endswith(".arrays"):
        os.link(src, dst)
    else:
        shutil.copy2(src, dst)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--segments", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--exact-queries", type=int, default=40, help="Fused queries scored exactly (0.5 s each at 100k).")
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--kinds", default="flat,auto,sq8", help="Vector indexes for the --like rows ('' for none).")
    ap.add_argument("--compact", action="store_true", help="Compact the index first (1000 files -> a few).")
    ap.add_argument("--no-baselines", action="store_true", help="Skip FAISS Flat alone (a float32 copy of all).")
    ap.add_argument("--work", type=Path, default=None, help="Keep the index here and reuse it.")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    rng = np.random.default_rng(1)
    tmp = args.work or Path(tempfile.mkdtemp(prefix="mmindex-query-latency-"))
    try:
        root = tmp / "idx"
        t = time.perf_counter()
        if not root.exists():
            build(root, args.segments, args.dim)
            if args.compact:
                Engine(root).compact()
        build_s = time.perf_counter() - t
        engine = Engine(root)
        t = time.perf_counter()
        snap, _ = engine.searcher._arrays()  # load once, as a long-running server would
        open_s = time.perf_counter() - t
        disk = engine.info()["disk_bytes"]
        ids = rng.choice(snap.ids, args.queries)
        names = [c.name for c in rng.choice(engine.vocabulary.classes, args.queries)]
        engine.search(["tabby"], like=[int(ids[0])], k=10, remember=False)  # maps what a fused query reads

        def concept(text: str):
            return lambda c: engine.search([text or c], k=10, remember=False)

        rows = [("concept (one ImageNet class)", *percentiles(concept(""), names)),
                ("concept (hierarchy: 'dog', 118 classes)", *percentiles(concept("dog"), names)),
                ("concept ('cat AND NOT dog')", *percentiles(concept("cat AND NOT dog"), names))]
        rows += fused_rows(engine, ids, ids[:args.exact_queries])
        kinds = [k for k in args.kinds.split(",") if k]
        if kinds:
            rows += like_rows(root, tmp, kinds, ids, engine)
        col = snap.scores[0].astype(np.float16)
        rows.append(("baseline: argpartition top-100 of one float16 column",
                     *percentiles(lambda _: np.argpartition(-col, 100)[:100], names)))
        if not args.no_baselines:
            import faiss

            flat = faiss.IndexFlatIP(args.dim)
            flat.add(np.asarray(snap.embeddings))
            faiss.omp_set_num_threads(1)
            rows.append(("baseline: FAISS IndexFlatIP k=10 alone, 1 thread", *percentiles(
                lambda i: flat.search(snap.embeddings[snap.row_of(int(i))][None], 10), ids)))
    finally:
        if args.work is None:
            shutil.rmtree(tmp, ignore_errors=True)
    import mmindex

    print(f"code: {Path(mmindex.__file__).parent.parent.name}; segments: {args.segments:,}  dim: {args.dim}  "
          f"batch files: {len(snap.parts)}; load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print(f"build through the store: {build_s:.1f} s; open (load arrays): {open_s:.2f} s")
    print(f"disk: {disk / args.segments:,.0f} bytes per segment ({disk / 1e6:,.1f} MB)")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    print()
    print("| query | p50 ms | p99 ms | CPU ms p50 |")
    print("|---|---:|---:|---:|")
    for name, p50, p99, cpu in rows:
        print(f"| {name} | {p50:.2f} | {p99:.2f} | {cpu:.2f} |")


if __name__ == "__main__":
    main()
