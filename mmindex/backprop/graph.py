"""Containers: `Sequential` (the lecture's composition ∘_n F_n(W_n)) and `Graph` (joins and forks, no cycles)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmindex.backprop.modules import Module


class _Container(Module):
    """Parameters of the sub-modules under "child.name" keys (the lecture's W = (W_1, W_2 … W_N))."""

    def named_children(self) -> list[tuple[str, Module]]:
        raise NotImplementedError

    def children(self) -> list[Module]:
        return [m for _, m in self.named_children()]

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {f"{n}.{k}": v for n, m in self.named_children() for k, v in m.params.items()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return {f"{n}.{k}": v for n, m in self.named_children() for k, v in m.grads.items()}


class Sequential(_Container):
    """O = (F_N(W_N) ∘ … ∘ F_1(W_1))(I): forward in order, backward in reverse order."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        self.modules = list(modules)

    def named_children(self) -> list[tuple[str, Module]]:
        return [(str(i), m) for i, m in enumerate(self.modules)]

    def forward(self, x):
        for m in self.modules:
            x = m.forward(x)  # feed forward: X_n = F_n(W_n, X_{n−1})
        return x

    def backward(self, grad_out):
        for m in reversed(self.modules):
            grad_out = m.backward(grad_out)  # backward recurrence: dE/dX_{n−1} = dE/dX_n · ∂X_n/∂X_{n−1}
        return grad_out

    def __getitem__(self, i: int) -> Module:
        return self.modules[i]

    def __len__(self) -> int:
        return len(self.modules)


class Add(Module):
    """Join by sum: X_out = Σ_j X_j; each input receives dE/dX_out unchanged."""

    def forward(self, xs: Sequence[np.ndarray]) -> np.ndarray:
        self.n = len(xs)
        return sum(xs[1:], xs[0].copy())

    def backward(self, grad_out: np.ndarray) -> list[np.ndarray]:
        return [grad_out] * self.n


class Concat(Module):
    """Join by concatenation along `axis` (1: features or feature maps); the gradient is split back."""

    def __init__(self, axis: int = 1) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, xs: Sequence[np.ndarray]) -> np.ndarray:
        self.splits = np.cumsum([x.shape[self.axis] for x in xs])[:-1]
        return np.concatenate(xs, axis=self.axis)

    def backward(self, grad_out: np.ndarray) -> list[np.ndarray]:
        return np.split(grad_out, self.splits, axis=self.axis)


class Graph(_Container):
    """A feed-forward network with joins and forks. Nodes are added after their inputs, so there is no cycle.

    >>> g = Graph()
    >>> g.add("fc1", Linear(4, 4), "input").add("act", ReLU(), "fc1")
    >>> g.add("sum", Add(), ["act", "input"])   # fork of "input", join in "sum" (a shortcut)

    A node with several inputs (a join) gets a list. A node read by several others (a fork) receives the sum
    of their gradients: dE/dX = Σ_consumers dE/dX · ∂X_consumer/∂X. The output is the last node added.
    """

    INPUT = "input"

    def __init__(self) -> None:
        super().__init__()
        self.nodes: dict[str, tuple[Module, list[str]]] = {}

    def add(self, name: str, module: Module, inputs: str | Sequence[str] = INPUT) -> Graph:
        """Add node `name` = module(inputs); `inputs` are earlier nodes or "input". Returns the graph."""
        srcs = [inputs] if isinstance(inputs, str) else list(inputs)
        if name in self.nodes or name == self.INPUT:
            raise ValueError(f"node {name!r} already exists")
        unknown = [s for s in srcs if s != self.INPUT and s not in self.nodes]
        if unknown:
            raise ValueError(f"node {name!r} reads unknown nodes {unknown} (add nodes after their inputs)")
        self.nodes[name] = (module, srcs)
        return self

    def named_children(self) -> list[tuple[str, Module]]:
        return [(n, m) for n, (m, _) in self.nodes.items()]

    def forward(self, x):
        values = {self.INPUT: x}
        for name, (m, srcs) in self.nodes.items():  # insertion order is a topological order
            values[name] = m.forward([values[s] for s in srcs] if len(srcs) > 1 else values[srcs[0]])
        return values[name]

    def backward(self, grad_out):
        grads = {next(reversed(self.nodes)): grad_out}
        for name, (m, srcs) in reversed(self.nodes.items()):
            if name not in grads:  # a dead end: it does not reach the output
                continue
            g_in = m.backward(grads.pop(name))
            for s, g in zip(srcs, g_in if len(srcs) > 1 else [g_in], strict=True):
                grads[s] = grads[s] + g if s in grads else g  # fork: gradients from consumers add up
        return grads.get(self.INPUT)
