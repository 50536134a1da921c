"""Query latency and bytes per segment on a synthetic index built through the real store code.

    python bench/query_latency.py [--segments 100000] [--queries 200]

Scores are sparse softmax-like distributions over the 1000 classes, embeddings are random unit
vectors of the default model's size (1280). Prints p50/p99 per query type, in-process, next to the
baselines measured in the same run: an exact FAISS IndexFlatIP search alone, and numpy
argpartition over one float16 concept column.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from mmindex import Engine
from mmindex.concepts import Vocabulary
from mmindex.index.store import Store
from mmindex.records import MediaRecord, SegmentRecord


def build(root: Path, n: int, dim: int, batch: int = 1000, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    vocab = Vocabulary.imagenet()
    store = Store.create(root, "efficientnet_lite0", dim, [(c.id, c.name, c.source) for c in vocab.classes])
    with store:
        for start in range(0, n, batch):
            m = min(batch, n - start)
            logits = rng.standard_normal((m, 1000)) * 3
            probs = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs /= probs.sum(axis=1, keepdims=True)
            emb = rng.standard_normal((m, dim)).astype(np.float32)
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
            store.write_batch([
                MediaRecord(f"/synthetic/{start + i:07d}.jpg", "image", f"{start + i:064x}", 1, 0,
                            [SegmentRecord(probs[i], emb[i])]) for i in range(m)
            ])


def percentiles(fn, queries) -> tuple[float, float]:
    times = []
    for q in queries:
        t = time.perf_counter()
        fn(q)
        times.append((time.perf_counter() - t) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--segments", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--dim", type=int, default=1280)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "idx"
        t = time.perf_counter()
        build(root, args.segments, args.dim)
        build_s = time.perf_counter() - t
        engine = Engine(root)
        t = time.perf_counter()
        snap, vectors = engine.searcher._arrays()  # load once, as a long-running server would
        open_s = time.perf_counter() - t
        disk = engine.info()["disk_bytes"]
        ids = rng.choice(snap.ids, args.queries)
        names = [c.name for c in rng.choice(engine.vocabulary.classes, args.queries)]

        rows = []
        rows.append(("concept (one ImageNet class)", *percentiles(lambda c: engine.search([c], k=10), names)))
        rows.append(("concept (hierarchy: 'dog', 118 classes)",
                     *percentiles(lambda _: engine.search(["dog"], k=10), names)))
        rows.append(("concept ('cat AND NOT dog')",
                     *percentiles(lambda _: engine.search(["cat AND NOT dog"], k=10), names)))
        rows.append(("--like (segment id)", *percentiles(lambda i: engine.search(like=[int(i)], k=10), ids)))
        rows.append(("fused: concept + --like", *percentiles(
            lambda i: engine.search(["tabby"], like=[int(i)], k=10), ids)))
        shutil.copytree(root, Path(tmp) / "idx-sq8")  # the vector index is chosen per index: a copy, rebuilt
        Engine(Path(tmp) / "idx-sq8").rebuild("SQ8")
        sq8 = Engine(Path(tmp) / "idx-sq8")
        sq8.searcher._arrays()
        rows.append(("--like, vector index SQ8 + exact re-ranking",
                     *percentiles(lambda i: sq8.search(like=[int(i)], k=10), ids)))
        recall = np.mean([
            len({h.segment_id for h in sq8.search(like=[int(i)], k=10)}
                & {h.segment_id for h in engine.search(like=[int(i)], k=10)}) / 10
            for i in ids[:100]
        ])
        # baselines, same run
        col = snap.scores[0].astype(np.float16)
        rows.append(("baseline: argpartition top-100 of one float16 column",
                     *percentiles(lambda _: np.argpartition(-col, 100)[:100], names)))
        flat = faiss.IndexFlatIP(args.dim)
        flat.add(np.asarray(snap.embeddings))
        rows.append(("baseline: FAISS IndexFlatIP k=10 alone",
                     *percentiles(lambda i: flat.search(snap.embeddings[snap.row_of(int(i))][None], 10), ids)))

    print(f"segments: {args.segments:,}  dim: {args.dim}  faiss threads: {faiss.omp_get_max_threads()}")
    print(f"build through the store: {build_s:.1f} s; open (load arrays + build FAISS): {open_s:.2f} s")
    print(f"disk: {disk / args.segments:,.0f} bytes per segment ({disk / 1e6:,.1f} MB)")
    print(f"recall@10 of SQ8 + re-ranking against exact Flat: {recall:.3f}")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    print()
    print("| query | p50 ms | p99 ms |")
    print("|---|---|---|")
    for name, p50, p99 in rows:
        print(f"| {name} | {p50:.2f} | {p99:.2f} |")


if __name__ == "__main__":
    main()
