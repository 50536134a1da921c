"""Fusion methods by name, checked against ranx; weight learning; average precision against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from mmindex.errors import QueryError
from mmindex.search import fusion


def _ranx_fuse(columns, depth, method, weights=None):
    from ranx import Run, fuse

    runs = []
    for col in columns:
        top = fusion.top_k(col, depth)
        runs.append(Run({"q": {f"d{i}": float(col[i]) for i in top}}))
    params = {"weights": weights} if weights is not None else ({"k": fusion.RRF_K} if method == "rrf" else None)
    fused = fuse(runs, norm="min-max" if method != "rrf" else None, method=method, params=params)
    return {d: s for d, s in fused.to_dict()["q"].items()}


@pytest.mark.parametrize(("ours", "theirs", "weights"), [
    ("combsum", "sum", None), ("combmnz", "mnz", None), ("rrf", "rrf", None), ("wsum", "wsum", [0.7, 0.2, 0.1]),
])
def test_fusion_matches_ranx(ours, theirs, weights):
    rng = np.random.default_rng(0)
    columns = [rng.random(300) for _ in range(3)]
    fused, parts = fusion.fuse(columns, weights, ours, "minmax", depth=50)
    expected = _ranx_fuse(columns, 50, theirs, weights)
    # every document with a positive fused score is in ranx's fused run (ranx also keeps the ones whose
    # min-max-normalised score is 0: the last of a run), and the scores agree
    assert {f"d{i}" for i in np.flatnonzero(fused > 0)} <= set(expected)
    for doc, score in expected.items():
        assert fused[int(doc[1:])] == pytest.approx(score, rel=1e-6, abs=1e-9), doc
    assert np.allclose(np.sum(parts, axis=0), fused)  # the parts add up to the score


def test_fusion_single_column_keeps_raw_scores_and_unknown_names_fail():
    col = np.array([0.2, 0.9, 0.1])
    for method in fusion.FUSION_METHODS:
        assert np.array_equal(fusion.fuse([col], None, method)[0], col)
    with pytest.raises(QueryError, match="unknown fusion method"):
        fusion.fuse([col, col], None, "borda")


def test_combsum_over_the_whole_collection_is_the_foundations_combsum():
    rng = np.random.default_rng(1)
    cols = [rng.random(100), rng.standard_normal(100)]
    for norm in fusion.NORMALISERS:
        assert np.allclose(fusion.fuse(cols, [2.0, 0.5], "combsum", norm)[0], fusion.combsum(cols, [2.0, 0.5], norm))


def test_average_precision_matches_sklearn():
    rng = np.random.default_rng(2)
    for _ in range(5):
        s, rel = rng.random(200), rng.random(200) < 0.2
        assert fusion.average_precision(s, rel) == pytest.approx(average_precision_score(rel, s))


def test_learned_weights_favour_the_informative_criterion():
    rng = np.random.default_rng(3)
    validation = []
    for _ in range(6):
        rel = rng.random(400) < 0.1
        good = rel + rng.normal(0, 0.6, 400)  # informative
        noise = rng.random(400)  # useless
        validation.append(([noise, good], rel))
    weights, val_map = fusion.learn_weights(validation, "combsum", "zscore", steps=10)
    assert weights[1] > 0.7 and sum(weights) == pytest.approx(1.0)
    even = np.mean([fusion.average_precision(fusion.fuse(c, [0.5, 0.5], "combsum", "zscore")[0], r)
                    for c, r in validation])
    assert val_map > even
