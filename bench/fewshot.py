"""Few-shot concepts (issue 17): AP against positives per concept, for mmindex's recipe, scikit-learn's default
LogisticRegression and cosine kNN, on the ten Fashion-MNIST classes (EfficientNet-Lite0 features, as `add` stores).

    python bench/fewshot.py [--sizes 5 10 20 50 100] [--draws 5] [--pool 6000] [--test 2000]

For each size n and each draw (seeded), n training images per class and, separately, n validation images per
class are drawn from the first `--pool` training images; every method learns from the same 10·n training images.
The validation images choose settings (kNN's k; mmindex's calibration, through `train --val`) and nothing else.
The test images (the first `--test` of Fashion-MNIST's test set) are used only to measure: MAP over the ten
concepts, each ranking every test image. Columns:

- mmindex `train --val`: `mmindex.learn.train` on the drawn images with the validation set given, scored by the
  bundle as `apply` stores it (float16);
- mmindex `train`: the same without `--val` (20 % of the n images per class are held out for validation);
- before issue 17: the lecture's recipe as `train` ran it before (SGD, softmax), with `--val`;
- LogisticRegression(): scikit-learn's defaults on the same features;
- cosine kNN: mean cosine similarity of the k nearest training images of each class, k ∈ {1, 3, 5, 10} chosen
  on the validation images.

Needs Debian `dataset-fashion-mnist`. Features are cached ($MMINDEX_CACHE/features): only a first run computes them.
Prints a markdown table; writes docs/img/fewshot_curve.png.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from mmindex.config import DEFAULT_MODEL
from mmindex.evaluate import metrics
from mmindex.learn import TrainConfig, train
from mmindex.learn.checkpoint import load_bundle
from mmindex.learn.data import load_fashion_mnist
from mmindex.learn.features import extract_features

DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"
KS = (1, 3, 5, 10)
METHODS = ("mmindex train --val", "mmindex train", "before issue 17 (SGD, softmax)", "LogisticRegression()",
           "cosine kNN")


def draw(classes: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) indices: n of each class for each, disjoint."""
    train_idx, val_idx = [], []
    for c in range(10):
        pick = rng.choice(np.flatnonzero(classes == c), 2 * n, replace=False)
        train_idx.append(pick[:n])
        val_idx.append(pick[n:])
    return np.concatenate(train_idx), np.concatenate(val_idx)


def knn_scores(train_x: np.ndarray, train_y: np.ndarray, x: np.ndarray, k: int) -> np.ndarray:
    """(N, 10): the mean cosine similarity of each item's k most similar training images of each class."""
    sim = x @ train_x.T  # the features are L2-normalised
    out = np.empty((len(x), 10))
    for c in range(10):
        s = sim[:, train_y == c]
        out[:, c] = -np.sort(-s, axis=1)[:, :k].mean(1)
    return out


def mmindex_scores(tmp: Path, images: np.ndarray, y: np.ndarray, val: tuple | None, config: TrainConfig,
                   test_x: np.ndarray) -> np.ndarray:
    """Train through `mmindex.learn.train` on .npz files of the drawn images; the bundle's float16 test scores."""
    np.savez(tmp / "train.npz", images=images, labels=y, label_names=np.arange(10).astype(str))
    if val is not None:
        np.savez(tmp / "val.npz", images=val[0], labels=val[1], label_names=np.arange(10).astype(str))
    train(str(tmp / "train.npz"), tmp / "d.mmdet", config, val_spec=str(tmp / "val.npz") if val else None,
          curves=False)
    bundle = load_bundle(tmp / "d.mmdet")
    order = [bundle.labels.index(str(c)) for c in range(10)]
    return bundle.score_embeddings(test_x)[:, order].astype(np.float32)


def one_draw(n: int, seed: int, data: dict, tmp: Path) -> dict[str, float]:
    """MAP of every method on the test images, for one draw of n images per class."""
    from sklearn.linear_model import LogisticRegression

    tr, va = draw(data["pool_y"], n, np.random.default_rng(seed))
    x, y, xv, yv = data["pool_x"][tr], data["pool_y"][tr], data["pool_x"][va], data["pool_y"][va]
    images, test_x, relevant = data["pool_images"], data["test_x"], data["test_relevant"]
    out = {}
    val = (images[va], yv)
    out[METHODS[0]] = mmindex_scores(tmp, images[tr], y, val, TrainConfig(seed=seed), test_x)
    out[METHODS[1]] = mmindex_scores(tmp, images[tr], y, None, TrainConfig(seed=seed), test_x)
    out[METHODS[2]] = mmindex_scores(tmp, images[tr], y, val, TrainConfig(seed=seed, recipe="sgd", loss="softmax"),
                                     test_x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the defaults' 100 iterations may not converge: the defaults are the point
        out[METHODS[3]] = LogisticRegression().fit(x, y).predict_proba(test_x)
    rel_v = yv[:, None] == np.arange(10)
    k = max((k for k in KS if k <= n), key=lambda k: metrics.mean_average_precision(knn_scores(x, y, xv, k), rel_v))
    out[METHODS[4]] = knn_scores(x, y, test_x, k)
    return {m: metrics.mean_average_precision(s, relevant) for m, s in out.items()} | {"k": k}


def load(pool: int, test: int) -> dict:
    """Fashion-MNIST images, classes and backbone features (cached) of the pool and the test images."""
    tr, te = load_fashion_mnist("train", limit=pool), load_fashion_mnist("test", limit=test)
    t0 = time.perf_counter()
    pool_x, _, _ = extract_features(tr, DEFAULT_MODEL, batch_size=64)
    test_x, _, _ = extract_features(te, DEFAULT_MODEL, batch_size=64)
    print(f"features of {pool + test} images: {time.perf_counter() - t0:.0f} s (cached ones are not recomputed)")
    return {"pool_images": np.stack(tr.sources), "pool_x": pool_x, "pool_y": tr.classes, "test_x": test_x,
            "test_relevant": te.classes[:, None] == np.arange(10)}


def plot(results: dict[int, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(results)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for i, m in enumerate(METHODS):
        vals = np.array([[r[m] for r in results[n]] for n in sizes])
        x = np.array(sizes) * 1.04 ** (i - 2)  # dodged a little, so that error bars do not hide each other
        ax.errorbar(x, vals.mean(1), yerr=vals.std(1), marker="osD^v"[i], capsize=3, label=m,
                    linestyle="-" if i < 2 else "--")
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("positives per concept (training images per class)")
    ax.set_ylabel("test MAP (10 Fashion-MNIST concepts)")
    ax.set_title(f"Few-shot concepts on {DEFAULT_MODEL} features")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 20, 50, 100])
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--pool", type=int, default=6000, help="first N training images to draw from")
    ap.add_argument("--test", type=int, default=2000, help="first N test images")
    ap.add_argument("--plot", default=str(DOCS_IMG / "fewshot_curve.png"))
    a = ap.parse_args()
    data = load(a.pool, a.test)
    results: dict[int, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-fewshot-") as tmp:
        for n in a.sizes:
            t0 = time.perf_counter()
            results[n] = [one_draw(n, seed, data, Path(tmp)) for seed in range(a.draws)]
            print(f"n={n}: {a.draws} draws in {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"\ntest MAP over the 10 concepts, mean ± std over {a.draws} draws ({a.test} test images)\n")
    print("| positives per concept | " + " | ".join(METHODS) + " |")
    print("|---|" + "---|" * len(METHODS))
    for n in a.sizes:
        cells = [f"{np.mean([r[m] for r in results[n]]):.3f} ± {np.std([r[m] for r in results[n]]):.3f}"
                 for m in METHODS]
        print(f"| {n} | " + " | ".join(cells) + " |")
    print("\nkNN's k chosen on validation: " + ", ".join(f"n={n}: {[r['k'] for r in results[n]]}" for n in a.sizes))
    plot(results, Path(a.plot))
    print(f"plot: {a.plot}")


if __name__ == "__main__":
    main()
