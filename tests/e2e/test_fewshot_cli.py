"""Issue 17 through the real CLI on real Fashion-MNIST PNGs: a few-shot concept trained by `mmindex train` ranks
held-out images as well as scikit-learn's LogisticRegression on the same features, and concepts are open-set
(sigmoid, one-vs-rest): images of a class none of the labels names rank below each label's own images, where
`--head softmax` shares each image's score between the labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmindex.learn.data import FASHION_MNIST_DIR, FASHION_MNIST_LABELS, load_fashion_mnist
from tests.conftest import run_cli

pytestmark = pytest.mark.skipif(not (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                                reason="needs Debian dataset-fashion-mnist")

HARD = (2, 4, 6)  # pullover, coat, shirt: the hardest three of Fashion-MNIST, where a weak recipe shows
ISSUE = (1, 7, 8)  # trouser, sneaker, bag: the issue's three
UNTRAINED = 0  # t-shirt
PER_CLASS, HELD_OUT = 20, 40


def _write(images: np.ndarray, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, a in enumerate(images):
        Image.fromarray(a).save(folder / f"{i:03d}.png")


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Path:
    """hard/<class>/ and issue/<class>/ (20 PNGs per class, from Fashion-MNIST's training split), and
    held-out/<class>/ (40 per class of both sets, and of t-shirt, from its test split)."""
    root = tmp_path_factory.mktemp("fewshot")
    tr, te = load_fashion_mnist("train", limit=2000), load_fashion_mnist("test", limit=2000)
    for name, classes in (("hard", HARD), ("issue", ISSUE)):
        for c in classes:
            _write(np.stack(tr.sources)[tr.classes == c][:PER_CLASS], root / name / FASHION_MNIST_LABELS[c])
    for c in (*HARD, *ISSUE, UNTRAINED):
        _write(np.stack(te.sources)[te.classes == c][:HELD_OUT], root / "held-out" / FASHION_MNIST_LABELS[c])
    return root


@pytest.fixture(scope="module")
def index(folders, tmp_path_factory) -> Path:
    idx = tmp_path_factory.mktemp("fewshot-index") / "idx"
    run_cli("add", str(folders / "held-out"), "--index", str(idx), "-q")
    return idx


def _scores(index: Path, detector: Path, name: str) -> dict[str, dict[str, float]]:
    """Apply `detector` as `name`; {label: {path: score}} from `mmindex search --concept name:label` (every image)."""
    applied = json.loads(run_cli("apply", str(detector), "--index", str(index), "--name", name, "--json").stdout)
    out = {}
    for concept in applied["concepts"]:
        hits = json.loads(run_cli("search", "--index", str(index), "--concept", f"{name}:{concept['name']}", "-k",
                                  "1000", "--json").stdout)["hits"]
        out[concept["name"]] = {h["path"]: h["score"] for h in hits}
    return out


def _class(path: str) -> str:
    return Path(path).parent.name


def _ap(ranked: list[str], label: str) -> float:
    """AP of a ranking of the trained classes' held-out images (the index's order: ties as the index broke them)."""
    from mmindex.evaluate.metrics import average_precision_ranked

    return average_precision_ranked([_class(p) == label for p in ranked])


def test_a_few_shot_concept_reaches_logistic_regression(folders, index, tmp_path):
    from sklearn.linear_model import LogisticRegression

    from mmindex.learn.data import load_dataset
    from mmindex.learn.features import extract_features

    out = tmp_path / "fm3.mmdet"
    proc = run_cli("train", str(folders / "hard"), "--out", str(out), "-q")
    assert "(probe, sigmoid)" in proc.stdout and "recipe: few-shot" in proc.stdout
    assert "calibration: platt scaling" in proc.stdout
    scores = _scores(index, out, "fm3")
    labels = [FASHION_MNIST_LABELS[c] for c in HARD]
    assert sorted(scores) == sorted(labels)
    # the baseline of the issue: scikit-learn's defaults on the embeddings of the same training images
    train = load_dataset(str(folders / "hard"))
    x, train, _ = extract_features(train, "efficientnet_lite0")
    held = load_dataset(str(folders / "held-out"))
    held = held.subset(np.flatnonzero([_class(s) in labels for s in held.sources]))
    xt, held, _ = extract_features(held, "efficientnet_lite0")
    proba = LogisticRegression().fit(x, train.classes).predict_proba(xt)
    ours, theirs = [], []
    for label in labels:
        ranked = [p for p, _ in sorted(scores[label].items(), key=lambda kv: -kv[1]) if _class(p) in labels]
        assert len(ranked) == HELD_OUT * len(labels)
        ours.append(_ap(ranked, label))
        order = np.argsort(-proba[:, train.labels.index(label)], kind="stable")
        theirs.append(_ap([held.sources[i] for i in order], label))
    assert 0.6 < np.mean(theirs) < 0.99  # a task where the recipe matters
    assert np.mean(ours) >= np.mean(theirs) - 0.01, (ours, theirs)


def _pairs_in_order(scores: dict[str, dict[str, float]], label: str, other: str) -> float:
    """The share of (image of `label`, image of `other`) pairs that the concept `label` ranks in that order."""
    own = np.array([s for p, s in scores[label].items() if _class(p) == label])
    untrained = np.array([s for p, s in scores[label].items() if _class(p) == other])
    assert len(own) == len(untrained) == HELD_OUT
    return float((own[:, None] > untrained[None, :]).mean())


def test_concepts_are_open_set_and_softmax_stays_closed_set(folders, index, tmp_path):
    labels = [FASHION_MNIST_LABELS[c] for c in ISSUE]
    other = FASHION_MNIST_LABELS[UNTRAINED]
    run_cli("train", str(folders / "issue"), "--out", str(tmp_path / "open.mmdet"), "-q")
    run_cli("train", str(folders / "issue"), "--out", str(tmp_path / "closed.mmdet"), "--head", "softmax", "-q")
    opened = _scores(index, tmp_path / "open.mmdet", "open")
    closed = _scores(index, tmp_path / "closed.mmdet", "closed")
    open_pairs = [_pairs_in_order(opened, label, other) for label in labels]
    closed_pairs = [_pairs_in_order(closed, label, other) for label in labels]
    # one-vs-rest: a t-shirt, which no label names, ranks below each label's own images (in at least 90 % of the
    # pairs: with only the other labels as negatives, how far this holds depends on the classes, docs/learning.md)
    assert min(open_pairs) >= 0.9, open_pairs
    # softmax shares each image's score between the labels, a t-shirt's too: it must be one of them, so it ranks
    # among a label's own images more often (0.92 of the pairs in order, against 0.99 one-vs-rest, when written)
    tshirts = [p for p in closed[labels[0]] if _class(p) == other]
    sums = np.array([sum(closed[label][p] for label in labels) for p in tshirts])
    np.testing.assert_allclose(sums, 1.0, atol=0.01)
    assert np.mean(open_pairs) >= np.mean(closed_pairs) + 0.03, (open_pairs, closed_pairs)
