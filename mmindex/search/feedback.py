"""Relevance feedback and saved queries.

A feedback round re-ranks the collection with three criteria fused by weighted CombSUM of z-scores:

    query      the original query's fused score (for a text query, what ConSE gave)
    rocchio    cosine similarity to  q_r = β·mean(E[positive]) − γ·mean(E[negative])   (Rocchio 1971)
    classifier the decision function of a linear classifier (logistic regression) trained on the marked
               segments' embeddings, once there are at least `min_per_class` positives and negatives

Rocchio's α·q0 term is the "query" criterion: a text or concept query has no vector in the image
embedding space, so the original scores stand in for it. Only γ/β matters (the scores are z-scored).
The default weights were learned on a validation set (Fashion-MNIST *training* images, queries that
are not the test queries) by `bench/text_feedback.py --tune`, with `fusion.learn_weights`: after ten
judgments the original query got weight 0, Rocchio 0.8 and the classifier 0.2.

The last query of an index and its judgments, and the queries saved by name, are kept in
`<index>/queries.json`, replaced atomically (write a temporary file, then rename). Two processes that
write at the same moment: the last one wins (it is a convenience, not part of the index).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmindex.atomic import atomic_write
from mmindex.errors import QueryError
from mmindex.search import fusion
from mmindex.search.requests import QuerySpec

log = logging.getLogger(__name__)

QUERIES_FILE = "queries.json"


@dataclass(frozen=True)
class FeedbackParams:
    """Weights of the fused feedback criteria (learned on validation queries; see the module docstring)."""

    query_weight: float = 0.0
    rocchio_weight: float = 0.8
    classifier_weight: float = 0.2
    gamma_over_beta: float = 0.25  # Rocchio's γ/β (Salton & Buckley's 0.15/0.75 = 0.2 is the classic)
    min_per_class: int = 2  # judged positives and negatives needed before the classifier is trained


def refine(base: np.ndarray, embeddings: np.ndarray, positive_rows: np.ndarray, negative_rows: np.ndarray,
           params: FeedbackParams | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Fused feedback scores for every row, and each criterion's contribution (see the module docstring)."""
    p = params or FeedbackParams()
    pos, neg = embeddings[positive_rows], embeddings[negative_rows]
    q = np.zeros(embeddings.shape[1], dtype=np.float64)
    if len(pos):
        q += pos.mean(axis=0)
    if len(neg):
        q -= p.gamma_over_beta * neg.mean(axis=0)
    # The learned query weight is 0 (the judged examples say more than the words), but that assumes
    # positives: with negatives only, the query keeps the Rocchio weight, else nothing would say what to find.
    labels, columns, weights = ["query"], [base], [p.query_weight if len(pos) else p.rocchio_weight]
    if np.any(q):
        labels.append("rocchio")
        columns.append(embeddings @ q.astype(np.float32))
        weights.append(p.rocchio_weight)
    if len(pos) >= p.min_per_class and len(neg) >= p.min_per_class:
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000)
        clf.fit(np.concatenate([pos, neg]), np.r_[np.ones(len(pos)), np.zeros(len(neg))])
        labels.append("classifier")
        columns.append(embeddings @ clf.coef_[0].astype(np.float32) + float(clf.intercept_[0]))
        weights.append(p.classifier_weight)
    if len(columns) == 1:
        return np.asarray(base, dtype=np.float64), {"query": np.asarray(base, dtype=np.float64)}
    fused, parts = fusion.fuse(columns, weights, "combsum", "zscore")
    return fused, dict(zip(labels, parts, strict=True))


class SavedQueries:
    """`<index>/queries.json`: {"last": spec, "saved": {name: spec}}."""

    def __init__(self, index_dir: str | os.PathLike):
        self.path = Path(index_dir) / QUERIES_FILE

    def _read(self) -> dict:
        try:
            doc = json.loads(self.path.read_text())
            return doc if isinstance(doc, dict) else {}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self.path, exc)
            return {}

    def _write(self, doc: dict) -> None:
        with atomic_write(self.path) as tmp, open(tmp, "w") as f:
            json.dump(doc, f, indent=1)

    def last(self) -> QuerySpec:
        """The last query run on this index (QueryError if there is none)."""
        doc = self._read().get("last")
        if not doc:
            raise QueryError("no previous query on this index: run `mmindex search` first")
        return QuerySpec.from_dict(doc)

    def set_last(self, spec: QuerySpec) -> None:
        """Remember the last query; a read-only index only loses this convenience (logged)."""
        try:
            doc = self._read()
            doc["last"] = spec.to_dict()
            self._write(doc)
        except OSError as exc:
            log.warning("cannot remember the last query in %s: %s", self.path, exc)

    def get(self, name: str) -> QuerySpec:
        saved = self._read().get("saved", {})
        if name not in saved:
            known = ", ".join(sorted(saved)) or "none"
            raise QueryError(f"no saved query named {name!r} (saved: {known})")
        return QuerySpec.from_dict(saved[name])

    def save(self, name: str, spec: QuerySpec) -> None:
        if not name.strip():
            raise QueryError("a saved query needs a name")
        doc = self._read()
        doc.setdefault("saved", {})[name] = spec.to_dict()
        try:
            self._write(doc)
        except OSError as exc:
            raise QueryError(f"cannot save query {name!r} in {self.path}: {exc.strerror or exc}") from None

    def delete(self, name: str) -> None:
        doc = self._read()
        if name not in doc.get("saved", {}):
            raise QueryError(f"no saved query named {name!r}")
        del doc["saved"][name]
        self._write(doc)

    def all(self) -> dict[str, QuerySpec]:
        return {n: QuerySpec.from_dict(d) for n, d in sorted(self._read().get("saved", {}).items())}
