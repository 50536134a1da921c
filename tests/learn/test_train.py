"""The training loop on real Fashion-MNIST images: learning, determinism, resume, penalties, calibration, bundles."""

from __future__ import annotations

import pytest
import torch

from mmindex.errors import DataError, DetectorError
from mmindex.learn import TrainConfig, train
from mmindex.learn.calibration import fit_platt, fit_temperature
from mmindex.learn.checkpoint import load_bundle, read_header
from mmindex.learn.train import loss_fn
from tests.learn.conftest import TEST_NPZ, TRAIN_NPZ

FAST = dict(mode="scratch", arch="lenet", epochs=3, lr=0.05, batch_size=32, patience=0)


def test_scratch_lenet_learns_and_writes_a_bundle(tmp_path):
    cfg = TrainConfig(**{**FAST, "epochs": 6})  # LeNet needs ~5 epochs to leave the plateau at lr 0.05
    rep = train(str(TRAIN_NPZ), tmp_path / "fm.mmdet", cfg, val_spec=str(TEST_NPZ), name="fm")
    assert rep.split_made is False and rep.val_size == 100 and rep.epochs_run == 6
    assert rep.history[-1]["train_loss"] < rep.history[0]["train_loss"]
    assert rep.best_metric > 0.3  # 10 classes: chance is 0.1
    assert (tmp_path / "fm.mmdet.curves.png").stat().st_size > 1000
    assert not (tmp_path / "fm.mmdet.ckpt").exists()
    b = load_bundle(tmp_path / "fm.mmdet")
    assert b.name == "fm" and b.mode == "scratch" and len(b.labels) == 10 and b.backbone is None
    assert b.config.arch == "lenet" and b.metrics["val_top1_accuracy"] == pytest.approx(rep.best_metric)
    p = b.detector.scores(torch.rand(3, 1, 28, 28))
    torch.testing.assert_close(p.sum(1), torch.ones(3))
    assert read_header(tmp_path / "fm.mmdet")["mode"] == "scratch"


def test_same_seed_same_weights(tmp_path):
    cfg = TrainConfig(**{**FAST, "epochs": 2})
    train(str(TRAIN_NPZ), tmp_path / "a.mmdet", cfg, curves=False)
    train(str(TRAIN_NPZ), tmp_path / "b.mmdet", cfg, curves=False)
    a, b = (load_bundle(tmp_path / n).detector.state_dict() for n in ("a.mmdet", "b.mmdet"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_resume_gives_the_uninterrupted_run(tmp_path, monkeypatch):
    import sys

    loop = sys.modules["mmindex.learn.train"]  # the package exports the function `train` under the same name

    cfg = TrainConfig(**{**FAST, "epochs": 3})
    train(str(TRAIN_NPZ), tmp_path / "full.mmdet", cfg, curves=False)
    real = loop.validation_metric
    calls = {"n": 0}

    def crash_after_two(*a):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a)

    monkeypatch.setattr(loop, "validation_metric", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        train(str(TRAIN_NPZ), tmp_path / "part.mmdet", cfg, curves=False)
    assert (tmp_path / "part.mmdet.ckpt").is_file()
    monkeypatch.setattr(loop, "validation_metric", real)
    rep = train(str(TRAIN_NPZ), tmp_path / "part.mmdet", cfg, resume=True, curves=False)
    assert [h["epoch"] for h in rep.history] == [1, 2, 3]
    a = load_bundle(tmp_path / "full.mmdet").detector.state_dict()
    b = load_bundle(tmp_path / "part.mmdet").detector.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def test_early_stopping_and_penalties(tmp_path):
    cfg = TrainConfig(**{**FAST, "epochs": 30, "patience": 1, "lr": 1e-6, "l1": 1e-3, "penalty_from": 1})
    rep = train(str(TRAIN_NPZ), tmp_path / "s.mmdet", cfg, curves=False)
    assert rep.epochs_run < 30


def test_losses_match_the_lecture():
    z = torch.tensor([[2.0, 0.0, -1.0]])
    onehot = torch.tensor([[1.0, 0.0, 0.0]])
    assert float(loss_fn("softmax", z, onehot)) == pytest.approx(-float(z.log_softmax(1)[0, 0]))
    p = torch.sigmoid(z)
    expected = -(torch.log(p[0, 0]) + torch.log(1 - p[0, 1]) + torch.log(1 - p[0, 2]))
    assert float(loss_fn("sigmoid", z, onehot)) == pytest.approx(float(expected), rel=1e-5)
    assert float(loss_fn("mse", z, onehot)) == pytest.approx(float(((z - onehot) ** 2).mean()))


def test_calibration_fits_known_temperature_and_platt():
    torch.manual_seed(0)
    true = torch.randn(4000, 5) * 3
    classes = torch.distributions.Categorical(logits=true).sample()
    assert fit_temperature(true * 2.5, classes) == pytest.approx(2.5, rel=0.1)
    z = torch.randn(4000, 2) * 2
    y = torch.bernoulli(torch.sigmoid(0.5 * z - 1.0))
    a, b = fit_platt(z, y)
    assert a.tolist() == pytest.approx([0.5, 0.5], abs=0.1) and b.tolist() == pytest.approx([-1, -1], abs=0.15)


def test_bad_options_and_data_fail_before_training(tmp_path):
    with pytest.raises(DataError, match="epochs"):
        train(str(TRAIN_NPZ), tmp_path / "x.mmdet", TrainConfig(epochs=0))
    with pytest.raises(DataError, match="no such dataset"):
        train(str(tmp_path / "nothing"), tmp_path / "x.mmdet", TrainConfig(**FAST))
    assert not (tmp_path / "x.mmdet").exists()


def test_corrupt_and_foreign_bundles_are_clear_errors(tmp_path):
    (tmp_path / "junk.mmdet").write_bytes(b"not a detector at all")
    with pytest.raises(DetectorError, match="not a readable mmindex detector"):
        load_bundle(tmp_path / "junk.mmdet")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(DetectorError, match="not an mmindex detector"):
        load_bundle(tmp_path / "other.pt")
    with pytest.raises(DetectorError, match="no detector file"):
        load_bundle(tmp_path / "missing.mmdet")
    train(str(TRAIN_NPZ), tmp_path / "ok.mmdet", TrainConfig(**{**FAST, "epochs": 1}), curves=False)
    data = (tmp_path / "ok.mmdet").read_bytes()
    (tmp_path / "cut.mmdet").write_bytes(data[: len(data) // 2])
    with pytest.raises(DetectorError, match="corrupt or truncated"):
        load_bundle(tmp_path / "cut.mmdet")
    b = load_bundle(tmp_path / "ok.mmdet")
    with pytest.raises(DetectorError, match="scratch"):
        b.check_backbone("efficientnet_lite0", "abc")
