"""Finite differences against backward: f(x + h) = f(x) + f'(x)·h + o(h), checked element by element."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmindex.backprop.losses import Loss
from mmindex.backprop.modules import Module
from mmindex.errors import MmindexError


class GradcheckError(MmindexError):
    """A backward pass disagrees with finite differences."""


def _numeric(f, x: np.ndarray, eps: float) -> np.ndarray:
    """Central differences (f(x + ε) − f(x − ε)) / 2ε for every element of x (x is perturbed in place)."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        fp = f()
        x[i] = old - eps
        fm = f()
        x[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def _compare(name: str, analytic: np.ndarray, numeric: np.ndarray, rtol: float, atol: float) -> None:
    if not np.allclose(analytic, numeric, rtol=rtol, atol=atol):
        err = np.max(np.abs(analytic - numeric))
        raise GradcheckError(f"gradient of {name}: backward and finite differences differ by up to {err:.3g}")


def gradcheck(module_or_loss: Module | Loss, inputs, eps: float = 1e-6, rtol: float = 1e-5,
              atol: float = 1e-7, seed: int = 0) -> bool:
    """Check `backward` against central finite differences, in float64.

    For a module, `inputs` is what `forward` takes (an array, or a list of arrays for a join); the scalar
    checked is E = Σ R ∘ F(W, X_in) for a fixed random R, so dE/dX_out = R. Both the data gradient dE/dX_in
    (of every float input) and the parameter gradients dE/dW are checked. For a loss, `inputs` is
    (pred, target) and dE/dpred is checked. The module is converted to float64 in place.
    Returns True, or raises `GradcheckError`.
    """
    if isinstance(module_or_loss, Loss):
        loss = module_or_loss
        pred, target = (np.array(a, dtype=np.float64) if np.issubdtype(np.asarray(a).dtype, np.floating)
                        else np.asarray(a) for a in inputs)
        loss.forward(pred, target)
        _compare("pred", loss.backward(), _numeric(lambda: loss.forward(pred, target), pred, eps), rtol, atol)
        return True

    m = module_or_loss.astype(np.float64)
    is_list = isinstance(inputs, Sequence) and not isinstance(inputs, np.ndarray)
    xs = [np.array(x, dtype=np.float64) if np.issubdtype(np.asarray(x).dtype, np.floating) else np.asarray(x)
          for x in (inputs if is_list else [inputs])]
    arg = xs if is_list else xs[0]
    r = np.random.default_rng(seed).standard_normal(np.shape(m.forward(arg)))

    def energy() -> float:
        return float(np.sum(r * m.forward(arg)))

    m.zero_grad()
    m.forward(arg)
    g_in = m.backward(r)
    g_in = g_in if is_list else [g_in]
    analytic_w = {k: v.copy() for k, v in m.grads.items()}
    for j, x in enumerate(xs):
        if np.issubdtype(x.dtype, np.floating):
            _compare(f"input {j}", g_in[j], _numeric(energy, x, eps), rtol, atol)
    params = m.params
    for k, p in params.items():
        _compare(k, analytic_w[k], _numeric(energy, p, eps), rtol, atol)
    return True
