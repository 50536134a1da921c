"""The lecture's layer modules: X_out = F(W, X_in), with a data and a parameter backward pass.

Every module keeps what its backward pass needs from the last `forward`, so a module is used once per
forward/backward pair. Parameter gradients are *accumulated* (+=) until `zero_grad()`, which is the
lecture's "accumulate gradients over the batch, then update". The batch dimension comes first.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

RngLike = np.random.Generator | int | None

#: Every concrete module class by name, filled in by `Module.__init_subclass__`; the tests are generated from it.
MODULES: dict[str, type[Module]] = {}


class Module:
    """A layer module F(W, ·): `forward`, `backward`, `params`/`grads` (same keys), `zero_grad`, `train`/`eval`."""

    registry: ClassVar[dict[str, type[Module]]] = MODULES

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            MODULES[cls.__name__] = cls

    def __init__(self) -> None:
        self._params: dict[str, np.ndarray] = {}
        self._grads: dict[str, np.ndarray] = {}
        self.training = True

    def _param(self, name: str, value: np.ndarray) -> None:
        self._params[name] = value
        self._grads[name] = np.zeros_like(value)

    @property
    def params(self) -> dict[str, np.ndarray]:
        """The parameters W of this module, name → array (updated in place by the optimiser)."""
        return self._params

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """dE/dW for each parameter, accumulated over backward calls since the last `zero_grad`."""
        return self._grads

    def forward(self, x):
        """Feed-forward: X_out = F(W, X_in)."""
        raise NotImplementedError

    def backward(self, grad_out):
        """Given dE/dX_out, accumulate dE/dW into `grads` and return dE/dX_in."""
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def zero_grad(self) -> None:
        """Reset the accumulated parameter gradients to zero."""
        for g in self.grads.values():
            g[...] = 0

    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout drops); `eval()` is prediction mode."""
        self.training = mode
        for child in self.children():
            child.train(mode)
        return self

    def eval(self) -> Module:
        """Prediction mode."""
        return self.train(False)

    def children(self) -> list[Module]:
        """Sub-modules (containers only)."""
        return []

    def astype(self, dtype) -> Module:
        """Convert parameters and gradients in place to `dtype` (float64 for checks, float32 for speed)."""
        for child in self.children():
            child.astype(dtype)
        for name in list(self._params):
            self._params[name] = self._params[name].astype(dtype)
            self._grads[name] = self._grads[name].astype(dtype)
        return self

    def n_params(self) -> int:
        """Number of scalar parameters."""
        return sum(p.size for p in self.params.values())


def _rng(rng: RngLike) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


class Linear(Module):
    """Linear module X_out = W · X_in + B, batched as (B, ..., n_in) → (B, ..., n_out).

    W has shape (n_out, n_in) as in the lecture; it starts uniform in ±1/√n_in (as PyTorch's default).
    """

    def __init__(self, n_in: int, n_out: int, bias: bool = True, rng: RngLike = None) -> None:
        super().__init__()
        r, bound = _rng(rng), 1.0 / np.sqrt(n_in)
        self._param("W", r.uniform(-bound, bound, (n_out, n_in)).astype(np.float32))
        if bias:
            self._param("B", r.uniform(-bound, bound, n_out).astype(np.float32))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        out = x @ self.params["W"].T  # linear module: X_out = W · X_in
        if "B" in self.params:
            out += self.params["B"]
        return out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        g2 = grad_out.reshape(-1, grad_out.shape[-1])
        # parameter backward pass: dE/dW = X_in · dE/dX_out (outer product, summed over the batch)
        self.grads["W"] += g2.T @ self.x.reshape(-1, self.x.shape[-1])
        if "B" in self.params:
            self.grads["B"] += g2.sum(0)  # dE/dB = dE/dX_out
        return grad_out @ self.params["W"]  # data backward pass: dE/dX_in = dE/dX_out · W


class _Pointwise(Module):
    """Pointwise module X_out = f(X_in); data backward pass dE/dX_in = dE/dX_out ∘ f'(X_in)."""

    @staticmethod
    def f(y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def df(y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """f'(y), given y and z = f(y)."""
        raise NotImplementedError

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x, self.out = x, self.f(x)
        return self.out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out * self.df(self.x, self.out)  # Hadamard product: dE/dX_in = dE/dX_out ∘ f'(X_in)


class Sigmoid(_Pointwise):
    """σ(y) = 1 / (1 + e^(−y)), computed as (1 + tanh(y/2)) / 2 so that it never overflows."""

    @staticmethod
    def f(y):
        return 0.5 * (1.0 + np.tanh(0.5 * y))  # sigmoid: z = 1 / (1 + e^−y)

    @staticmethod
    def df(y, z):
        return z * (1.0 - z)  # σ'(y) = σ(y)(1 − σ(y))


class Tanh(_Pointwise):
    """z = tanh y."""

    @staticmethod
    def f(y):
        return np.tanh(y)

    @staticmethod
    def df(y, z):
        return 1.0 - z * z  # tanh'(y) = 1 − tanh²(y)


class ReLU(_Pointwise):
    """Rectified linear unit z = max(0, y)."""

    @staticmethod
    def f(y):
        return np.maximum(y, 0)

    @staticmethod
    def df(y, z):
        return (y > 0).astype(y.dtype)  # ReLU'(y) = 1 if y > 0 else 0


class PReLU(Module):
    """Programmable ReLU z = max(αy, y) with α learned (α ⊂ W); one α shared by all units."""

    def __init__(self, alpha: float = 0.25) -> None:
        super().__init__()
        self._param("alpha", np.array([alpha], dtype=np.float32))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return np.where(x > 0, x, self.params["alpha"][0] * x)  # z = max(αy, y) for α < 1

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        neg = self.x <= 0
        self.grads["alpha"] += np.sum(grad_out * self.x * neg)  # dE/dα = Σ dE/dz · y over y ≤ 0
        return np.where(neg, self.params["alpha"][0] * grad_out, grad_out)


def _pad_amount(padding: int | str, k: int) -> int:
    """The lecture's named paddings: "no" (0), "half" (k // 2, same size for odd k) and "full" (k − 1)."""
    if isinstance(padding, str):
        return {"no": 0, "none": 0, "half": k // 2, "same": k // 2, "full": k - 1}[padding]
    return int(padding)


def _windows(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    """(B, C, H, W) → a (B, C, H_out, W_out, k, k) view of every k×k window (no copy)."""
    return sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]


def _fold(d: np.ndarray, shape: tuple[int, ...], stride: int) -> np.ndarray:
    """Adjoint of `_windows` (col2im): add each window's gradient back where it was read from.

    `d` holds the gradient of every window element as (k, k, B, C, H_out, W_out).
    """
    dx = np.zeros(shape, dtype=d.dtype)
    k, _, b, c, ho, wo = d.shape
    if stride == k:  # windows do not overlap: folding is a reshape
        dx[:, :, : ho * k, : wo * k] = d.transpose(2, 3, 4, 0, 5, 1).reshape(b, c, ho * k, wo * k)
        return dx
    for m in range(k):
        for n in range(k):
            dx[:, :, m : m + stride * ho : stride, n : n + stride * wo : stride] += d[m, n]
    return dx


class Conv2d(Module):
    """Convolutional layer O(l, i, j) = B(l) + Σ_(k,m,n) K(l, k, m, n) · I(k, i + m, j + n), through im2col.

    Like PyTorch (and most libraries) the kernel is applied without flipping (cross-correlation): the
    lecture's I(k, i − m, j − n) is the same layer with K's (m, n) reversed. `padding` is 0 / "no",
    "half" or "full" as in the lecture's animations, or a number of pixels.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int | str = 0,
                 bias: bool = True, rng: RngLike = None) -> None:
        super().__init__()
        self.kernel, self.stride, self.pad = kernel, stride, _pad_amount(padding, kernel)
        r, bound = _rng(rng), 1.0 / np.sqrt(c_in * kernel * kernel)
        self._param("K", r.uniform(-bound, bound, (c_out, c_in, kernel, kernel)).astype(np.float32))
        if bias:
            self._param("B", r.uniform(-bound, bound, c_out).astype(np.float32))

    def forward(self, x: np.ndarray) -> np.ndarray:
        p = self.pad
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x
        self.xp_shape = xp.shape
        win = _windows(xp, self.kernel, self.stride)  # (B, C, Ho, Wo, k, k)
        b, c, ho, wo, k, _ = win.shape
        # im2col: one column per output location (b, i, j), one row per weight (k, m, n)
        self.cols = win.transpose(1, 4, 5, 0, 2, 3).reshape(c * k * k, b * ho * wo)
        K = self.params["K"].reshape(len(self.params["K"]), -1)
        out = K @ self.cols  # "all to all" across maps: one matrix product for every location
        if "B" in self.params:
            out += self.params["B"][:, None]  # + B(l)
        return out.reshape(-1, b, ho, wo).transpose(1, 0, 2, 3)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        b, c_out, ho, wo = grad_out.shape
        g = grad_out.transpose(1, 0, 2, 3).reshape(c_out, -1)
        K = self.params["K"]
        self.grads["K"] += (g @ self.cols.T).reshape(K.shape)  # dE/dK = dE/dO · windows of X_in
        if "B" in self.params:
            self.grads["B"] += g.sum(1)  # dE/dB(l) = Σ_(i,j) dE/dO(l, i, j)
        dcols = K.reshape(c_out, -1).T @ g  # dE/dX_in for every window element, folded back (col2im)
        k = self.kernel
        dx = _fold(dcols.reshape(-1, k, k, b, ho, wo).transpose(1, 2, 3, 0, 4, 5), self.xp_shape, self.stride)
        p = self.pad
        return dx[:, :, p:-p, p:-p] if p else dx


class _Pool(Module):
    def __init__(self, kernel: int = 2, stride: int | None = None) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride or kernel


class MaxPool2d(_Pool):
    """Max pooling over k×k windows; the gradient goes to the first maximum of each window (as PyTorch)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        win = _windows(x, self.kernel, self.stride)
        flat = win.reshape(*win.shape[:4], -1)
        self.arg, self.x_shape, self.win_shape = flat.argmax(-1), x.shape, win.shape
        return np.take_along_axis(flat, self.arg[..., None], -1)[..., 0]  # O = max over the window

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        dflat = np.zeros((*grad_out.shape, self.kernel * self.kernel), dtype=grad_out.dtype)
        np.put_along_axis(dflat, self.arg[..., None], grad_out[..., None], -1)  # dE/dI = dE/dO at the argmax
        return _fold(dflat.reshape(self.win_shape).transpose(4, 5, 0, 1, 2, 3), self.x_shape, self.stride)


class AvgPool2d(_Pool):
    """Average pooling over k×k windows."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x_shape = x.shape
        return _windows(x, self.kernel, self.stride).mean(axis=(-2, -1))  # O = mean over the window

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        k = self.kernel
        dwin = np.broadcast_to((grad_out / (k * k))[..., None, None], (*grad_out.shape, k, k))  # dE/dI = dE/dO / k²
        return _fold(dwin.transpose(4, 5, 0, 1, 2, 3), self.x_shape, self.stride)


class Dropout(Module):
    """Dropout: in training each unit is kept with probability 1 − p; at prediction time every unit is
    kept and multiplied by the compensating factor 1 − p (the lecture's form, so that expectations match).

    `fixed_mask`, when set, replaces the random mask (for checks).
    """

    def __init__(self, p: float = 0.5, rng: RngLike = None) -> None:
        super().__init__()
        self.p, self.rng, self.fixed_mask = p, _rng(rng), None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.training:
            if self.fixed_mask is not None:
                self.mask = self.fixed_mask.astype(x.dtype)
            else:
                self.mask = (self.rng.random(x.shape) >= self.p).astype(x.dtype)
        else:
            self.mask = np.asarray(1.0 - self.p, dtype=x.dtype)  # prediction: compensate by (1 − p)
        return x * self.mask

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out * self.mask


class Flatten(Module):
    """(B, C, H, W) → (B, C·H·W): from the convolutional maps to the fully connected layers."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.shape = x.shape
        return x.reshape(len(x), -1)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out.reshape(self.shape)
