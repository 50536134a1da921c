"""Temporal models: each recurrent network learns an order task that mean pooling cannot, BPTT clips the
gradient, label sets have the right shapes, padding is never read, and the CLI round-trips an .npz."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mmindex.cli import main
from mmindex.errors import DataError, DetectorError
from mmindex.learn import sequence as S


def toy_order(n: int, seed: int, length: int = 5, dim: int = 8) -> S.SequenceData:
    """Noisy prototype frames of 5 classes; label = class 0 comes before class 1 (same bag either way)."""
    rng = np.random.default_rng(seed)
    protos = np.random.default_rng(99).standard_normal((5, dim)).astype(np.float32) * 2
    classes = rng.integers(0, 5, 4000)
    frames = protos[classes] + 0.3 * rng.standard_normal((4000, dim)).astype(np.float32)
    return S.order_task(frames, classes, n, length=length, first=0, second=1, seed=seed)


TRAIN, TEST = toy_order(800, 1), toy_order(400, 2)
FAST = dict(hidden=24, epochs=12, batch_size=32, lr=1e-2, seed=0)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one thread is faster on a loaded machine. Restored for the other test modules."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _test_accuracy(arch: str, tmp_path) -> float:
    S.train_sequence(TRAIN, tmp_path / f"{arch}.mmseq", S.SequenceConfig(arch=arch, **FAST), curves=False)
    return S.evaluate_sequence(tmp_path / f"{arch}.mmseq", TEST)["accuracy"]


@pytest.fixture(scope="module")
def mean_accuracy(tmp_path_factory) -> float:
    return _test_accuracy("mean", tmp_path_factory.mktemp("mean"))


def test_mean_pooling_is_at_chance_on_the_order_task(mean_accuracy):
    assert mean_accuracy < 0.65  # both labels hold the same bag of frames


@pytest.mark.parametrize("arch", ["elman", "jordan", "lstm", "gru"])
def test_recurrent_networks_learn_order(arch, mean_accuracy, tmp_path):
    acc = _test_accuracy(arch, tmp_path)
    assert acc >= 0.85, f"{arch}: test accuracy {acc:.3f}"
    assert acc - mean_accuracy >= 0.25


def test_bptt_step_clips_the_gradient_norm():
    torch.manual_seed(0)
    model = S.SequenceClassifier("elman", 8, 16, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the step leaves the clipped gradients to inspect
    x, lengths, y = torch.from_numpy(TRAIN.x[:64]), torch.from_numpy(TRAIN.lengths[:64]), torch.from_numpy(
        TRAIN.targets[:64])
    _, norm = S.bptt_step(model, opt, x, lengths, y, clip=1e-3)
    after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert norm > 1e-3 and float(after) == pytest.approx(1e-3, rel=1e-3)
    _, unclipped = S.bptt_step(model, opt, x, lengths, y, clip=0)  # 0 = measured only
    assert unclipped == pytest.approx(norm, rel=1e-4)


def test_training_reports_clipped_steps(tmp_path):
    cfg = S.SequenceConfig(arch="jordan", hidden=8, epochs=2, batch_size=100, clip=1e-4)
    rep = S.train_sequence(TRAIN, tmp_path / "j.mmseq", cfg, curves=False)
    assert rep.clipped_steps == rep.steps == 2 * 7 and all(h["clipped"] == 1.0 for h in rep.history)
    rep = S.train_sequence(TRAIN, tmp_path / "j.mmseq", S.SequenceConfig(arch="jordan", hidden=8, epochs=1,
                                                                         clip=0.0), curves=False)
    assert rep.clipped_steps == 0


@pytest.mark.parametrize("arch", S.ARCHS)
def test_label_sets_shapes_and_padding(arch, tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 6, 5)).astype(np.float32), rng.integers(0, 2, (40, 3))
    data = S.make_sequences(x, y, lengths=rng.integers(2, 7, 40), labels=["a", "b", "c"])
    assert data.multilabel and data.targets.shape == (40, 3)
    rep = S.train_sequence(data, tmp_path / "m.mmseq", S.SequenceConfig(arch=arch, hidden=8, epochs=1),
                           curves=False)
    assert rep.loss == "sigmoid" and rep.metric_name == "val_map"
    model, header = S.load_sequence_model(tmp_path / "m.mmseq")
    assert header["labels"] == ["a", "b", "c"]
    xt, lt = torch.from_numpy(data.x), torch.from_numpy(data.lengths)
    scores = model.scores(xt, lt)
    assert scores.shape == (40, 3) and bool(((scores >= 0) & (scores <= 1)).all())
    garbage = xt.clone()
    garbage[torch.arange(6)[None, :] >= lt[:, None]] = 1e3  # frames after a sequence's length are padding
    assert torch.allclose(model.scores(garbage, lt), scores, atol=1e-6)


def test_bad_data_raises_data_error(tmp_path):
    with pytest.raises(DataError):
        S.make_sequences(np.zeros((4, 3)), np.zeros(4, int))
    with pytest.raises(DataError):
        S.make_sequences(np.zeros((4, 3, 2)), np.zeros(4, int))  # one class only
    np.savez(tmp_path / "bad.npz", frames=np.zeros((4, 3, 2)))
    with pytest.raises(DataError):
        S.load_sequences(tmp_path / "bad.npz")
    (tmp_path / "junk.mmseq").write_bytes(b"nope")
    with pytest.raises(DetectorError):
        S.load_sequence_model(tmp_path / "junk.mmseq")


def test_cli_round_trip(tmp_path):
    S.save_sequences(tmp_path / "train.npz", TRAIN.subset(np.arange(200)))
    S.save_sequences(tmp_path / "test.npz", TEST.subset(np.arange(50)))
    out = tmp_path / "gru.mmseq"
    r = CliRunner().invoke(main, ["train-sequence", str(tmp_path / "train.npz"), "--arch", "gru", "--out", str(out),
                                  "--epochs", "2", "--hidden", "8", "--test", str(tmp_path / "test.npz"), "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["arch"] == "gru" and rep["train_size"] == 160 and 0 <= rep["test"]["accuracy"] <= 1
    assert out.is_file() and (tmp_path / "gru.mmseq.curves.png").is_file()
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 3)), y=np.zeros(4, int))
    r = CliRunner().invoke(main, ["train-sequence", str(tmp_path / "bad.npz"), "--out", str(out)])
    assert r.exit_code == 1 and "error:" in r.output
