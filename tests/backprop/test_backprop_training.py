"""SGD, schedule, penalties, fit, the layer details the lecture names, and real-data training on Fashion-MNIST."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mmindex.backprop as bp
from mmindex.backprop.data import DEFAULT_ROOT, fashion_mnist_root, load_fashion_mnist

needs_fashion_mnist = pytest.mark.skipif(not (fashion_mnist_root() / "t10k-images-idx3-ubyte.gz").exists(),
                                         reason=f"Fashion-MNIST not in {DEFAULT_ROOT} (Debian dataset-fashion-mnist)")


def test_sgd_matches_torch_with_momentum_and_weight_decay():
    r = np.random.default_rng(0)
    w0, grads = r.standard_normal((3, 4)), [r.standard_normal((3, 4)) for _ in range(4)]
    w, g = w0.copy(), np.zeros_like(w0)
    opt = bp.SGD([(w, g)], lr=0.1, momentum=0.9, weight_decay=0.01)
    wt = torch.tensor(w0, requires_grad=True)
    topt = torch.optim.SGD([wt], lr=0.1, momentum=0.9, weight_decay=0.01)
    for gi in grads:
        opt.zero_grad()
        g += gi
        opt.step()
        topt.zero_grad()
        wt.grad = torch.tensor(gi)
        topt.step()
    np.testing.assert_allclose(w, wt.detach().numpy(), rtol=1e-12)


def test_step_schedule():
    assert [bp.step_lr(e, 0.1, step=2, factor=10) for e in range(5)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])


def test_penalty_starts_at_its_epoch_and_spares_biases():
    net = bp.Sequential(bp.Linear(3, 2, rng=0)).astype(np.float64)
    pen = bp.Penalty(l1=0.1, l2=0.5, start_epoch=2)
    pen.add_gradients(net, epoch=1)
    assert not any(g.any() for g in net.grads.values())
    pen.add_gradients(net, epoch=2)
    w = net.params["0.W"]
    np.testing.assert_allclose(net.grads["0.W"], 0.1 * np.sign(w) + 0.5 * w)
    assert not net.grads["0.B"].any()


def test_conv_padding_names_give_the_lecture_sizes():
    x = np.zeros((1, 1, 7, 7))
    sizes = {p: bp.Conv2d(1, 1, 3, padding=p).forward(x).shape[-1] for p in ("no", "half", "full")}
    assert sizes == {"no": 5, "half": 7, "full": 9}
    assert bp.Conv2d(1, 1, 3, stride=2, padding="half").forward(x).shape[-1] == 4


def test_max_pooling_tie_sends_the_gradient_to_one_input():
    pool = bp.MaxPool2d(2)
    x = np.ones((1, 1, 2, 2))
    assert pool.forward(x)[0, 0, 0, 0] == 1
    g = pool.backward(np.full((1, 1, 1, 1), 3.0))
    assert g.sum() == 3.0 and (g != 0).sum() == 1 and g[0, 0, 0, 0] == 3.0  # the first maximum, as PyTorch


def test_dropout_expectation_in_training_equals_prediction_output():
    drop = bp.Dropout(0.3, rng=0)
    x = np.random.default_rng(1).standard_normal((4, 50))
    mean = np.mean([drop.forward(x) for _ in range(4000)], axis=0)
    kept = np.mean([(drop.forward(x) != 0).mean() for _ in range(200)])
    assert kept == pytest.approx(0.7, abs=0.01)
    expected = drop.eval().forward(x)  # every unit, times the compensating factor 1 − p
    np.testing.assert_allclose(expected, 0.7 * x)
    np.testing.assert_allclose(mean, expected, atol=0.08)
    np.testing.assert_allclose(drop.backward(np.ones_like(x)), np.full_like(x, 0.7))


def test_graph_rejects_unknown_inputs_and_sums_forks():
    g = bp.Graph()
    with pytest.raises(ValueError):
        g.add("a", bp.ReLU(), "nope")
    g.add("a", bp.Tanh()).add("b", bp.Sigmoid()).add("sum", bp.Add(), ["a", "b", "input"])
    x = np.random.default_rng(0).standard_normal((2, 3))
    g.forward(x)
    grad = g.backward(np.ones((2, 3)))
    np.testing.assert_allclose(grad, (1 - np.tanh(x) ** 2) + bp.Sigmoid.df(x, bp.Sigmoid.f(x)) + 1)


class _WrongLinear(bp.Linear):  # "_" keeps it out of the module registry
    def backward(self, grad_out):
        return 1.01 * super().backward(grad_out)


def test_gradcheck_catches_a_wrong_backward():
    with pytest.raises(bp.GradcheckError, match="input 0"):
        bp.gradcheck(_WrongLinear(3, 2, rng=0), np.random.default_rng(0).standard_normal((2, 3)))


def test_fit_reduces_the_loss_and_reports_accuracy():
    r = np.random.default_rng(0)
    x = r.standard_normal((400, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)  # XOR of the signs: needs the hidden layer
    net = bp.Sequential(bp.Linear(2, 16, rng=1), bp.Tanh(), bp.Linear(16, 2, rng=2))
    seen = []
    h = bp.fit(net, bp.SoftmaxCrossEntropy(), bp.SGD(net, 0.1, momentum=0.9), x, y, epochs=30, batch_size=20,
               on_epoch=seen.append, validation=(x, y))
    assert len(seen) == 30 and h.column("train_loss")[-1] < 0.5 * h.column("train_loss")[0]
    assert h.epochs[-1].val_acc > 0.9


@needs_fashion_mnist
def test_fashion_mnist_loader():
    d = load_fashion_mnist(n_train=1000, n_test=100, images=True)
    assert d.x_train.shape == (1000, 1, 28, 28) and d.x_test.shape == (100, 1, 28, 28)
    assert d.x_train.dtype == np.float32 and abs(float(d.x_train.mean())) < 1e-3
    assert set(np.unique(d.y_train)) == set(range(10))


@needs_fashion_mnist
def test_mlp_learns_fashion_mnist():
    d = load_fashion_mnist(n_train=5000, n_test=1000)
    net = bp.Sequential(bp.Linear(784, 128, rng=0), bp.ReLU(), bp.Linear(128, 10, rng=1))
    h = bp.fit(net, bp.SoftmaxCrossEntropy(), bp.SGD(net, 0.05, momentum=0.9), d.x_train, d.y_train, epochs=4,
               batch_size=64, validation=(d.x_test, d.y_test))
    assert h.epochs[-1].val_acc >= 0.80  # the published scikit-learn baselines reach ~0.85-0.89 on all 60k


@needs_fashion_mnist
def test_small_cnn_learns_fashion_mnist():
    d = load_fashion_mnist(n_train=2000, n_test=500, images=True)
    net = bp.Sequential(bp.Conv2d(1, 4, 5, padding="half", rng=0), bp.ReLU(), bp.MaxPool2d(2), bp.Flatten(),
                        bp.Linear(4 * 14 * 14, 10, rng=1))
    h = bp.fit(net, bp.SoftmaxCrossEntropy(), bp.SGD(net, 0.05, momentum=0.9), d.x_train, d.y_train, epochs=2,
               batch_size=64, validation=(d.x_test, d.y_test))
    assert h.epochs[-1].val_acc >= 0.70


@needs_fashion_mnist
def test_demo_returns_the_curve_and_writes_a_png(tmp_path, capsys):
    from mmindex.backprop.demo import run_demo

    seen = []
    result = run_demo(tmp_path / "curve.png", n_train=1000, epochs=2, on_epoch=seen.append)
    assert result.out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [s.epoch for s in result.history.epochs] == [s.epoch for s in seen] and len(seen) == 2
    assert result.images == 1000 and result.parameters == 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
    assert capsys.readouterr().out == ""  # library code does not print


@needs_fashion_mnist
def test_learn_demo_command_prints_the_curve(tmp_path):
    from click.testing import CliRunner

    from mmindex.cli import main

    out = tmp_path / "curve.png"
    r = CliRunner().invoke(main, ["learn-demo", "--n-train", "1000", "--epochs", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "test acc" in r.output and len([line for line in r.output.splitlines() if "%" in line]) == 2
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_learn_demo_without_the_data_is_a_one_line_error(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from mmindex.backprop.data import DatasetMissing
    from mmindex.cli import main

    def missing(**_):
        raise DatasetMissing("Fashion-MNIST not found")

    monkeypatch.setattr("mmindex.backprop.demo.load_fashion_mnist", missing)
    r = CliRunner().invoke(main, ["learn-demo", "--out", str(tmp_path / "c.png")])
    assert r.exit_code == 1 and "error: Fashion-MNIST not found" in r.output and r.exception is not None
