"""Simple recurrent networks (Elman, Jordan), trained by back-propagation through the unfolded sequence.

Inputs are (B, T, n_in): batch first, then time. The loop is unfolded over the T steps, so the network is
as deep as the sequence is long; backward walks the steps in reverse order and adds up the parameter
gradients of every step (the weights are shared across time).
"""

from __future__ import annotations

import numpy as np

from mmindex.backprop.modules import Module, RngLike, Sigmoid, Tanh, _Pointwise, _rng

_ACTIVATIONS: dict[str, type[_Pointwise]] = {"sigmoid": Sigmoid, "tanh": Tanh}


def _uniform(r: np.random.Generator, fan_in: int, shape) -> np.ndarray:
    bound = 1.0 / np.sqrt(fan_in)
    return r.uniform(-bound, bound, shape).astype(np.float32)


class Elman(Module):
    """Elman network: h_t = σ(W_h x_t + U_h h_{t−1} + b_h), h_0 = 0; returns every h_t as (B, T, n_hidden).

    The lecture's output y_t = σ(W_y h_t + b_y) is `Linear(n_hidden, n_out)` then `Sigmoid()` after it.
    `activation` is "sigmoid" (σ, the lecture's) or "tanh".
    """

    def __init__(self, n_in: int, n_hidden: int, activation: str = "sigmoid", rng: RngLike = None) -> None:
        super().__init__()
        r, self.act = _rng(rng), _ACTIVATIONS[activation]
        self._param("W_h", _uniform(r, n_hidden, (n_hidden, n_in)))
        self._param("U_h", _uniform(r, n_hidden, (n_hidden, n_hidden)))
        self._param("b_h", _uniform(r, n_hidden, n_hidden))

    def forward(self, x: np.ndarray) -> np.ndarray:
        p = self.params
        b, steps, _ = x.shape
        self.x, self.a = x, []
        h = [np.zeros((b, len(p["b_h"])), dtype=x.dtype)]
        for t in range(steps):
            self.a.append(x[:, t] @ p["W_h"].T + h[-1] @ p["U_h"].T + p["b_h"])
            h.append(self.act.f(self.a[-1]))  # h_t = σ(W_h x_t + U_h h_{t−1} + b_h)
        self.h = h
        return np.stack(h[1:], axis=1)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        p, g = self.params, self.grads
        dx = np.zeros_like(self.x)
        dh_next = np.zeros_like(self.h[0])
        for t in reversed(range(self.x.shape[1])):
            dh = grad_out[:, t] + dh_next  # h_t feeds both the output at t and h_{t+1}
            da = dh * self.act.df(self.a[t], self.h[t + 1])  # through σ
            g["W_h"] += da.T @ self.x[:, t]
            g["U_h"] += da.T @ self.h[t]
            g["b_h"] += da.sum(0)
            dx[:, t] = da @ p["W_h"]
            dh_next = da @ p["U_h"]  # dE/dh_{t−1} through U_h
        return dx


class Jordan(Module):
    """Jordan network: h_t = σ(W_h x_t + U_h y_{t−1} + b_h), y_t = σ(W_y h_t + b_y), y_0 = 0.

    The output, not the hidden state, is fed back. Returns every y_t as (B, T, n_out).
    """

    def __init__(self, n_in: int, n_hidden: int, n_out: int, activation: str = "sigmoid", rng: RngLike = None
                 ) -> None:
        super().__init__()
        r, self.act = _rng(rng), _ACTIVATIONS[activation]
        self._param("W_h", _uniform(r, n_hidden, (n_hidden, n_in)))
        self._param("U_h", _uniform(r, n_hidden, (n_hidden, n_out)))
        self._param("b_h", _uniform(r, n_hidden, n_hidden))
        self._param("W_y", _uniform(r, n_out, (n_out, n_hidden)))
        self._param("b_y", _uniform(r, n_out, n_out))

    def forward(self, x: np.ndarray) -> np.ndarray:
        p = self.params
        b, steps, _ = x.shape
        self.x, self.a, self.h, self.c = x, [], [], []
        y = [np.zeros((b, len(p["b_y"])), dtype=x.dtype)]
        for t in range(steps):
            self.a.append(x[:, t] @ p["W_h"].T + y[-1] @ p["U_h"].T + p["b_h"])
            self.h.append(self.act.f(self.a[-1]))  # h_t = σ(W_h x_t + U_h y_{t−1} + b_h)
            self.c.append(self.h[-1] @ p["W_y"].T + p["b_y"])
            y.append(self.act.f(self.c[-1]))  # y_t = σ(W_y h_t + b_y)
        self.y = y
        return np.stack(y[1:], axis=1)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        p, g = self.params, self.grads
        dx = np.zeros_like(self.x)
        dy_next = np.zeros_like(self.y[0])
        for t in reversed(range(self.x.shape[1])):
            dy = grad_out[:, t] + dy_next  # y_t is an output and feeds h_{t+1}
            dc = dy * self.act.df(self.c[t], self.y[t + 1])
            g["W_y"] += dc.T @ self.h[t]
            g["b_y"] += dc.sum(0)
            da = (dc @ p["W_y"]) * self.act.df(self.a[t], self.h[t])
            g["W_h"] += da.T @ self.x[:, t]
            g["U_h"] += da.T @ self.y[t]
            g["b_h"] += da.sum(0)
            dx[:, t] = da @ p["W_h"]
            dy_next = da @ p["U_h"]  # dE/dy_{t−1} through U_h
        return dx
