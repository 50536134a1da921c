"""Text query latency on a synthetic 100k-segment index built through the real store.

    python bench/text_latency.py [--segments 100000] [--queries 100]

Reuses bench/query_latency.py's `build`. p50/p99 of `Engine.search(text=...)` in-process, which
includes encoding the text with MiniLM (ONNX Runtime), mapping it to concepts and pooling their
score columns; the bank and the arrays are loaded once first, as a long-running server would.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from query_latency import build, percentiles
from text_data import CLASSES, VALID_GENERAL, VALIDATION_QUERIES

from mmindex import Engine


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--segments", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=100)
    args = ap.parse_args()
    pool = CLASSES + VALID_GENERAL + [q for qs in VALIDATION_QUERIES.values() for q in qs]
    texts = [pool[i % len(pool)] for i in range(args.queries)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "idx"
        build(root, args.segments, 1280)
        engine = Engine(root)
        t = time.perf_counter()
        engine.search(text="warm up", k=10, remember=False)  # arrays, FAISS, encoder session, bank
        first_s = time.perf_counter() - t
        snap, _ = engine.searcher._arrays()
        bank = engine.searcher._bank(None, engine.reader(), snap)
        pairs = [f"a {a} and a {b}" for a, b in zip(CLASSES, CLASSES[1:] + CLASSES[:1], strict=True)]
        composed = [pairs[i % len(pairs)] for i in range(args.queries)]
        before = bank.with_params(read=False)  # the baseline: the query embedded as typed (before issue 21)
        rows = [
            ("encode the text (MiniLM, ONNX Runtime)", *percentiles(lambda q: bank.encoder.encode([q]), texts)),
            ("encode + map, the query embedded as typed (before issue 21)", *percentiles(before.map, texts)),
            ("encode + map to concepts", *percentiles(bank.map, texts)),
            ("encode + map, compositional ('a t-shirt and a trouser')", *percentiles(bank.map, composed)),
            ("Engine.search(text='a t-shirt and a trouser', k=10), end to end",
             *percentiles(lambda q: engine.search(text=q, k=10, remember=False), composed)),
            ("Engine.search(text=..., k=10), end to end",
             *percentiles(lambda q: engine.search(text=q, k=10, remember=False), texts)),
            ("Engine.search(text=..., concepts=['dog'], fused)",
             *percentiles(lambda q: engine.search(["dog"], text=q, k=10, remember=False), texts)),
        ]
        mapped = np.mean([len(bank.map(q).concepts) for q in texts])
    print(f"segments: {args.segments:,}; first query (load arrays, bank, encoder): {first_s:.1f} s; "
          f"concepts pooled per query: {mapped:.1f} on average")
    print()
    print("| step | p50 ms | p99 ms | p50 CPU ms |")
    print("|---|---:|---:|---:|")
    for name, p50, p99, cpu in rows:
        print(f"| {name} | {p50:.1f} | {p99:.1f} | {cpu:.1f} |")
    print(f"\nmapping now / before issue 21, p50: {rows[2][1] / rows[1][1]:.2f}x; a compositional query / before: "
          f"{rows[3][1] / rows[1][1]:.2f}x")


if __name__ == "__main__":
    main()
