"""A text query's mapping onto concepts: weighted concepts, or (a compositional query) parts combined by AND."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mmindex.index.snapshot import concept_column

NEGLIGIBLE_WEIGHT = 1e-3  # concepts this light in all are not summed (see TextMapping.scores)
_EPS = 1e-12


@dataclass(frozen=True)
class MappedConcept:
    id: str
    name: str
    similarity: float
    weight: float
    columns: tuple[int, ...] = field(repr=False)


@dataclass
class TextMapping:
    """A query's concepts with their weights; empty (with `reason`) when none is similar enough.

    `read_as` is what the bank read the query as (carrier phrases off, plurals singular: `text.phrasing`); `named`
    the id of the concept it names exactly, if any. A compositional query ("a dog on a beach") has `parts`, one
    mapping per concept phrase, scored as their product (the query grammar's AND); `concepts` then lists every
    part's concepts, each weighted within its part. `ignored`: the scene phrases left out ("a ship on the water").
    """

    text: str
    concepts: list[MappedConcept]
    reason: str | None = None
    read_as: str = ""
    named: str | None = None
    parts: list[TextMapping] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # scene phrases that name no concept ("water")

    def scores(self, scores: np.ndarray) -> np.ndarray:
        """Σ_c w_c · p_c over the segments of a concept-major (C, N) score matrix; for parts, Π_parts (Σ_c w_c · p_c).

        The lightest concepts whose weights add up to at most NEGLIGIBLE_WEIGHT are left out: as p ≤ 1,
        no score moves by more than that, and each concept left out is one read fewer over the whole
        index (with softmax weights most queries have one to three concepts that matter).
        """
        if self.parts:  # AND = Π p_i, through logs in float64 (as search/rank.py evaluates the grammar's AND)
            logs = sum(np.log(np.maximum(np.asarray(p.scores(scores), dtype=np.float64), _EPS)) for p in self.parts)
            return np.exp(logs)
        terms = self.significant()
        if hasattr(scores, "combine"):  # a snapshot's mapped matrix: every concept in one pass over the files
            return scores.combine([(c.columns, c.weight) for c in terms])
        out = np.zeros(scores.shape[1], dtype=np.float64)
        for c in terms:
            out += c.weight * concept_column(scores, c.columns)
        return out

    def significant(self) -> list[MappedConcept]:
        """The concepts that `scores` sums: all but the lightest ones whose weights add up to ≤ NEGLIGIBLE_WEIGHT."""
        if self.parts:
            return [c for p in self.parts for c in p.significant()]
        by_weight = sorted(self.concepts, key=lambda c: c.weight)
        dropped = np.cumsum([c.weight for c in by_weight]) <= NEGLIGIBLE_WEIGHT
        return [c for c, drop in zip(by_weight, dropped, strict=True) if not drop][::-1]

    def to_dict(self) -> dict:
        """The mapping for --explain: the concepts, and the parse (what the query was read as, the parts)."""
        out = {"text": self.text, "reason": self.reason, "concepts": _concepts(self.concepts),
               "parse": {"read_as": self.read_as, "named": self.named}}
        if self.ignored:
            out["parse"]["ignored"] = list(self.ignored)
        if self.parts:
            out["parse"]["operator"] = "AND"
            out["parse"]["parts"] = [{"text": p.text, "named": p.named, "concepts": _concepts(p.concepts)}
                                     for p in self.parts]
        return out


def _concepts(concepts: list[MappedConcept]) -> list[dict]:
    return [{"id": c.id, "name": c.name, "similarity": round(c.similarity, 4), "weight": round(c.weight, 4)}
            for c in concepts]
