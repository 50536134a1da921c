"""Active learning: which unjudged segments to show a user next, so that their judgments help the detector most.

The two strategies of TRECVID 2007's collaborative annotation (Ayache & Quénot), plus a baseline:
    uncertain   scores closest to the decision boundary (0.5 for a sigmoid detector): what it is least sure of
    probable    the highest scores: what it believes are hits (confirms them, and finds its worst false alarms)
    random      a seeded random draw: the baseline both are measured against

The strategies are pure functions over a score array, so that `mmindex label` (`propose`, over an index's
snapshot) and a simulation bench choose alike:

    rows = select("uncertain", scores, candidates, n=20)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mmindex.concepts import check_name, same_name
from mmindex.errors import QueryError, UnknownConcept
from mmindex.index.snapshot import concept_column
from mmindex.registry import Registry

BOUNDARY = 0.5  # a sigmoid detector's decision boundary

Strategy = Callable[[np.ndarray, np.ndarray, int, np.random.Generator], np.ndarray]
STRATEGIES: Registry[Strategy] = Registry("labelling strategy", QueryError)


def _top(key: np.ndarray, candidates: np.ndarray, n: int) -> np.ndarray:
    """The `n` candidates of smallest `key`, smallest first (ties by row: the order does not depend on NumPy's
    sort)."""
    order = np.lexsort((candidates, key[candidates]))
    return candidates[order[:n]]


@STRATEGIES.register("uncertain", help="scores closest to the decision boundary")
def uncertain(scores: np.ndarray, candidates: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return _top(np.abs(np.asarray(scores, dtype=np.float64) - BOUNDARY), candidates, n)


@STRATEGIES.register("probable", help="the highest scores")
def probable(scores: np.ndarray, candidates: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return _top(-np.asarray(scores, dtype=np.float64), candidates, n)


@STRATEGIES.register("random", help="a seeded random draw (the baseline)")
def random(scores: np.ndarray, candidates: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(candidates)[:n]


def select(strategy: str, scores: np.ndarray | None, candidates: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Up to `n` rows of `candidates` (row indices into `scores`) chosen by `strategy`, the most useful first.

    `scores` may be None (no detector yet): only "random" can choose then. `QueryError` for an unknown strategy.
    """
    choose = STRATEGIES.get(strategy)
    candidates = np.asarray(candidates, dtype=np.int64)
    if scores is None and strategy != "random":
        raise QueryError(f"strategy {strategy!r} needs a detector's scores; use random")
    empty = np.empty(0) if scores is None else scores
    return choose(empty, candidates, max(0, int(n)), np.random.default_rng(seed))


def propose(store, snap, vocabulary, name: str, n: int = 20, strategy: str = "uncertain", seed: int = 0) -> dict:
    """The `n` unjudged segments of the index whose judgment for the concept `name` helps most (`mmindex label`).

    The scores are those of the trained concept `name` resolves to (a taught or applied detector). Without one,
    the draw is random and `message` says so. Returns {name, strategy, requested, detector, judged: {positive,
    negative}, message, segments: [{segment_id, path, kind, start, end, score}]}.
    """
    STRATEGIES.get(strategy)  # an unknown strategy fails before anything is read
    name = same_name(check_name(name), [d["name"] for d in store.detector_list()] + list(store.judged_concepts()))
    labels = store.judgment_labels(name)
    judged = [r for r in map(snap.row_of, labels) if r is not None]
    candidates = np.setdiff1d(np.arange(len(snap.ids)), np.asarray(judged, dtype=np.int64))
    try:
        concept = vocabulary.resolve(name)
    except UnknownConcept:
        concept = None
    detector, message, used, scores = None, None, strategy, None
    if concept is not None and concept.source == "trained":
        detector, scores = concept.id, concept_column(snap.scores, concept.classes)
    elif strategy != "random":
        used = "random"
        message = (f"no detector for {name!r} yet: a random draw instead of {strategy!r}; judge these with "
                   f"`mmindex teach {name!r} --positive ID ... --negative ID ...`")
    rows = select(used, scores, candidates, n, seed)
    details = store.segments(snap.ids[rows])
    segments = []
    for r in rows:
        d = details.get(int(snap.ids[r]))
        if d is not None:  # else removed since the snapshot was taken
            segments.append({"segment_id": int(snap.ids[r]), "path": d["path"], "kind": d["kind"], "start": d["start"],
                             "end": d["end"], "score": None if scores is None else float(scores[r])})
    positive = sum(labels.values())
    return {"name": name, "strategy": used, "requested": strategy, "detector": detector,
            "judged": {"positive": positive, "negative": len(labels) - positive}, "message": message,
            "segments": segments}
