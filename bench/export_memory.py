"""Export (issue 22): `mmindex export` streams, so its memory does not grow with the index.

    python bench/export_memory.py --n 100000                   # the docs' figures (a few minutes on 2 cores)
    python bench/export_memory.py --n 20000 --what segments,embeddings

Synthetic segments (bench/scale_1m.py's: 1280-d embeddings, 1000 concept scores) are written through the real
store, compacted, then each phase runs in a child process so that its peak RSS (ru_maxrss) is its own:

  open      the baseline: an Engine, a table of segments made (the snapshot mapped), nothing read
  parquet   Engine.export(parquet): batches of 8192 segments through pyarrow's ParquetWriter
  npz       Engine.export(npz): batches to raw column files, then copied into the zip
  whole     SegmentTable.to_arrow(): the same table whole in memory, what the export avoids

Printed: seconds, MB/s of table, and the peaks of each phase's anonymous memory (RssAnon, sampled every 20 ms: the
process's own) and of its whole RSS (ru_maxrss, which also counts the pages of the mapped batch files that were
read: page cache, shared and reclaimable), and the export's anonymous peak above `open` as a share of the whole
table's size. `--work DIR` keeps the index: a second run skips writing it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_1m import _model, segments  # noqa: E402  (the same synthetic segments as the scale benchmark)

PHASES = ("write", "open", "parquet", "npz", "whole")


class AnonPeak:
    """The peak of this process's anonymous resident memory (/proc/self/status RssAnon), sampled in a thread."""

    def __init__(self, every: float = 0.02):
        self.peak, self.every = 0, every
        threading.Thread(target=self._run, daemon=True).start()

    def sample(self) -> int:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("RssAnon:")) * 1024

    def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self.sample())
            time.sleep(self.every)


def phase(a) -> dict:
    from mmindex import Engine

    if a.phase == "write":
        return _write(a)
    engine = Engine(a.work / "idx")
    t = time.perf_counter()
    if a.phase == "open":
        table = engine.segments(a.what)
        return {"seconds": time.perf_counter() - t, "segments": len(table)}
    if a.phase == "whole":
        arrow = engine.segments(a.what).to_arrow()
        return {"seconds": time.perf_counter() - t, "table_mb": arrow.nbytes / 2**20, "rows": arrow.num_rows}
    out = a.work / f"export.{a.phase}"
    report = engine.export(out, a.phase, a.what)
    return {"seconds": time.perf_counter() - t, "file_mb": out.stat().st_size / 2**20, "rows": report["segments"]}


def _write(a) -> dict:
    from mmindex import Engine
    from mmindex.concepts import Vocabulary
    from mmindex.index.store import Store
    from mmindex.records import MediaRecord, SegmentRecord

    vocab, model = Vocabulary.imagenet(), _model(1280, 0)
    t = time.perf_counter()
    with Store.create(a.work / "idx", "efficientnet_lite0", 1280, [(c.id, c.name, c.source) for c in vocab.classes]) \
            as store:
        for start in range(0, a.n, 5000):
            m = min(5000, a.n - start)
            _, scores, emb = segments(model, start, m, 0)
            store.write_batch([MediaRecord(f"/synthetic/{start + i:08d}.jpg", "image", f"{start + i:064x}", 1, 0,
                                           [SegmentRecord(scores[i], emb[i])]) for i in range(m)])
    Engine(a.work / "idx").compact()
    return {"seconds": time.perf_counter() - t}


def run(a, name: str) -> dict:
    cmd = [sys.executable, __file__, "--phase", name, "--n", str(a.n), "--work", str(a.work), "--what", a.what]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    print(f"[{name}] {json.dumps(result)}", file=sys.stderr, flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--what", default="segments,embeddings,scores")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--phase", choices=PHASES, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.phase:
        anon = AnonPeak()
        result = phase(a)
        result["peak_anon_mb"] = max(anon.peak, anon.sample()) / 2**20
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    temporary = a.work is None
    a.work = a.work or Path(os.environ.get("TMPDIR", "/tmp")) / f"mmindex-export-{os.getpid()}"
    a.work.mkdir(parents=True, exist_ok=True)
    try:
        done = (a.work / "idx").exists()  # a kept index: not written again
        r = {name: run(a, name) for name in PHASES if not (done and name == "write")}
    finally:
        if temporary:
            shutil.rmtree(a.work, ignore_errors=True)
    whole, base = r["whole"], r["open"]["peak_anon_mb"]
    print(f"{a.n:,} segments, --what {a.what}: the table is {whole['table_mb']:,.0f} MB in memory")
    print("| step | seconds | table MB/s | file MB | peak anonymous MB | above `open` | share of the table "
          "| peak RSS MB (with mapped files) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in ("open", "parquet", "npz", "whole"):
        x = r[name]
        above = x["peak_anon_mb"] - base
        print(f"| {name} | {x['seconds']:.1f} | {whole['table_mb'] / x['seconds']:,.0f} | "
              f"{x.get('file_mb', 0):,.0f} | {x['peak_anon_mb']:,.0f} | {above:,.0f} | "
              f"{above / whole['table_mb']:.2f} | {x['peak_rss_mb']:,.0f} |")

if __name__ == "__main__":
    main()
