"""Probe detectors on EfficientNet-Lite0 features (issue 4): Fashion-MNIST multi-class error vs scikit-learn
LogisticRegression, multi-label 2×2 mosaics (sigmoid vs softmax head), retrieval MAP after `apply`.

    python bench/learn_probe.py [--train 6000] [--test 2000] [--mosaics 2000] [--head mlp] [--device cuda]

Needs Debian `dataset-fashion-mnist`. Features are cached ($MMINDEX_CACHE/features), so a re-run skips them.
Prints markdown tables; writes learning curves to docs/img/.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mmindex.evaluate import metrics
from mmindex.learn import TrainConfig, train
from mmindex.learn.checkpoint import load_bundle
from mmindex.learn.data import FASHION_MNIST_LABELS, load_fashion_mnist, mosaics
from mmindex.learn.features import extract_features
from mmindex.learn.train import resolve_device

DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=6000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--mosaics", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--head", default="linear", choices=["linear", "mlp"])
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda (features and training)")
    ap.add_argument("--no-retrieval", action="store_true", help="skip the index + apply part (needs FAISS, PyAV)")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-learn-"))
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    tr, te = load_fashion_mnist("train", limit=a.train), load_fashion_mnist("test", limit=a.test)
    np.savez(tmp / "train.npz", images=np.stack(tr.sources), labels=tr.classes, label_names=np.array(tr.labels))
    np.savez(tmp / "test.npz", images=np.stack(te.sources), labels=te.classes, label_names=np.array(te.labels))
    t0 = time.perf_counter()
    dev = resolve_device(a.device)
    ftr, _, _ = extract_features(tr, "efficientnet_lite0", batch_size=128, device=dev)
    fte, _, _ = extract_features(te, "efficientnet_lite0", batch_size=128, device=dev)
    feat_s = time.perf_counter() - t0
    print(f"features: {len(tr) + len(te)} images in {feat_s:.0f} s (cached ones are not recomputed)")

    # ---- multi-class: our probe vs scikit-learn LogisticRegression on the same features --------------
    # the lecture's recipe as issue 4 measured it (softmax, SGD): issue 17's defaults are sigmoid and, for a
    # linear head on up to 5000 images, the few-shot recipe (bench/fewshot.py measures those)
    cfg = TrainConfig(mode="probe", head=a.head, loss="softmax", recipe="sgd", epochs=a.epochs, lr=0.1, batch_size=128,
                      schedule="step", step_every=10, l2=1e-4, patience=5, seed=0)
    rep = train(str(tmp / "train.npz"), tmp / "fmnist.mmdet", cfg, val_spec=None, name="fmnist", device=dev)
    shutil.copy(rep.curves, DOCS_IMG / "learn_probe_lite0.png")
    b = load_bundle(tmp / "fmnist.mmdet")
    s = b.detector.scores(torch.from_numpy(fte)).numpy()
    ours = metrics.top_k_error(s, te.classes, 1)
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    t0 = time.perf_counter()
    scaler = StandardScaler().fit(ftr)
    lr = LogisticRegression(max_iter=1000, C=1.0).fit(scaler.transform(ftr), tr.classes)
    sk_s = time.perf_counter() - t0
    sk_err = 1 - lr.score(scaler.transform(fte), te.classes)
    print("\n| method (lite0 features) | train imgs | test imgs | test top-1 err | train s |")
    print("|---|---|---|---|---|")
    print(f"| mmindex probe, {a.head} head, SGD | {rep.train_size} (+{rep.val_size} val) | {len(te)} | "
          f"{100 * ours:.2f}% | {rep.seconds:.1f} |")
    print(f"| scikit-learn LogisticRegression (lbfgs) | {len(tr)} | {len(te)} | {100 * sk_err:.2f}% | {sk_s:.1f} |")
    print(f"probe: {rep.epochs_run} epochs, {rep.images_per_s:.0f} img/s, peak RSS {rep.peak_rss_mb:.0f} MB, "
          f"T={rep.calibration.get('temperature', 1):.2f}, ECE {rep.calibration.get('ece_before', 0):.3f} -> "
          f"{rep.calibration.get('ece_after', 0):.3f}")

    # ---- multi-label: 2x2 mosaics, sigmoid vs softmax head --------------------------------------------
    mtr, ttr = mosaics(np.stack(tr.sources), tr.classes, a.mosaics, 10, seed=1)
    mte, tte = mosaics(np.stack(te.sources), te.classes, a.mosaics // 2, 10, seed=2)
    folder = tmp / "mosaics"
    folder.mkdir()
    for name, imgs, tg in (("train", mtr, ttr), ("test", mte, tte)):
        lines = []
        for i, (im, t) in enumerate(zip(imgs, tg, strict=True)):
            Image.fromarray(im).save(folder / f"{name}{i:05d}.png")
            lines.append(f"{name}{i:05d}.png," + ";".join(FASHION_MNIST_LABELS[c] for c in np.flatnonzero(t)))
        (folder / f"{name}.csv").write_text("\n".join(lines) + "\n")
    print("\n| multi-label head (2x2 mosaics, lite0 probe) | test MAP | train s |")
    print("|---|---|---|")
    for loss in ("sigmoid", "softmax"):
        mcfg = TrainConfig(mode="probe", loss=loss, head=a.head, recipe="sgd", epochs=a.epochs, lr=0.1, batch_size=128,
                           l2=1e-4, patience=5)
        r = train(str(folder / "train.csv"), tmp / f"mosaic-{loss}.mmdet", mcfg, name=f"mosaic_{loss}", device=dev)
        shutil.copy(r.curves, DOCS_IMG / f"learn_mosaic_{loss}.png")
        from mmindex.learn.heldout import evaluate_detector

        ev = evaluate_detector(tmp / f"mosaic-{loss}.mmdet", str(folder / "test.csv"))
        print(f"| {loss} | {ev['map']:.4f} | {r.seconds:.1f} |")

    # ---- retrieval after apply: index the held-out test images, query each class -----------------------
    if a.no_retrieval:
        return
    from mmindex import Engine

    imgs = tmp / "heldout"
    imgs.mkdir()
    for i, (im, c) in enumerate(zip(te.sources, te.classes, strict=True)):
        Image.fromarray(im).save(imgs / f"{i:05d}_{c}.png")
    eng = Engine(tmp / "index")
    t0 = time.perf_counter()
    eng.add([str(imgs)])
    add_s = time.perf_counter() - t0
    applied = eng.apply(tmp / "fmnist.mmdet")
    aps, aps_plain = [], []
    for c, concept in enumerate(applied["concepts"]):
        res = eng.search(concepts=[concept["id"]], k=len(te))
        hits = getattr(res, "hits", res)
        rel = [int(Path(h.path).stem.split("_")[1]) == c for h in hits]
        aps.append(metrics.average_precision_ranked(rel, int((te.classes == c).sum())))
        aps_plain.append(concept["query"])
    print(f"\nretrieval after apply: {len(te)} held-out images indexed in {add_s:.0f} s; "
          f"MAP over {len(aps)} `--concept fmnist:<class>` queries = {np.mean(aps):.4f}")
    print("per class AP: " + ", ".join(f"{q} {ap:.3f}" for q, ap in zip(aps_plain, aps, strict=True)))


if __name__ == "__main__":
    main()
