"""The few-shot recipe (issue 17) on real Fashion-MNIST features: the solver finds scikit-learn's optimum, C is
cross-validated, `train` uses the recipe for probes and records it, `--head` names the output, and calibration is
kept only when it lowers the validation ECE."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmindex.errors import DataError
from mmindex.learn import TrainConfig, fewshot, train
from mmindex.learn.calibration import fit_calibration
from mmindex.learn.checkpoint import load_bundle
from mmindex.learn.data import load_dataset
from mmindex.learn.features import extract_features
from mmindex.learn.train import resolve_loss
from tests.learn.conftest import TRAIN_NPZ


@pytest.fixture(scope="module")
def features(fmnist_folders) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """Backbone features of 90 real images (trouser, sneaker, bag), their classes and the label names."""
    ds = load_dataset(str(fmnist_folders))
    x, ds, _ = extract_features(ds, "efficientnet_lite0")
    return torch.from_numpy(x), ds.classes, ds.labels


def onehot(classes: np.ndarray, n: int) -> torch.Tensor:
    return torch.from_numpy(np.eye(n, dtype=np.float32)[classes])


def test_the_solver_finds_scikit_learns_optimum(features):
    from sklearn.linear_model import LogisticRegression

    x, y, labels = features
    w, b = fewshot.fit_logistic(x, onehot(y, 3), "sigmoid", 10.0)  # one-vs-rest: one binary problem per label
    for j in range(3):
        ref = LogisticRegression(C=10.0, tol=1e-8, max_iter=10000).fit(x.numpy(), y == j)
        np.testing.assert_allclose(w[j].numpy(), ref.coef_[0], atol=2e-3 * np.abs(ref.coef_).max())
        assert float(b[j]) == pytest.approx(ref.intercept_[0], abs=2e-3 * float(np.abs(ref.coef_).max()))
    w, b = fewshot.fit_logistic(x, onehot(y, 3), "softmax", 1.0)
    ref = LogisticRegression(C=1.0, tol=1e-8, max_iter=10000).fit(x.numpy(), y)  # multinomial
    np.testing.assert_allclose(w.numpy(), ref.coef_, atol=2e-3 * np.abs(ref.coef_).max())


def test_soft_targets_are_weighted_examples(features):
    from sklearn.linear_model import LogisticRegression

    x, y, _ = features
    t = torch.where(torch.from_numpy(y == 2), 0.8, 0.1)[:, None]  # soft labels of one concept
    w, b = fewshot.fit_logistic(x, t, "sigmoid", 3.0)
    # the same as each image twice: a positive of weight t and a negative of weight 1 - t
    xx = np.concatenate([x.numpy(), x.numpy()])
    ref = LogisticRegression(C=3.0, tol=1e-8, max_iter=10000).fit(
        xx, np.r_[np.ones(len(x)), np.zeros(len(x))], sample_weight=np.r_[t[:, 0].numpy(), 1 - t[:, 0].numpy()])
    np.testing.assert_allclose(w[0].numpy(), ref.coef_[0], atol=2e-3 * np.abs(ref.coef_).max())


def test_c_is_cross_validated_and_falls_back_with_too_few_images(features):
    x, y, _ = features
    c, folds, cv = fewshot.choose_c(x, onehot(y, 3), "sigmoid", False, seed=0)
    assert folds == 5 and set(cv) == set(fewshot.C_GRID) and c == min(cv, key=cv.get)
    assert all(np.isfinite(v) and v > 0 for v in cv.values())
    one_each = np.r_[[np.flatnonzero(y == k)[0] for k in range(3)], np.flatnonzero(y == 0)[1:10]]
    assert fewshot.choose_c(x[one_each], onehot(y[one_each], 3), "sigmoid", False) == (fewshot.DEFAULT_C, 0, {})


def test_train_fits_probes_by_the_recipe_and_bundles_apply_them(fmnist_folders, features, tmp_path):
    rep = train(str(fmnist_folders), tmp_path / "fm3.mmdet", TrainConfig(), curves=True)
    assert rep.loss == "sigmoid" and rep.recipe["name"] == "fewshot" and rep.recipe["C"] in fewshot.C_GRID
    assert rep.recipe["cv_folds"] == 5 and rep.recipe["refit_with_validation"] is True
    assert rep.best_metric >= 0.9 and rep.history and (tmp_path / "fm3.mmdet.curves.png").is_file()
    b = load_bundle(tmp_path / "fm3.mmdet")
    assert b.metrics["recipe"]["name"] == "fewshot" and b.metrics["method"] == "platt"
    d = b.detector
    assert float(d.mean.abs().max()) == 0 and float(d.std.min()) == float(d.std.max()) == 1  # embeddings as stored
    identity = bool((d.platt_a == 1).all() and (d.platt_b == 0).all())
    assert identity != b.metrics["kept"]  # the Platt scaling is in the bundle exactly when it was kept
    x, y, labels = features
    scores = b.score_embeddings(x.numpy()).astype(np.float32)  # what `apply` stores
    assert (scores.argmax(1) == [b.labels.index(labels[k]) for k in y]).mean() >= 0.95
    linear = d.head.net[-1]
    expected = torch.sigmoid(d.platt_a * (x @ linear.weight.T + linear.bias) + d.platt_b)
    np.testing.assert_allclose(scores, expected.detach().numpy(), atol=1e-3)


def test_the_sgd_recipe_stays_for_mlp_heads_large_sets_and_on_request(fmnist_folders, tmp_path):
    for cfg in (TrainConfig(recipe="sgd", epochs=2), TrainConfig(head="mlp", hidden=16, epochs=2)):
        rep = train(str(fmnist_folders), tmp_path / "s.mmdet", cfg, curves=False)
        assert rep.recipe == {"name": "sgd"} and rep.epochs_run == 2
    assert not fewshot.applies("probe", "linear", "sigmoid", "auto", fewshot.MAX_IMAGES + 1)
    assert fewshot.applies("probe", "linear", "softmax", "fewshot", fewshot.MAX_IMAGES + 1)
    assert not fewshot.applies("scratch", "linear", "softmax", "auto", 100)
    assert not fewshot.applies("probe", "linear", "mse", "auto", 100)


def test_head_names_the_output_and_auto_loss_is_sigmoid_for_probes():
    assert (TrainConfig(head="softmax").head, TrainConfig(head="softmax").loss) == ("linear", "softmax")
    assert (TrainConfig(head="sigmoid").head, TrainConfig(head="sigmoid").loss) == ("linear", "sigmoid")
    with pytest.raises(DataError, match="--head softmax contradicts --loss sigmoid"):
        TrainConfig(head="softmax", loss="sigmoid").validate()
    with pytest.raises(DataError, match="few-shot recipe"):
        TrainConfig(recipe="fewshot", head="mlp").validate()
    ds = load_dataset(str(TRAIN_NPZ))
    assert resolve_loss(TrainConfig(), ds) == "sigmoid"  # concept detectors: one-vs-rest, open-set
    assert resolve_loss(TrainConfig(mode="scratch"), ds) == "softmax"  # closed-set classifiers
    assert resolve_loss(TrainConfig(head="softmax"), ds) == "softmax"


def test_calibration_is_kept_only_when_it_lowers_the_ece():
    gen = torch.Generator().manual_seed(0)
    true = torch.randn(2000, 4, generator=gen) * 2
    classes = torch.multinomial(true.softmax(1), 1, generator=gen)[:, 0]
    over = fit_calibration(true * 3, onehot(classes.numpy(), 4), "softmax", False)  # over-confident by 3
    assert over.kept and over.ece_after < over.ece_before and over.temperature == pytest.approx(3, rel=0.15)
    assert over.summary()["kept"] is True and over.summary()["method"] == "temperature"
    # every validation image right and scored 1: no scaling can lower the ECE (0), so none is kept
    perfect = onehot(np.arange(40) % 4, 4) * 60
    same = fit_calibration(perfect, onehot(np.arange(40) % 4, 4), "softmax", False)
    assert same.ece_before == 0 and not same.kept
    assert fit_calibration(true, onehot(classes.numpy(), 4), "mse", False) is None


def test_folds_spread_every_labels_positives():
    rare = np.zeros((40, 1), np.float32)
    rare[[3, 17, 30]] = 1  # one taught concept: 3 positives among 40 images
    folds = fewshot._folds(rare, True, seed=0)
    assert len(folds) == 3 and sorted(np.concatenate(folds)) == list(range(40))
    assert [int(rare[f].sum()) for f in folds] == [1, 1, 1]
    classes = np.eye(3, dtype=np.float32)[np.arange(30) % 3]
    folds = fewshot._folds(classes, False, seed=0)
    assert len(folds) == 5 and all((classes[f].sum(0) == 2).all() for f in folds)
    assert len(fewshot._folds(rare[:20], True, seed=0)) == 2  # 2 positives: 2 folds
    assert fewshot._folds(rare[:10], True, seed=0) is None  # 1 positive: nothing to cross-validate
