"""HNSW graph settings on bench/scale_1m.py's synthetic data, in raw FAISS: what `hnsw` was chosen from.

    .venv/bin/python bench/hnsw_graphs.py --n 200000 "PCA128,HNSW32@80" "L2:PCA128,HNSW64@120" ...

Each setting is FACTORY@efConstruction, with an `L2:` prefix to search by L2 distance instead of inner
product. For each, the index is trained (on a 65,536-vector sample) and built over --n vectors, then 200
held-out queries fetch --fetch candidates at each efSearch of --ef; the candidates are re-ranked with the
exact inner product, as `VectorIndex.search` does, and recall@10 is measured against exact search.
Latencies are one query at a time on one thread, after 100 warm-up queries.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_1m import _model, segments  # noqa: E402


def build(setting: str, xb: np.ndarray) -> tuple[faiss.Index, float]:
    factory, ef_construction = setting.split("@")
    metric = faiss.METRIC_L2 if factory.startswith("L2:") else faiss.METRIC_INNER_PRODUCT
    index = faiss.index_factory(xb.shape[1], factory.removeprefix("L2:"), metric)
    graph = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexPreTransform) else index
    faiss.downcast_index(graph).hnsw.efConstruction = int(ef_construction)
    t = time.perf_counter()
    if not index.is_trained:
        index.train(xb[np.random.default_rng(0).choice(len(xb), min(len(xb), 65_536), replace=False)])
    index.add(xb)
    return index, time.perf_counter() - t


def params(index: faiss.Index, ef: int) -> faiss.SearchParameters:
    p = faiss.SearchParametersHNSW()
    p.efSearch = ef
    if not isinstance(index, faiss.IndexPreTransform):
        return p
    outer = faiss.SearchParametersPreTransform()
    outer.index_params = p
    return outer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("settings", nargs="+")
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--ef", default="128,200,256", help="efSearch values, comma-separated")
    ap.add_argument("--fetch", type=int, default=200, help="candidates re-ranked per query")
    a = ap.parse_args()
    model = _model(1280, 0)
    xb = np.concatenate([segments(model, s, min(100_000, a.n - s), 0)[2] for s in range(0, a.n, 100_000)])
    queries, warm = segments(model, 10**12, 200, 0)[2], segments(model, 2 * 10**12, 100, 0)[2]
    flat = faiss.IndexFlatIP(xb.shape[1])
    flat.add(xb)
    truth = flat.search(queries, 10)[1]
    del flat
    print("| setting | build s | efSearch | recall@10 | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|---:|")
    for setting in a.settings:
        faiss.omp_set_num_threads(2)
        index, build_s = build(setting, xb)
        faiss.omp_set_num_threads(1)
        for ef in (int(e) for e in a.ef.split(",")):
            p = params(index, ef)
            for q in warm:
                index.search(q[None], a.fetch, params=p)
            times, recall = [], []
            for q, exact in zip(queries, truth, strict=True):
                t = time.perf_counter()
                cand = index.search(q[None], a.fetch, params=p)[1][0]
                cand = cand[cand >= 0]
                got = cand[np.argsort(-(xb[cand] @ q))[:10]]
                times.append((time.perf_counter() - t) * 1000)
                recall.append(len(set(got.tolist()) & set(exact.tolist())) / 10)
            print(f"| {setting} | {build_s:.0f} | {ef} | {np.mean(recall):.3f} | {np.percentile(times, 50):.2f} | "
                  f"{np.percentile(times, 99):.2f} |", flush=True)


if __name__ == "__main__":
    main()
