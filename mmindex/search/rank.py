"""Rankers: every segment's score for one criterion of a query (a concept expression, a text, an example)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from mmindex.index.snapshot import concept_column
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


# ---- rankers: one per criterion of a query ---------------------------------------------------------------
class Ranker(ABC):
    """One criterion of a query. It scores every segment of a snapshot (higher is better); fusion combines
    the rankers' scores, and `why` adds what explains a score beyond the criterion's own value.

    A new kind of criterion is one new subclass: `kind`, `label`, `weight` and `scores`.
    """

    kind = ""
    label = ""
    weight = 1.0

    @abstractmethod
    def scores(self, snap) -> np.ndarray:
        """(N,) scores over the snapshot's segments, in its row order."""

    def why(self, snap, row: int) -> dict[str, float]:
        return {}

    def explain(self) -> dict:
        return {"label": self.label, "kind": self.kind, "weight": self.weight}


class ConceptRanker(Ranker):
    """A concept expression ("cat AND NOT dog"), evaluated with fuzzy logic over the concepts' columns."""

    kind = "concept"

    def __init__(self, text: str, node: Node, weight: float, vocabulary):
        self.label, self.node, self.weight, self.vocabulary = text, node, weight, vocabulary
        for name in term_names(node):
            vocabulary.resolve(name)  # unknown names fail before any work is done

    def scores(self, snap) -> np.ndarray:
        return expression_scores(self.node, lambda n: concept_column(snap.scores, self.vocabulary.resolve(n).classes))


class TextRanker(Ranker):
    """Free text mapped onto concepts (a concept bank: ConSE), scored as Σ_c w_c · p_c."""

    kind = "text"

    def __init__(self, mapping, weight: float, encoder: str):
        self.mapping, self.weight, self.encoder = mapping, weight, encoder
        self.label = f"text:{mapping.text}"

    def scores(self, snap) -> np.ndarray:
        return self.mapping.scores(snap.scores)

    def why(self, snap, row: int) -> dict[str, float]:
        one = snap.scores[:, row:row + 1]
        return {f"{self.label} > {c.name}": c.weight * float(concept_column(one, c.columns)[0])
                for c in self.mapping.concepts}

    def explain(self) -> dict:
        return {**super().explain(), "encoder": self.encoder, **self.mapping.to_dict()}


class ExampleRanker(Ranker):
    """More like this: cosine similarity to an example's embedding (a segment's, or an image's)."""

    kind = "like"

    def __init__(self, ref: str, vector: np.ndarray, weight: float):
        self.label, self.vector, self.weight = f"like:{ref}", vector, weight

    def scores(self, snap) -> np.ndarray:
        return snap.embeddings @ self.vector

    def nearest(self, index, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The top k by the vector index alone: all a query of this one criterion needs."""
        return index.search(self.vector, k)
