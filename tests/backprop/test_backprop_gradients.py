"""Every module and loss against torch.autograd (forward, dE/dX_in, dE/dW to 1e-6 relative) and finite differences.

The cases are keyed by module class: `test_every_module_has_a_case` fails when a module is added to
`mmindex.backprop` without a case here, so no module can skip these checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mmindex.backprop as bp
from mmindex.backprop import LOSSES, MODULES, gradcheck

RTOL, ATOL = 1e-6, 1e-10


def away_from_zero(x: np.ndarray) -> np.ndarray:
    """Keep inputs off the kinks of ReLU/PReLU, where finite differences are meaningless."""
    return np.sign(x) * (np.abs(x) + 0.05)


@dataclass
class Case:
    build: Callable[[], bp.Module]
    inputs: Callable[[np.random.Generator], object]
    torch_fn: Callable  # (module, inputs as tensors, params as tensors) -> output tensor
    train: bool = True
    finite_differences: bool = True


def _conv_case(stride: int, padding) -> Case:
    def ref(m, x, P):
        return F.conv2d(x, P["K"], P["B"], stride=stride, padding=m.pad)
    return Case(lambda: bp.Conv2d(2, 3, 3, stride=stride, padding=padding, rng=1),
                lambda r: r.standard_normal((2, 2, 7, 6)), ref)


def _dropout_case(train: bool) -> Case:
    def build():
        m = bp.Dropout(0.3, rng=2)
        m.fixed_mask = np.random.default_rng(3).random((3, 5)) >= 0.3
        return m
    return Case(build, lambda r: r.standard_normal((3, 5)),
                lambda m, x, P: x * torch.from_numpy(np.asarray(m.mask, dtype=np.float64)), train=train)


def _sequential_ref(m, x, P):
    return F.linear(torch.tanh(F.linear(x, P["0.W"], P["0.B"])), P["2.W"], P["2.B"])


def _graph_build() -> bp.Graph:
    g = bp.Graph()
    g.add("fc1", bp.Linear(4, 4, rng=4)).add("act", bp.Tanh(), "fc1")
    g.add("sum", bp.Add(), ["act", "input"])  # fork of the input, join by sum (a shortcut)
    g.add("fc2", bp.Linear(4, 3, rng=5), "input")
    g.add("cat", bp.Concat(), ["sum", "fc2", "act"])
    return g


def _graph_ref(m, x, P):
    act = torch.tanh(F.linear(x, P["fc1.W"], P["fc1.B"]))
    return torch.cat([act + x, F.linear(x, P["fc2.W"], P["fc2.B"]), act], dim=1)


def _elman_ref(m, x, P):
    h, hs = torch.zeros(x.shape[0], P["b_h"].shape[0], dtype=x.dtype), []
    for t in range(x.shape[1]):
        h = torch.sigmoid(x[:, t] @ P["W_h"].T + h @ P["U_h"].T + P["b_h"])
        hs.append(h)
    return torch.stack(hs, 1)


def _jordan_ref(m, x, P):
    y, ys = torch.zeros(x.shape[0], P["b_y"].shape[0], dtype=x.dtype), []
    for t in range(x.shape[1]):
        h = torch.tanh(x[:, t] @ P["W_h"].T + y @ P["U_h"].T + P["b_h"])
        y = torch.tanh(h @ P["W_y"].T + P["b_y"])
        ys.append(y)
    return torch.stack(ys, 1)


def _w2v_build(cls):
    def build():
        m = cls(7, 3, rng=6)
        m.params["W_dec"][...] = np.random.default_rng(7).standard_normal((7, 3))
        return m
    return build


def _cbow_ref(m, x, P):
    mask = (x >= 0).to(P["W_enc"].dtype)
    h = (P["W_enc"][x.clamp(min=0)] * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
    return h @ P["W_dec"].T


CASES: dict[str, Case] = {
    "Linear": Case(lambda: bp.Linear(5, 4, rng=0), lambda r: r.standard_normal((3, 5)),
                   lambda m, x, P: F.linear(x, P["W"], P["B"])),
    "Linear-nobias-3d": Case(lambda: bp.Linear(5, 4, bias=False, rng=0), lambda r: r.standard_normal((2, 3, 5)),
                             lambda m, x, P: F.linear(x, P["W"])),
    "Sigmoid": Case(bp.Sigmoid, lambda r: 3 * r.standard_normal((3, 4)), lambda m, x, P: torch.sigmoid(x)),
    "Tanh": Case(bp.Tanh, lambda r: r.standard_normal((3, 4)), lambda m, x, P: torch.tanh(x)),
    "ReLU": Case(bp.ReLU, lambda r: away_from_zero(r.standard_normal((3, 4))), lambda m, x, P: torch.relu(x)),
    "PReLU": Case(lambda: bp.PReLU(0.2), lambda r: away_from_zero(r.standard_normal((3, 4))),
                  lambda m, x, P: F.prelu(x, P["alpha"])),
    "Conv2d-s1-no": _conv_case(1, 0),
    "Conv2d-s1-half": _conv_case(1, "half"),
    "Conv2d-s1-full": _conv_case(1, "full"),
    "Conv2d-s2-no": _conv_case(2, "no"),
    "Conv2d-s2-half": _conv_case(2, "half"),
    "Conv2d-s2-full": _conv_case(2, "full"),
    "MaxPool2d": Case(lambda: bp.MaxPool2d(2), lambda r: r.standard_normal((2, 3, 6, 6)),
                      lambda m, x, P: F.max_pool2d(x, 2)),
    "MaxPool2d-overlap": Case(lambda: bp.MaxPool2d(3, stride=2), lambda r: r.standard_normal((2, 2, 7, 7)),
                              lambda m, x, P: F.max_pool2d(x, 3, 2)),
    # ties: the gradient goes to the first maximum of the window, as in PyTorch (not differentiable there)
    "MaxPool2d-ties": Case(lambda: bp.MaxPool2d(2), lambda r: r.integers(0, 2, (2, 2, 6, 6)).astype(float),
                           lambda m, x, P: F.max_pool2d(x, 2), finite_differences=False),
    "AvgPool2d": Case(lambda: bp.AvgPool2d(2), lambda r: r.standard_normal((2, 3, 6, 6)),
                      lambda m, x, P: F.avg_pool2d(x, 2)),
    "AvgPool2d-overlap": Case(lambda: bp.AvgPool2d(3, stride=2), lambda r: r.standard_normal((2, 2, 7, 7)),
                              lambda m, x, P: F.avg_pool2d(x, 3, 2)),
    "Dropout-train": _dropout_case(True),
    "Dropout-eval": _dropout_case(False),
    "Flatten": Case(bp.Flatten, lambda r: r.standard_normal((2, 3, 2, 2)), lambda m, x, P: x.reshape(2, -1)),
    "Sequential": Case(lambda: bp.Sequential(bp.Linear(4, 5, rng=0), bp.Tanh(), bp.Linear(5, 3, rng=1)),
                       lambda r: r.standard_normal((3, 4)), _sequential_ref),
    "Graph": Case(_graph_build, lambda r: r.standard_normal((3, 4)), _graph_ref),
    "Add": Case(bp.Add, lambda r: [r.standard_normal((3, 4)) for _ in range(3)], lambda m, xs, P: sum(xs)),
    "Concat": Case(bp.Concat, lambda r: [r.standard_normal((2, k, 3)) for k in (1, 2, 3)],
                   lambda m, xs, P: torch.cat(xs, 1)),
    "Elman": Case(lambda: bp.Elman(3, 4, rng=0), lambda r: r.standard_normal((2, 5, 3)), _elman_ref),
    "Jordan": Case(lambda: bp.Jordan(3, 4, 2, activation="tanh", rng=0), lambda r: r.standard_normal((2, 5, 3)),
                   _jordan_ref),
    "SkipGram": Case(_w2v_build(bp.SkipGram), lambda r: np.array([0, 3, 3, 6]),
                     lambda m, x, P: P["W_enc"][x] @ P["W_dec"].T),
    "CBOW": Case(_w2v_build(bp.CBOW), lambda r: np.array([[0, 1, 2, 2], [3, -1, 5, -1], [6, 6, -1, -1]]),
                 _cbow_ref),
}


def test_every_module_has_a_case():
    covered = {name.split("-")[0] for name in CASES}
    assert covered == set(MODULES), f"modules without a test case: {set(MODULES) - covered}"


def _as_tensors(x):
    if isinstance(x, list):
        return [_as_tensors(v) for v in x]
    t = torch.from_numpy(np.array(x))
    return t.requires_grad_() if t.is_floating_point() else t


def _grads(x):
    return [v.grad for v in x] if isinstance(x, list) else [x.grad]


@pytest.mark.parametrize("name", sorted(CASES))
def test_module_matches_torch_autograd(name):
    case = CASES[name]
    m = case.build().astype(np.float64).train(case.train)
    x = case.inputs(np.random.default_rng(0))
    out = m.forward(x)
    grad_out = np.random.default_rng(1).standard_normal(out.shape)
    m.zero_grad()
    grad_in = m.backward(grad_out)

    P = {k: torch.tensor(v, requires_grad=True) for k, v in m.params.items()}
    xt = _as_tensors(x)
    out_t = case.torch_fn(m, xt, P)
    (out_t * torch.from_numpy(grad_out)).sum().backward()

    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg="forward")
    assert out.dtype == np.float64
    for i, g in enumerate(_grads(xt)):
        if g is not None:  # integer inputs (word ids) have no gradient
            mine = grad_in[i] if isinstance(x, list) else grad_in
            np.testing.assert_allclose(mine, g.numpy(), rtol=RTOL, atol=ATOL, err_msg=f"dE/dX_in[{i}]")
    assert set(m.params) == set(m.grads)
    for k in m.params:
        np.testing.assert_allclose(m.grads[k], P[k].grad.numpy(), rtol=RTOL, atol=ATOL, err_msg=f"dE/d{k}")


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c.finite_differences))
def test_module_matches_finite_differences(name):
    case = CASES[name]
    m = case.build().train(case.train)
    assert gradcheck(m, case.inputs(np.random.default_rng(0)))


def _soft(r, shape):
    return bp.losses.softmax(r.standard_normal(shape))


@dataclass
class LossCase:
    build: Callable[[], bp.Loss]
    pred: Callable[[np.random.Generator], np.ndarray]
    target: Callable[[np.random.Generator], np.ndarray]
    torch_fn: Callable


LOSS_CASES: dict[str, LossCase] = {
    "MSE": LossCase(bp.MSE, lambda r: r.standard_normal((4, 3)), lambda r: r.standard_normal((4, 3)),
                    lambda p, t: 0.5 * ((p - t) ** 2).sum() / len(p)),
    "MSE-sum": LossCase(lambda: bp.MSE(reduction="sum"), lambda r: r.standard_normal((4, 3)),
                        lambda r: r.standard_normal((4, 3)), lambda p, t: 0.5 * ((p - t) ** 2).sum()),
    "SoftmaxCrossEntropy-ids": LossCase(bp.SoftmaxCrossEntropy, lambda r: r.standard_normal((5, 4)),
                                        lambda r: r.integers(0, 4, 5), F.cross_entropy),
    "SoftmaxCrossEntropy-onehot": LossCase(bp.SoftmaxCrossEntropy, lambda r: r.standard_normal((5, 4)),
                                           lambda r: np.eye(4)[r.integers(0, 4, 5)], F.cross_entropy),
    "SoftmaxCrossEntropy-soft": LossCase(
        lambda: bp.SoftmaxCrossEntropy("sum"), lambda r: r.standard_normal((5, 4)), lambda r: _soft(r, (5, 4)),
        lambda p, t: F.cross_entropy(p, t, reduction="sum")),
    "SoftmaxCrossEntropy-large": LossCase(bp.SoftmaxCrossEntropy, lambda r: 800 * r.standard_normal((5, 4)),
                                          lambda r: r.integers(0, 4, 5), F.cross_entropy),
    "SigmoidCrossEntropy": LossCase(bp.SigmoidCrossEntropy, lambda r: r.standard_normal((5, 4)),
                                    lambda r: r.integers(0, 2, (5, 4)).astype(float),
                                    lambda p, t: F.binary_cross_entropy_with_logits(p, t, reduction="sum") / len(p)),
    "SigmoidCrossEntropy-soft-large": LossCase(
        bp.SigmoidCrossEntropy, lambda r: 500 * r.standard_normal((5, 4)), lambda r: r.random((5, 4)),
        lambda p, t: F.binary_cross_entropy_with_logits(p, t, reduction="sum") / len(p)),
}


def test_every_loss_has_a_case():
    assert {name.split("-")[0] for name in LOSS_CASES} == set(LOSSES)


@pytest.mark.parametrize("name", sorted(LOSS_CASES))
def test_loss_matches_torch_and_finite_differences(name):
    case, r = LOSS_CASES[name], np.random.default_rng(0)
    pred, target = case.pred(r), case.target(r)
    loss = case.build()
    value = loss.forward(pred, target)
    grad = loss.backward()
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    pt = torch.tensor(pred, requires_grad=True)
    ref = case.torch_fn(pt, torch.from_numpy(target))
    ref.backward()
    np.testing.assert_allclose(value, ref.item(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(grad, pt.grad.numpy(), rtol=RTOL, atol=ATOL)
    if "large" not in name:  # finite differences need a smooth neighbourhood
        assert gradcheck(loss, (pred, target))
