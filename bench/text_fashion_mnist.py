"""Zero-shot text retrieval on Fashion-MNIST test images: the ten class names as --text queries.

    python bench/text_fashion_mnist.py [--n 10000] [--work /tmp/mmindex-bench]

Each query runs through `Engine.search(text=...)` (MiniLM → concept bank → ConSE pooling of the
ImageNet scores of the index); the whole ranking is scored. Chance: a random ranking has expected
AP ≈ P@10 ≈ the share of the class (0.10).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import text_data

from mmindex.search.fusion import average_precision


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/mmindex-bench"))
    args = ap.parse_args()
    engine, labels = text_data.index("t10k", args.n, args.work)
    snap, _ = engine.searcher._arrays()
    print(f"{len(labels):,} Fashion-MNIST test images, index built with {engine.info()['models'][0]}")
    default = engine.searcher._bank(None, engine.reader(), snap)
    variants = [("shipped defaults", {}),
                ("before issue 21: the query embedded as typed (read=False)", dict(read=False)),
                ("best on validation (classes only, top 5)", dict(nodes=False, top_k=5)),
                ("a-priori settings before tuning", dict(nodes=True, top_k=5, temperature=0.05, threshold=0.35,
                                                          gloss_weight=0.5, parent_weight=0.25))]
    for title, change in variants:
        engine.searcher._banks = {k: default.with_params(**change) for k in engine.searcher._banks}
        print(f"\n### {title}: {engine.searcher._banks and next(iter(engine.searcher._banks.values())).params}\n")
        run(engine, labels, snap)


def run(engine, labels, snap) -> None:
    row = {int(i): r for r, i in enumerate(snap.ids)}
    print("| query | mapped to (weight) | AP | P@10 | chance |")
    print("|---|---|---:|---:|---:|")
    aps, p10s = [], []
    for c, q in enumerate(text_data.CLASSES):
        hits = engine.search(text=q, k=len(labels), remember=False)
        scores = np.full(len(labels), -np.inf)
        for rank, h in enumerate(hits):
            scores[row[h.segment_id]] = -rank
        rel = labels == c
        aps.append(average_precision(scores, rel))
        p10s.append(float(np.sum(rel[[row[h.segment_id] for h in hits[:10]]])) / 10)
        mapped = ", ".join(f"{m['name']} ({m['weight']:.2f})" for m in hits.explanation["criteria"][0]["concepts"][:3])
        mapped = mapped or f"no hits: {hits.message}"
        print(f"| {q} | {mapped} | {aps[-1]:.3f} | {p10s[-1]:.1f} | {rel.mean():.3f} |")
    print(f"| **mean** | | **{np.mean(aps):.3f}** | **{np.mean(p10s):.2f}** | {1 / 10:.3f} |")


if __name__ == "__main__":
    main()
