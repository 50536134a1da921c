"""`add --executor ray` throughput at 1 and 2 inference workers, next to the local executor, in one run.

    python bench/ray_ingest.py [--images 400] [--small 100] [--batch 32]

On the same JPEGs (640×480 random crops of the sample photos, `mmindex.samples.write_variants`), each run
into a fresh index through `Engine.add`, in this process:
  local: the local executor (decoding threads + ONNX Runtime on all cores);
  ray ×1, ray ×2: the Ray executor with 1 and 2 inference actors (one ONNX thread each), on one local Ray
    instance started before the runs (its start-up is reported apart) and warmed up by a small job.
Each engine indexes `--small` and then `--images` photos. Reported: images/s over the whole `add` of
`--images` (actor start and model load included), the time to the first result, and the marginal rate
(images added between the two sizes / time added), which leaves out the fixed start-up: the rate a long
run settles at. (Rates read from the progress of one run would not do: results come back in scan order,
so Ray holds finished batches back and releases them in bursts.) Also this process's CPU time per image
(for the Ray executor the driver alone, which is the single writer), and decode+preprocess, the model at one
thread and the writer (`BatchWriter` → `Store.write_batch`) each alone, in core-ms per image, from which
docs/scale.md projects the rate of a node and where adding nodes stops helping.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from mmindex import Engine
from mmindex.config import DEFAULT_MODEL, IngestConfig
from mmindex.extract.reader import read_media
from mmindex.index.ingest import BatchWriter
from mmindex.index.store import Store
from mmindex.models import Runtime, create_model
from mmindex.records import MediaRecord, SegmentRecord
from mmindex.samples import write_variants


def cpu_time() -> float:
    t = os.times()
    return t.user + t.system


def timed_add(index: Path, folder: Path, config: IngestConfig) -> dict:
    """One `Engine.add` into a fresh index: wall time, time to the first result, CPU time of this process."""
    first: list[float] = []
    engine = Engine(index, config)
    _ = engine.searcher.model.backbone  # the driver's model (for its preprocessing settings) is not what is measured
    c, t = cpu_time(), time.perf_counter()
    report = engine.add([folder], progress=lambda done, total: first or first.append(time.perf_counter()))
    wall, cpu = time.perf_counter() - t, cpu_time() - c
    assert report.failed == 0, report
    n = report.added
    return {"n": n, "wall": wall, "rate": n / wall, "first": first[0] - t, "cpu_ms": 1000 * cpu / n}


def measure(tmp: Path, name: str, small: Path, big: Path, config: IngestConfig) -> dict:
    """The small run, then the big one; the big one's figures plus the marginal rate between them."""
    a = timed_add(tmp / f"{name}-small", small, config)
    b = timed_add(tmp / f"{name}-big", big, config)
    return {**b, "marginal": (b["n"] - a["n"]) / (b["wall"] - a["wall"])}


def writer_ms(index: Path, into: Path, batch: int) -> float:
    """CPU ms per image of the writer alone (`BatchWriter` → `Store.write_batch`), re-writing the records
    of an index built by a run into a fresh one: the one part that no cluster spreads."""
    with Store.open(index) as src:
        snap = src.snapshot()
        concepts = [(cid, name, source) for _, cid, name, source in src.concept_columns()]
        model, dim = src.meta("model"), int(src.meta("embed_dim"))
    records = [MediaRecord(f"/bench/{i:06d}.jpg", "image", f"{i:064x}", 1, 0,
                           [SegmentRecord(snap.scores[:, i], snap.embeddings[i])], 640, 480)
               for i in range(len(snap.ids))]
    with Store.create(into, model, dim, concepts) as store:
        writer = BatchWriter(store, batch)
        c = cpu_time()
        for r in records:
            writer.take(r.path, r)
        writer.flush()
        return 1000 * (cpu_time() - c) / len(records)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--small", type=int, default=100)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    args = ap.parse_args()
    import ray

    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="mmindex-bench-") as tmp:
        tmp = Path(tmp)
        folder = tmp / "photos"
        paths = write_variants(folder, args.images)
        small = tmp / "small"
        write_variants(small, args.small)  # the first photos of `folder` (same seed)
        backbone = create_model(args.model)
        dc = backbone.data_config
        one_thread = Runtime(backbone, backend="onnx", threads=1)  # also exports and caches the ONNX model

        # the parts alone, in core-ms per image
        n = min(len(paths), 100)
        c = cpu_time()
        frames = [read_media(str(p), None, dc, IngestConfig()).segments[0].frames[0] for p in paths[:n]]
        decode_ms = 1000 * (cpu_time() - c) / n
        x = np.stack(frames[: args.batch])
        one_thread.run(x)
        c, t = cpu_time(), time.perf_counter()
        for _ in range(4):
            one_thread.run(x)
        model_ms = 1000 * (cpu_time() - c) / (4 * len(x))
        model_rate = 4 * len(x) / (time.perf_counter() - t)

        runs = {"local": measure(tmp, "local", small, folder, IngestConfig(model=args.model, batch_size=args.batch))}
        write_ms = writer_ms(tmp / "local-big", tmp / "rewrite", args.batch)

        ray_tmp = tempfile.mkdtemp(prefix="mmindex-ray-")
        t = time.perf_counter()
        # one CPU per inference actor plus one for decoding tasks, as `mmindex add --executor ray` would start
        ray.init(num_cpus=max(cores, 3), include_dashboard=False, _temp_dir=ray_tmp, log_to_driver=False,
                 logging_level=logging.ERROR)
        ray_start = time.perf_counter() - t
        try:
            write_variants(tmp / "warm", 16, seed=1)
            timed_add(tmp / "warm-idx", tmp / "warm", IngestConfig(model=args.model, executor="ray"))
            for w in (1, 2):
                config = IngestConfig(model=args.model, batch_size=args.batch, executor="ray", ray_workers=w)
                runs[f"ray ×{w}"] = measure(tmp, f"ray{w}", small, folder, config)
        finally:
            ray.shutdown()
            shutil.rmtree(ray_tmp, ignore_errors=True)

    base = runs["local"]
    print(f"model {args.model}, {len(paths)} JPEGs 640x480, batch {args.batch}, {cores} cores; "
          f"local Ray start-up {ray_start:.1f} s (not in the runs)")
    print(f"decode+preprocess alone: {decode_ms:.1f} core-ms/img; model alone at 1 thread: {model_ms:.1f} "
          f"core-ms/img ({model_rate:.1f} img/s); the writer alone: {write_ms:.1f} core-ms/img")
    print(f"| engine | whole add of {args.images}: images/s | vs local | first result after "
          f"| marginal images/s ({args.small} → {args.images}) | vs local | CPU ms/img in this process |")
    print("|---|---|---|---|---|---|---|")
    for name, r in runs.items():
        print(f"| {name} | {r['rate']:.1f} ({r['wall']:.1f} s) | {r['rate'] / base['rate']:.2f}× "
              f"| {r['first']:.1f} s | {r['marginal']:.1f} | {r['marginal'] / base['marginal']:.2f}× "
              f"| {r['cpu_ms']:.1f} |")


if __name__ == "__main__":
    main()
