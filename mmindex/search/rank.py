"""Per-modality rankers: every segment's score for one concept expression or one example."""

from __future__ import annotations

import numpy as np

from mmindex.search.query import And, Node, Not, Or, Term, check_depth

_EPS = 1e-12


def expression_scores(node: Node, leaf) -> np.ndarray:
    """Evaluate a concept expression; `leaf(name)` gives a Term's probability column.

    AND = Π p_i^w_i (computed in log space), OR = 1 − Π (1 − p_i)^w_i, NOT = 1 − p.
    A tree deeper than any parse gives (query.MAX_TREE_DEPTH) is a QueryError, not a RecursionError.
    """
    return _scores(check_depth(node), leaf)


def _scores(node: Node, leaf) -> np.ndarray:
    if isinstance(node, Term):  # a probability column as it comes (float32 from an index)
        return np.asarray(leaf(node.name))
    if isinstance(node, Not):
        return 1.0 - _scores(node.child, leaf)
    if isinstance(node, And):  # products of probabilities in float64, through logs
        logs = sum(c.weight * np.log(np.maximum(_f64(_scores(c, leaf)), _EPS)) for c in node.children)
        return np.exp(logs)
    if isinstance(node, Or):
        logs = sum(c.weight * np.log(np.maximum(1.0 - _f64(_scores(c, leaf)), _EPS))
                   for c in node.children)
        return 1.0 - np.exp(logs)
    raise TypeError(f"not a query node: {node!r}")


def _f64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def term_names(node: Node) -> list[str]:
    """Every concept name an expression mentions, in order (without recursion: any depth)."""
    names, stack = [], [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Term):
            names.append(n.name)
        else:
            stack.extend(reversed((n.child,) if isinstance(n, Not) else n.children))
    return names
