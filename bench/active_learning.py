"""Active learning (issue 17): AP against labels spent, for each strategy of `mmindex label` (uncertain, probable,
random), simulated on fully labelled data.

    python bench/active_learning.py [--collection 2000] [--heldout 2000] [--seeds 3] [--start 5] [--round 20]
                                    [--budget 310] [--concepts 0 1 ...]

The collection is the first `--collection` Fashion-MNIST test images, with EfficientNet-Lite0 features from
learn/features.py's cache, stored as `mmindex add` stores them (float16). Each of the ten classes is a concept.
For each concept and seed, the simulated user starts from `--start` positives and as many negatives drawn at
random (the same for every strategy), then judges rounds of `--round` segments chosen by each strategy until
`--budget` labels are spent; the truth answers each judgment. Every step makes the calls `teach` and `label`
make on an index:

    learn.teach.training_set   the judged rows, plus negatives sampled from the unjudged ones (Indexer.teach)
    learn.teach.fit_probe      logistic regression, C by cross-validation (the few-shot recipe, learn/fewshot.py)
    Detector.scores            float16, as `apply` stores a detector's column
    search.active.select       the next round's segments (`mmindex label`, `propose`)

AP is measured on the detector's scores over the whole collection (what `--concept NAME` ranks, judged
segments included) and over `--heldout` images never judged (the first Fashion-MNIST training images). The
reference is the detector trained on every label of the collection. Needs Debian `dataset-fashion-mnist`;
features are cached ($MMINDEX_CACHE/features), so only a first run computes them. Prints markdown tables; writes
docs/img/active_learning.png.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from mmindex.config import DEFAULT_MODEL
from mmindex.evaluate import metrics
from mmindex.learn.data import FASHION_MNIST_LABELS, load_fashion_mnist
from mmindex.learn.features import extract_features
from mmindex.learn.teach import fit_probe, training_set
from mmindex.search.active import select

DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"
STRATEGIES = ("uncertain", "probable", "random")
SHARES = (1.0, 0.98, 0.95)  # of the every-label MAP: the goal, and how near the strategies come to it


def load(collection: int, heldout: int) -> dict:
    """Features (float16 values, as an index stores them, in float32 arrays) and classes of the collection (test
    images) and of the held-out images (training images)."""
    t0 = time.perf_counter()
    out = {}
    for key, split, n in (("x", "test", collection), ("hx", "train", heldout)):
        ds = load_fashion_mnist(split, limit=n)
        feats, kept, _ = extract_features(ds, DEFAULT_MODEL, batch_size=64)
        out[key], out[key[:-1] + "y"] = feats.astype(np.float16).astype(np.float32), kept.classes
    print(f"features of {collection} + {heldout} images: {time.perf_counter() - t0:.0f} s (cached ones are not "
          "computed again)", flush=True)
    return out


def fit_and_score(judged: np.ndarray, labels: np.ndarray, concept: int, data: dict, seed: int) -> \
        tuple[np.ndarray, float, float]:
    """The detector `teach` would train on these judgments: its float16 scores of the collection, its AP on the
    collection and on the held-out images."""
    x, y = training_set(data["x"], judged, labels, seed)
    detector, _ = fit_probe(x, y, FASHION_MNIST_LABELS[concept], DEFAULT_MODEL, seed)
    scores = detector.scores(torch.from_numpy(data["x"]))[:, 0].numpy().astype(np.float16)
    held = detector.scores(torch.from_numpy(data["hx"]))[:, 0].numpy().astype(np.float16)
    return (scores, metrics.average_precision(scores.astype(np.float32), data["y"] == concept),
            metrics.average_precision(held.astype(np.float32), data["hy"] == concept))


def seed_labels(truth: np.ndarray, start: int, seed: int) -> np.ndarray:
    """The first judgments: `start` positives and `start` negatives drawn at random (what a user finds by search)."""
    rng = np.random.default_rng(seed)
    pos = rng.choice(np.flatnonzero(truth), start, replace=False)
    neg = rng.choice(np.flatnonzero(~truth), start, replace=False)
    return np.sort(np.r_[pos, neg])


def simulate(concept: int, strategy: str, seed: int, data: dict, a) -> list[tuple[int, float, float, int]]:
    """One run: (labels spent, AP on the collection, held-out AP, positives found) after each round."""
    truth = data["y"] == concept
    judged = seed_labels(truth, a.start, seed)
    curve = []
    for rnd in range(10_000):
        scores, ap, held = fit_and_score(judged, truth[judged].astype(np.float32), concept, data, seed)
        curve.append((len(judged), ap, held, int(truth[judged].sum())))
        if len(judged) >= a.budget:
            return curve
        unjudged = np.setdiff1d(np.arange(len(truth)), judged)
        chosen = select(strategy, scores, unjudged, min(a.round, a.budget - len(judged)), seed * 1000 + rnd)
        if not len(chosen):
            return curve
        judged = np.sort(np.r_[judged, chosen])
    return curve


def run(data: dict, a) -> tuple[dict, dict]:
    """Every strategy's curves {strategy: (seeds, concepts, rounds, 4)} and the all-label reference per concept
    {concept: (AP on the collection, held-out AP)}."""
    everything = np.arange(len(data["y"]))
    full = {}
    for c in a.concepts:
        _, ap, held = fit_and_score(everything, (data["y"] == c).astype(np.float32), c, data, 0)
        full[c] = (ap, held)
    curves: dict[str, list] = {s: [] for s in STRATEGIES}
    for seed in range(a.seeds):
        t0 = time.perf_counter()
        for s in STRATEGIES:
            curves[s].append([simulate(c, s, seed, data, a) for c in a.concepts])
        print(f"seed {seed}: {len(a.concepts)} concepts × {len(STRATEGIES)} strategies in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    return {s: np.array(v, dtype=np.float64) for s, v in curves.items()}, full


def first_reaching(labels: np.ndarray, curve: np.ndarray, target: float) -> int | None:
    """The fewest labels at which `curve` reaches `target`, None if it never does."""
    hit = np.flatnonzero(curve >= target - 1e-12)
    return int(labels[hit[0]]) if len(hit) else None


def summarise(curves: dict, full: dict, n: int) -> dict:
    """MAP curves (mean and std over seeds of the MAP over concepts) and the issue's two goals per strategy."""
    labels = curves["random"][0, 0, :, 0].astype(int)
    full_map = (np.mean([f[0] for f in full.values()]), np.mean([f[1] for f in full.values()]))
    out = {"labels": labels, "full": full_map, "n": n}
    for s, c in curves.items():
        maps = c[:, :, :, 1].mean(axis=1)  # (seeds, rounds): MAP over concepts
        held = c[:, :, :, 2].mean(axis=1)
        out[s] = {"map": maps.mean(0), "map_std": maps.std(0), "held": held.mean(0), "held_std": held.std(0),
                  "positives": c[:, :, :, 3].mean(axis=(0, 1)),
                  "to_full": [first_reaching(labels, maps.mean(0), share * full_map[0]) for share in SHARES],
                  "to_full_held": [first_reaching(labels, held.mean(0), share * full_map[1]) for share in SHARES]}
    random_final = out["random"]["map"][-1]
    for s in curves:
        out[s]["to_random_final"] = first_reaching(labels, out[s]["map"], random_final)
    return out


def report(summary: dict, a) -> None:
    labels, n, full = summary["labels"], summary["n"], summary["full"]
    points = [i for i, v in enumerate(labels) if v in {labels[0], 50, 110} or i == len(labels) - 1
              or v == max(x for x in labels if x <= n // 10)]
    print(f"\nMAP over {len(a.concepts)} concepts on the collection ({n} images), mean ± std over {a.seeds} "
          f"seeds; held-out MAP ({a.heldout} images) in brackets. Every label: {full[0]:.3f} [{full[1]:.3f}]\n")
    for s in STRATEGIES:  # every round, for the record
        print(f"{s}: " + " ".join(f"{v}:{m:.3f}[{h:.3f}]" for v, m, h in zip(labels, summary[s]["map"],
                                                                          summary[s]["held"], strict=True)))
    print()
    print("| strategy | " + " | ".join(f"{labels[i]} labels" for i in points) + " | positives among them |")
    print("|---|" + "---|" * (len(points) + 1))
    for s in STRATEGIES:
        r = summary[s]
        cells = [f"{r['map'][i]:.3f} ± {r['map_std'][i]:.3f} [{r['held'][i]:.3f}]" for i in points]
        print(f"| {s} | " + " | ".join(cells) + f" | {r['positives'][-1]:.0f} of {labels[-1]} |")
    def shown(v: int | None) -> str:
        return f"> {labels[-1]}" if v is None else str(v)

    shares = " / ".join(f"{share:.0%}" for share in SHARES)
    print(f"\nLabels to reach every label's MAP (goal ≤ {n // 10}, 10 % of the collection; {shares} of it) and "
          f"random selection's MAP at {labels[-1]} labels ({summary['random']['map'][-1]:.3f}; goal ≤ "
          f"{labels[-1] // 2}, half its labels):\n")
    print(f"| strategy | on the collection, {full[0]:.3f} | on held-out images, {full[1]:.3f} | random's final MAP |")
    print("|---|---|---|---|")
    for s in STRATEGIES:
        r = summary[s]
        print(f"| {s} | {' / '.join(map(shown, r['to_full']))} | {' / '.join(map(shown, r['to_full_held']))} | "
              f"{shown(r['to_random_final'])} |")


def plot(summary: dict, path: Path, a) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, n = summary["labels"], summary["n"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.0), dpi=110, sharey=True)
    for ax, key, ref, title in ((axes[0], "map", summary["full"][0], f"the collection ({n} test images)"),
                                (axes[1], "held", summary["full"][1], f"held-out images ({a.heldout})")):
        for i, s in enumerate(STRATEGIES):
            r = summary[s]
            ax.plot(labels, r[key], marker="o^s"[i], markersize=3, label=s)
            ax.fill_between(labels, r[key] - r[key + "_std"], r[key] + r[key + "_std"], alpha=0.2)
        ax.axhline(ref, color="k", linestyle="--", linewidth=1, label="trained on every label")
        ax.axvline(n // 10, color="grey", linestyle=":", linewidth=1, label="10 % of the collection")
        ax.set_xlabel("labels spent (judgments)")
        ax.set_title(f"MAP on {title}", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"MAP over {len(a.concepts)} Fashion-MNIST concepts")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"Active learning: mmindex teach + label, {a.seeds} seeds (mean ± std)", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--collection", type=int, default=2000, help="first N Fashion-MNIST test images")
    ap.add_argument("--heldout", type=int, default=2000, help="first N Fashion-MNIST training images")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--start", type=int, default=5, help="seed positives (and as many negatives)")
    ap.add_argument("--round", type=int, default=20, help="labels per round (`mmindex label -n`)")
    ap.add_argument("--budget", type=int, default=310, help="labels spent in all")
    ap.add_argument("--concepts", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--plot", default=str(DOCS_IMG / "active_learning.png"))
    a = ap.parse_args()
    data = load(a.collection, a.heldout)
    t0 = time.perf_counter()
    curves, full = run(data, a)
    print(f"simulation: {time.perf_counter() - t0:.0f} s")
    summary = summarise(curves, full, len(data["y"]))
    report(summary, a)
    plot(summary, Path(a.plot), a)
    print(f"\nplot: {a.plot}")


if __name__ == "__main__":
    main()
