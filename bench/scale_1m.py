"""Scale (issue 8): a million synthetic segments through the real store; flat, HNSW and IVF-PQ vs exact search.

    python bench/scale_1m.py --n 1000000 --work /tmp/mmindex-scale     # the docs' figures (hours on 2 cores)
    python bench/scale_1m.py --n 100000                                # a quick run

Segments are synthetic but clustered, so that nearest neighbours mean something: 1000 classes, each a
centre with 16 sub-centres; an embedding is its sub-centre plus noise that lives mostly in a 64-d subspace
(as CNN features do) plus a little isotropic noise, L2-normalised, 1280-d. Its 1000 concept scores are a
softmax in which its class stands out. Everything is written through `Store.write_batch` in batches of
--batch rows (one file each), then `compact`ed. Query vectors are held out from the same distribution.

Each phase runs in a child process, so that its peak RSS (ru_maxrss) is its own:
  write      generate and write the segments (build time, bytes per segment on disk)
  concepts   Engine.search by concept and by text, before and after `compact`
  compact    merge the batch files
  truth      exact top-10 of the held-out queries: float32 inner product with every stored embedding
  build K    Engine.rebuild(K): train on a sample where needed, add every vector, write the file
  query K    a fresh Engine maps the file, warms it with 1000 other queries; recall@10 of its re-ranked
             hits against exact, p50/p99, then the same with efSearch 320, 384 and 512 / nprobe 512 and 1024

    --steps write,concepts,vectors picks steps (e.g. `--steps concepts` re-measures queries on --work).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DIM, CLASSES, SUBS, LATENT = 1280, 1000, 16, 64
K = 10
WARM_UP = 1000  # queries run before measuring: a server has touched the pages of the mapped files a query needs


# ---- synthetic data --------------------------------------------------------------------------------
def _model(dim: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLASSES, dim)) / np.sqrt(dim)
    subs = 0.6 * rng.standard_normal((CLASSES, SUBS, dim)).astype(np.float32) / np.sqrt(dim)
    basis = rng.standard_normal((LATENT, dim)).astype(np.float32) / np.sqrt(dim)
    return centres.astype(np.float32), subs, basis


def segments(model, start: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(classes (m,), concept scores (m, 1000), unit embeddings (m, dim)) of segments start..start+m."""
    centres, subs, basis = model
    rng = np.random.default_rng([seed, start])
    cls = rng.integers(0, CLASSES, m)
    sub = rng.integers(0, SUBS, m)
    emb = centres[cls] + subs[cls, sub] + 0.5 * rng.standard_normal((m, LATENT)).astype(np.float32) @ basis
    emb += 0.15 * rng.standard_normal(emb.shape).astype(np.float32) / np.sqrt(emb.shape[1])
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    logits = 2.0 * rng.standard_normal((m, CLASSES)).astype(np.float32)
    logits[np.arange(m), cls] += 5.0 + rng.standard_normal(m).astype(np.float32)
    logits -= logits.max(axis=1, keepdims=True)
    scores = np.exp(logits)
    scores /= scores.sum(axis=1, keepdims=True)
    return cls, scores, emb


# ---- phases (each in its own process) ----------------------------------------------------------------
def phase_write(a) -> dict:
    from mmindex.concepts import Vocabulary
    from mmindex.index.store import Store
    from mmindex.records import MediaRecord, SegmentRecord

    vocab = Vocabulary.imagenet()
    model = _model(a.dim, a.seed)
    t = time.perf_counter()
    store = Store.create(a.index, "efficientnet_lite0", a.dim, [(c.id, c.name, c.source) for c in vocab.classes])
    with store:
        for start in range(0, a.n, a.batch):
            m = min(a.batch, a.n - start)
            _, scores, emb = segments(model, start, m, a.seed)
            store.write_batch([MediaRecord(f"/synthetic/{start + i:08d}.jpg", "image", f"{start + i:064x}", 1, 0,
                                           [SegmentRecord(scores[i], emb[i])]) for i in range(m)])
            if start // a.batch % 100 == 0:
                print(f"  written {start + m:,}/{a.n:,}", file=sys.stderr, flush=True)
        disk = store.disk_usage()
        files = store.batch_files()["files"]
    return {"seconds": time.perf_counter() - t, "disk": disk, "files": files}


def phase_compact(a) -> dict:
    from mmindex import Engine

    report = Engine(a.index).compact()
    return {k: v for k, v in report.items() if k != "vector_index"}


def phase_truth(a) -> dict:
    from mmindex.index.store import Store

    model = _model(a.dim, a.seed)
    _, _, queries = segments(model, 10**12, a.queries, a.seed)  # held out: a start no segment has
    t = time.perf_counter()
    with Store.open(a.index) as store:
        snap = store.snapshot()
    best_s = np.full((len(queries), K), -np.inf, np.float32)
    best_i = np.zeros((len(queries), K), np.int64)
    for part in snap.parts:  # every stored embedding once, in float32, chunk by chunk
        emb = part.arrays.embeddings
        rows = np.arange(emb.shape[0])[part.take]
        ids = snap.ids[part.dest]
        for i in range(0, len(rows), 65536):
            s = queries @ emb[rows[i:i + 65536]].astype(np.float32).T
            both_s = np.concatenate([best_s, s], axis=1)
            both_i = np.concatenate([best_i, np.broadcast_to(ids[i:i + 65536], s.shape)], axis=1)
            top = np.argpartition(-both_s, K - 1, axis=1)[:, :K]
            best_s, best_i = np.take_along_axis(both_s, top, 1), np.take_along_axis(both_i, top, 1)
    np.save(a.work / "queries.npy", queries)
    np.save(a.work / "truth.npy", best_i)
    return {"seconds": time.perf_counter() - t}


def phase_build(a) -> dict:
    from mmindex import Engine

    report = Engine(a.index).rebuild(a.kind)
    folder = a.index / "vectors"
    size = sum(p.stat().st_size for p in folder.iterdir())
    return {"seconds": report["seconds"], "factory": report["factory"], "bytes_per_vector": size / a.n,
            "file_bytes": size}


def phase_query(a) -> dict:
    from mmindex import Engine
    from mmindex.index import vectors

    queries, truth = np.load(a.work / "queries.npy"), np.load(a.work / "truth.npy")
    engine = Engine(a.index, vector_index=a.kind)
    t = time.perf_counter()
    snap, index = engine.searcher._arrays()  # mapped once, as a long-running server would
    open_s = time.perf_counter() - t
    # Warm-up on other held-out queries: a fresh process faults in each mapped page it touches for the
    # first time (about a microsecond each, thousands per HNSW query); a running server has done so.
    for q in segments(_model(a.dim, a.seed), 2 * 10**12, WARM_UP, a.seed)[2]:
        index.search(q, K)

    def measure() -> dict:
        times, recall = [], []
        for q, exact in zip(queries, truth, strict=True):
            t = time.perf_counter()
            got, _ = index.search(q, K)
            times.append((time.perf_counter() - t) * 1000)
            recall.append(len(set(got.tolist()) & set(exact.tolist())) / K)
        return {"recall": float(np.mean(recall)), "p50": float(np.percentile(times, 50)),
                "p99": float(np.percentile(times, 99))}

    result = measure()
    rng = np.random.default_rng(2)
    e2e = _times(lambda i: engine.search(like=[int(i)], k=K, remember=False), rng.choice(snap.ids, 50))
    # the same queries with more of the graph / more lists visited: recall against time
    sweeps = {"hnsw": ("HNSW_EF_SEARCH", (320, 384, 512)), "ivfpq": ("IVF_NPROBE", (512, 1024))}
    knob, values = sweeps.get(a.kind, (None, ()))
    sweep = {}
    if knob:
        default = getattr(vectors, knob)
        for value in values:
            setattr(vectors, knob, value)
            sweep[f"{knob}={value}"] = measure()
        setattr(vectors, knob, default)
    return {"open_s": open_s, **result, "engine_like_p50": float(np.percentile(e2e, 50)), "sweep": sweep,
            "describe": index.describe()}


def phase_concepts(a) -> dict:
    from text_data import CLASSES as FASHION
    from text_data import VALID_GENERAL, VALIDATION_QUERIES

    from mmindex import Engine

    engine = Engine(a.index)
    t = time.perf_counter()
    engine.search(["tabby"], k=K, remember=False)
    open_s = time.perf_counter() - t
    rng = np.random.default_rng(3)
    names = [c.name for c in rng.choice(engine.vocabulary.classes, 200)]
    out = {"open_s": open_s,
           "concept_ms": _times(lambda c: engine.search([c], k=K, remember=False), names),
           "dog_ms": _times(lambda _: engine.search(["dog"], k=K, remember=False), range(30)),
           "and_not_ms": _times(lambda _: engine.search(["cat AND NOT dog"], k=K, remember=False), range(30))}
    if not a.no_text:
        texts = FASHION + VALID_GENERAL + [q for qs in VALIDATION_QUERIES.values() for q in qs]
        engine.search(text="warm up", k=K, remember=False)  # loads the encoder and the bank
        out["text_ms"] = _times(lambda q: engine.search(text=q, k=K, remember=False), texts)
    return {k: (_summary(v) if k.endswith("_ms") else v) for k, v in out.items()}


def _times(fn, items) -> list[float]:
    out = []
    for x in items:
        t = time.perf_counter()
        fn(x)
        out.append((time.perf_counter() - t) * 1000)
    return out


def _summary(ms: list[float]) -> dict:
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))}


PHASES = {"write": phase_write, "compact": phase_compact, "truth": phase_truth, "build": phase_build,
          "query": phase_query, "concepts": phase_concepts}


def run_phase(a, phase: str, kind: str | None = None) -> dict:
    """Run one phase in a child process; its JSON result plus its peak RSS."""
    cmd = [sys.executable, __file__, "--phase", phase, "--n", str(a.n), "--work", str(a.work), "--dim", str(a.dim),
           "--queries", str(a.queries), "--batch", str(a.batch), "--seed", str(a.seed)]
    cmd += ["--kind", kind] if kind else []
    cmd += ["--no-text"] if a.no_text else []
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - t
    print(f"[{phase}{' ' + kind if kind else ''}] {json.dumps(result)}", file=sys.stderr, flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=DIM)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--batch", type=int, default=1000, help="Rows per write_batch (one batch file each).")
    ap.add_argument("--kinds", default="flat,hnsw,ivfpq")
    ap.add_argument("--steps", default="write,concepts,vectors",
                    help="Which steps to run on --work: write (write, concepts, compact, concepts), concepts "
                         "(on the index as it is), vectors (truth, then build and query each kind).")
    ap.add_argument("--work", type=Path, default=None, help="Folder for the index (default: a temporary one).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-text", action="store_true", help="Skip the text queries (they need the MiniLM encoder).")
    ap.add_argument("--phase", choices=PHASES, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--kind", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.phase:
        a.index = a.work / "idx"
        result = PHASES[a.phase](a)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    temporary = a.work is None
    a.work = a.work or Path(os.environ.get("TMPDIR", "/tmp")) / f"mmindex-scale-{os.getpid()}"
    if "write" in a.steps.split(",") and (a.work / "idx").exists():
        shutil.rmtree(a.work / "idx")
    a.work.mkdir(parents=True, exist_ok=True)
    try:
        report(a, collect(a))
    finally:
        if temporary:
            shutil.rmtree(a.work, ignore_errors=True)


def collect(a) -> dict:
    steps, r = a.steps.split(","), {}
    if "write" in steps:
        r["write"] = run_phase(a, "write")
        r["concepts_before"] = run_phase(a, "concepts")
        r["compact"] = run_phase(a, "compact")
    if "write" in steps or "concepts" in steps:
        r["concepts"] = run_phase(a, "concepts")
    if "vectors" in steps:
        r["truth"] = run_phase(a, "truth")
        for kind in a.kinds.split(","):
            r[f"build {kind}"] = run_phase(a, "build", kind)
            r[f"query {kind}"] = run_phase(a, "query", kind)
    return r


def report(a, r: dict) -> None:
    if "write" in r:
        w, c = r["write"], r["compact"]
        disk = w["disk"]
        print(f"segments: {a.n:,} ({a.dim}-d embeddings, 1000 concepts), written in batches of {a.batch} "
              f"in {w['seconds']:.0f} s ({a.n / w['seconds']:,.0f} segments/s), peak RSS {w['peak_rss_mb']:.0f} MB; "
              f"batch files {disk['batches'] / a.n:,.0f} B/segment, SQLite {disk['sqlite'] / a.n:,.0f} B/segment")
        print(f"compact: {c['files_before']} -> {c['files_after']} batch files in {c['seconds']:.0f} s, "
              f"peak RSS {c['peak_rss_mb']:.0f} MB")
    if "truth" in r:
        print(f"exact ground truth for {a.queries} queries in {r['truth']['seconds']:.0f} s")
        print()
        print("| vector index | FAISS factory | build s | bytes/vector (file) | recall@10 | p50 ms | p99 ms "
              "| Engine like p50 ms | peak RSS build MB | peak RSS query MB |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for kind in a.kinds.split(","):
            b, q = r[f"build {kind}"], r[f"query {kind}"]
            print(f"| {kind} | {b['factory']} | {b['seconds']:.0f} | {b['bytes_per_vector']:,.0f} | {q['recall']:.3f} "
                  f"| {q['p50']:.2f} | {q['p99']:.2f} | {q['engine_like_p50']:.1f} | {b['peak_rss_mb']:.0f} "
                  f"| {q['peak_rss_mb']:.0f} |")
        for kind in a.kinds.split(","):
            for setting, m in r[f"query {kind}"].get("sweep", {}).items():
                print(f"{kind} with {setting}: recall@10 {m['recall']:.3f}, p50 {m['p50']:.2f} ms, "
                      f"p99 {m['p99']:.2f} ms")
    if "concepts" in r:
        before = r.get("concepts_before")
        print()
        print("| query (Engine.search, k=10) | before compact p50 / p99 ms | after compact p50 / p99 ms |")
        print("|---|---:|---:|")
        labels = {"concept_ms": "concept (one ImageNet class)", "dog_ms": "concept 'dog' (118 classes)",
                  "and_not_ms": "concept 'cat AND NOT dog'", "text_ms": "text (MiniLM → concept bank)"}
        for key, label in labels.items():
            if key in r["concepts"]:
                b, f = (before or {}).get(key), r["concepts"][key]
                was = f"{b['p50']:.1f} / {b['p99']:.1f}" if b else "-"
                print(f"| {label} | {was} | {f['p50']:.1f} / {f['p99']:.1f} |")
        print(f"\nconcept phase peak RSS (mapped pages included): "
              f"{before['peak_rss_mb'] if before else float('nan'):.0f} MB before compact, "
              f"{r['concepts']['peak_rss_mb']:.0f} MB after; first query (map arrays) {r['concepts']['open_s']:.1f} s")


if __name__ == "__main__":
    main()
