"""A concept taught from judged segments (learn/teach.py): the training set's sampled negatives, and the probe
bundle that `apply` takes, on Fashion-MNIST features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from mmindex.errors import DataError
from mmindex.learn.checkpoint import load_bundle
from mmindex.learn.teach import SAMPLED_MIN, fit_probe, sampled_negatives, save_probe, training_set


def unit_rows(n: int, dim: int, seed: int, shift: np.ndarray | None = None) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)) + (0 if shift is None else shift)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_sampled_negatives_are_seeded_and_come_from_the_half_least_like_the_positives():
    unjudged = np.arange(10, 410)
    similarity = np.linspace(-1, 1, len(unjudged))  # rows 10.. least like the positives, ..409 most
    a = sampled_negatives(unjudged, positives=4, seed=1, similarity=similarity)
    assert len(a) == SAMPLED_MIN and a.tolist() == sampled_negatives(unjudged, 4, 1, similarity).tolist()
    assert a.max() < 210  # the lower half only
    assert len(sampled_negatives(unjudged, positives=30, seed=1)) == 150  # 5 per positive
    assert len(sampled_negatives(np.arange(20), positives=30, seed=1)) == 10  # at most half of a small pool


def test_training_set_puts_the_judged_rows_first_with_their_labels():
    concept = np.zeros(16, dtype=np.float32)
    concept[0] = 3.0
    emb = np.concatenate([unit_rows(30, 16, 0, concept), unit_rows(300, 16, 1)])  # 30 rows show the concept
    judged, labels = np.array([0, 1, 2, 100, 101]), np.array([1, 1, 1, 0, 0])
    x, y = training_set(emb, judged, labels, seed=0)
    np.testing.assert_array_equal(x[:5], emb[judged])
    assert y[:5].tolist() == [1, 1, 1, 0, 0] and not y[5:].any() and len(y) == 5 + SAMPLED_MIN
    sampled = {tuple(r) for r in x[5:]}
    assert not sampled & {tuple(r) for r in emb[3:30]}  # the concept's unjudged rows are not taken as negatives


def test_the_probe_is_a_bundle_whose_scores_are_the_logistic_regressions(tmp_path):
    concept = np.zeros(32, dtype=np.float32)
    concept[:4] = 2.5
    x = np.concatenate([unit_rows(12, 32, 2, concept), unit_rows(40, 32, 3)])
    y = np.r_[np.ones(12), np.zeros(40)]
    detector, details = fit_probe(x, y, "my thing", "efficientnet_lite0", seed=0)
    assert details["positives"] == 12 and details["negatives"] == 40 and details["c"] > 0
    linear = detector.head.net[-1]
    expected = torch.sigmoid(torch.from_numpy(x) @ linear.weight.T + linear.bias).detach().numpy()[:, 0]
    np.testing.assert_allclose(detector.scores(torch.from_numpy(x)).numpy()[:, 0], expected, rtol=1e-5)
    held_out = np.concatenate([unit_rows(10, 32, 4, concept), unit_rows(10, 32, 5)])
    scores = detector.scores(torch.from_numpy(held_out)).numpy()[:, 0]
    assert average_precision_score([1] * 10 + [0] * 10, scores) >= 0.9  # held-out examples of it come first
    save_probe(tmp_path / "t.mmdet", "my thing", detector, "w1234", details)
    bundle = load_bundle(tmp_path / "t.mmdet")
    assert (bundle.name, bundle.labels, bundle.mode, bundle.backbone, bundle.weights_id) == (
        "my thing", ["my thing"], "probe", "efficientnet_lite0", "w1234")
    assert bundle.metrics == {"taught": details}
    np.testing.assert_allclose(bundle.score_embeddings(held_out)[:, 0], scores, atol=1e-3)  # float16, as stored
    with pytest.raises(DataError, match="positive and negative"):
        fit_probe(x[:12], y[:12], "my thing", "efficientnet_lite0")
