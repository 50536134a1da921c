"""Tune the concept bank's parameters (BankParams) on validation queries, never on the test queries.

    python bench/text_tune.py [--n 2000] [--work /tmp/mmindex-bench]

Validation: Fashion-MNIST *training* images (a random 2000) and 30 queries that are other words for the
ten classes ("jeans", "handbag", "trainers", ...). The test figure (bench/text_fashion_mnist.py) uses
the class names on the *test* images. The retrieval parameters maximise validation MAP; the threshold
is then the largest value (to 0.05) that keeps every validation and general query answerable, and the
table reports how many off-topic queries it rejects.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import text_data

from mmindex.search.fusion import average_precision
from mmindex.text.bank import BankParams


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/mmindex-bench"))
    args = ap.parse_args()
    engine, labels = text_data.index("train", args.n, args.work)
    snap, _ = engine.searcher._arrays()
    bank = engine.searcher._bank(None, engine.reader(), snap).with_params(threshold=-1.0)
    queries = [(q, c) for c, qs in text_data.VALIDATION_QUERIES.items() for q in qs]
    qvec = bank.encoder.encode([q for q, _ in queries])
    results = []
    for gloss, parent in itertools.product((0.0, 0.5, 1.0), (0.0, 0.25, 0.5)):
        b = bank.with_params(gloss_weight=gloss, parent_weight=parent)
        sims = qvec @ b.vectors.T
        for nodes, top_k, (weighting, tau) in itertools.product(
                (True, False), (1, 3, 5, 10, 20),
                (("softmax", 0.02), ("softmax", 0.05), ("softmax", 0.1), ("similarity", 1.0), ("uniform", 1.0))):
            bb = b.with_params(nodes=nodes, top_k=top_k, weighting=weighting, temperature=tau)
            aps = [average_precision(bb.map_vector(q, s).scores(snap.scores), labels == c)
                   for (q, c), s in zip(queries, sims, strict=True)]
            results.append((float(np.mean(aps)), gloss, parent, nodes, top_k, weighting, tau))
    results.sort(reverse=True)
    print(f"validation: {len(queries)} queries on {len(labels)} Fashion-MNIST training images; chance MAP ≈ 0.10")
    print()
    print("| rank | val MAP | gloss g | parent h | nodes | top_k | weighting |")
    print("|---:|---:|---:|---:|---|---:|---|")
    for i, (m, g, h, nodes, k, w, tau) in enumerate(results[:8], 1):
        print(f"| {i} | {m:.3f} | {g} | {h} | {nodes} | {k} | {w}{f' τ={tau}' if w == 'softmax' else ''} |")
    print()
    print("best per top_k (and per nodes):")
    print()
    print("| top_k | nodes | val MAP | gloss g | parent h | weighting |")
    print("|---:|---|---:|---:|---:|---|")
    for k, nodes in itertools.product((1, 3, 5, 10, 20), (True, False)):
        m, g, h, _, _, w, tau = next(r for r in results if r[4] == k and r[3] == nodes)
        print(f"| {k} | {nodes} | {m:.3f} | {g} | {h} | {w}{f' τ={tau}' if w == 'softmax' else ''} |")
    d = BankParams()
    default = next(r for r in results if r[1:] == (d.gloss_weight, d.parent_weight, d.nodes, d.top_k, d.weighting,
                                                    d.temperature if d.weighting == "softmax" else 1.0))
    print(f"| shipped default | {default[0]:.3f} | {d.gloss_weight} | {d.parent_weight} | {d.nodes} | {d.top_k} "
          f"| {d.weighting} |")
    worst = results[-1]
    print(f"| worst of the grid | {worst[0]:.3f} | {worst[1]} | {worst[2]} | {worst[3]} | {worst[4]} | {worst[5]} |")

    # Threshold: the best similarity each query reaches, under the shipped embedding weights.
    b = bank.with_params(gloss_weight=d.gloss_weight, parent_weight=d.parent_weight)
    valid = [q for q, _ in queries] + text_data.VALID_GENERAL
    best_valid = (b.encoder.encode(valid) @ b.vectors.T).max(axis=1)
    best_off = (b.encoder.encode(text_data.OFF_TOPIC) @ b.vectors.T).max(axis=1)
    limit = np.floor(best_valid.min() / 0.05) * 0.05
    print()
    print(f"lowest best-concept similarity of a valid query: {best_valid.min():.3f} "
          f"({valid[int(best_valid.argmin())]!r}) -> threshold {limit:.2f}")
    for t in (0.25, 0.3, 0.35, 0.4, 0.45):
        print(f"threshold {t:.2f}: valid answered {np.mean(best_valid >= t):.0%}, "
              f"off-topic rejected {np.mean(best_off < t):.0%}")
    print("off-topic best similarities:", ", ".join(f"{q!r} {s:.2f}" for q, s in zip(text_data.OFF_TOPIC, best_off,
                                                                                        strict=True)))


if __name__ == "__main__":
    main()
