"""Temporal queries ("a shot of A, then within N seconds a shot of B") and video-level results (issue 19).

A temporal query has steps: the first is the query's usual criteria (concepts, texts, examples, fused as
always); each `then` step is one criterion (`parse_step`). Every step's score over the collection's video shots is
min-max normalised to [0, 1] (over the shots only; a step that scores every shot alike counts 1: it cannot
tell them apart, and it must not veto them), and raised to the step's weight (`cat^2`: as in the concept grammar,
a weight counts a step as if it were written w times). A shot's chain score, from the last step back:

    best_S(b) = n_S(b),     best_s(a) = n_s(a) · max_{b follows a} best_{s+1}(b),     score(a) = best_0(a)

where b follows a when it is a later shot of the same video that starts at most `within` seconds after a ends
(0 s: the next shot). The best follower is chosen per shot, so the chain is the best one from each first shot.
Shots with no follower in the window score 0 and are no hits.

Efficient at scale: the shots are sorted once per committed generation by (video, start) (`Timeline`); a shot's
followers are then one run of positions, whose end is one `np.searchsorted` over per-video offset times, and the
best of each run comes from a sparse table of running maxima (log2 of the longest run levels, each one
vectorised `np.where`): O(n log L) for n shots and at most L shots in a window, never a join of all pairs.

`group_by_media` gives video-level results: one hit per media file (its best segment), with the number of its
segments among the first `GROUP_DEPTH` of the ranking (its matching shots).
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field

import numpy as np

from mmindex.errors import QueryError
from mmindex.index.snapshot import Snapshot
from mmindex.search import fusion

GROUPS = ("segment", "video")  # --group: one hit per segment (shot or image), or per media file
DEFAULT_WITHIN = 10.0  # seconds from the end of a step's shot to the start of the next step's shot
MAX_WITHIN = 86_400.0
GROUP_DEPTH = 1000  # a video's matching shots: its segments among the first 1000 ranked (CombMNZ's run depth)
_STEP = re.compile(r"(?s)\s*(text|like):(.*)")
_SLACK = 1e-6  # seconds: a follower that starts exactly `within` after the end counts, whatever the rounding


def parse_step(step: str) -> tuple[str, str]:
    """("concept" | "text" | "like", what) of a `then` step: `text:WORDS`, `like:ID` (a segment id, or an image
    file from the CLI and Python), else a concept expression (quote a concept whose name starts with "text:")."""
    m = _STEP.fullmatch(step)
    kind, value = (m.group(1), m.group(2).strip()) if m else ("concept", step.strip())
    if not value:
        raise QueryError(f"empty then step {step!r}: give a concept expression, text:WORDS or like:ID")
    return kind, value


def check_steps(then, has_first: bool, within: float) -> None:
    """QueryError for a temporal query that cannot run: steps without a first criterion, a bad window."""
    if then and not has_first:
        raise QueryError("then needs a first criterion for its steps to follow: give a concept, text or like "
                         "(--concept, --text, --like) as well")
    if not (isinstance(within, int | float) and math.isfinite(within) and 0 < within <= MAX_WITHIN):
        raise QueryError(f"within must be a number of seconds above 0 and at most {MAX_WITHIN:g}, got {within!r}")
    for step in then:
        parse_step(step)


@dataclass
class Timeline:
    """The snapshot's segments in time: each row's media id, and the video shots sorted by (video, start)."""

    generation: int
    media: np.ndarray  # (N,) media id of each snapshot row (-1: not in the timeline read)
    order: np.ndarray  # (M,) snapshot rows of the video shots, by (media, start)
    video: np.ndarray  # (M,) the video's number (0, 1, ...) of each position
    start: np.ndarray  # (M,) seconds from the video's first shot's start
    end: np.ndarray  # (M,)
    span: float  # the longest video, in seconds
    _ends: dict[float, np.ndarray] = field(default_factory=dict, repr=False)  # window_ends by `within`, a few

    @classmethod
    def build(cls, snap: Snapshot, ids, media, start, end) -> Timeline:
        """From the store's `timeline()` read: rows of segments not in the snapshot are left out."""
        n = len(snap.ids)
        at = np.minimum(np.searchsorted(snap.ids, ids), max(n - 1, 0))
        ok = (snap.ids[at] == ids) if n else np.zeros(len(ids), bool)
        row_media = np.full(n, -1, np.int64)
        row_start, row_end = np.full(n, np.nan), np.full(n, np.nan)
        row_media[at[ok]], row_start[at[ok]], row_end[at[ok]] = media[ok], start[ok], end[ok]
        shots = np.flatnonzero(np.isfinite(row_start) & np.isfinite(row_end))
        order = shots[np.lexsort((row_start[shots], row_media[shots]))]
        m = row_media[order]
        first = np.r_[True, m[1:] != m[:-1]] if len(m) else np.zeros(0, bool)
        video = np.cumsum(first) - 1
        origin = row_start[order][first][video] if len(m) else np.zeros(0)
        s, e = row_start[order] - origin, row_end[order] - origin
        return cls(snap.generation, row_media, order, video, s, e, float(e.max(initial=0.0)))

    def window_ends(self, within: float) -> np.ndarray:
        """(M,) for each position, the end (exclusive) of its followers: positions p+1 .. end-1 are the later
        shots of its video that start at most `within` s after it ends. One searchsorted over times offset per
        video (video i's times start at i · stride, beyond any window of video i − 1)."""
        ends = self._ends.get(within)
        if ends is None:  # parallel searches may both compute it: the same array
            stride = self.span + within + 1.0
            base = self.video * stride
            ends = np.searchsorted(base + self.start, base + (self.end + within + _SLACK), side="right")
            if len(self._ends) >= 8:
                self._ends.clear()
            self._ends[within] = ends
        return ends


def window_best(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each i, the largest of values[lo[i]:hi[i]] and its position (the earliest of equal ones), or (0, -1)
    for an empty run: a sparse table (level j holds the best position of each run of 2^j), each query the
    better of two overlapping runs."""
    length = hi - lo
    best, where = np.zeros(len(lo)), np.full(len(lo), -1, np.int64)
    longest = int(length.max(initial=0))
    if longest <= 0:
        return best, where
    levels = [np.arange(len(values))]
    while 1 << len(levels) <= longest:
        prev, half = levels[-1], 1 << (len(levels) - 1)
        a, b = prev[:len(prev) - half], prev[half:]
        levels.append(np.where(values[b] > values[a], b, a))
    live = np.flatnonzero(length > 0)
    level = np.floor(np.log2(length[live])).astype(np.int64)
    for j in np.unique(level):
        sel = live[level == j]
        a, b = levels[j][lo[sel]], levels[j][hi[sel] - (1 << j)]
        where[sel] = np.where(values[b] > values[a], b, a)
    best[live] = values[where[live]]
    return best, where


def normalise(scores: np.ndarray, weight: float = 1.0) -> np.ndarray:
    """Min-max to [0, 1] over the finite scores (others 0); a constant step is all 1; then to the weight."""
    scores = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(scores)
    if not finite.any():
        return np.zeros(len(scores))
    lo, hi = float(scores[finite].min()), float(scores[finite].max())
    out = np.where(finite, (scores - lo) / (hi - lo) if hi > lo else 1.0, 0.0)
    return out if weight == 1.0 else out ** weight


@dataclass
class Chains:
    """A temporal ranking: each position's score (over `Timeline.order`), and each step's best follower."""

    scores: np.ndarray  # (M,) best_0
    steps: list[np.ndarray]  # per step: (M,) its normalised score
    follow: list[np.ndarray]  # per step after the first: (M,) position of the best follower (-1: none)

    def chain(self, position: int) -> list[tuple[int, float]]:
        """The followers of a first shot: (position, that step's normalised score) per step after the first."""
        out = []
        for s, follow in enumerate(self.follow, start=1):
            position = int(follow[position])
            out.append((position, float(self.steps[s][position])))
        return out


def rank_chains(timeline: Timeline, columns: list[np.ndarray], weights: list[float], within: float) -> Chains:
    """The chain scores of a temporal query whose steps score the snapshot rows by `columns` (module docstring)."""
    steps = [normalise(np.asarray(c)[timeline.order], w) for c, w in zip(columns, weights, strict=True)]
    lo = np.arange(1, len(timeline.order) + 1)
    hi = timeline.window_ends(within)
    best, follow = steps[-1], []
    for s in range(len(steps) - 2, -1, -1):
        top, where = window_best(best, lo, hi)
        best = steps[s] * top
        follow.insert(0, where)
    return Chains(best, steps, follow)


class Timelines:
    """The timeline of the current snapshot, read once per committed generation; thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._timeline: Timeline | None = None

    def get(self, store, snap: Snapshot) -> Timeline:
        with self._lock:
            if self._timeline is None or self._timeline.generation != snap.generation:
                self._timeline = Timeline.build(snap, *store.timeline())
            return self._timeline


def group_by_media(media: np.ndarray, rows: np.ndarray, k: int,
                   depth: int = GROUP_DEPTH) -> tuple[np.ndarray, np.ndarray]:
    """Video-level results from a ranking (`rows`, best first; `media[row]` is a row's media file): the indices
    in `rows` of the best row of each of the k best media files, and the number of each file's rows among the
    first `depth` (its matching shots; at least 1, its best row)."""
    files = media[rows]
    _, first = np.unique(files, return_index=True)
    first = np.sort(first)[:k]
    found, counts = np.unique(files[:depth], return_counts=True)
    count = dict(zip(found.tolist(), counts.tolist(), strict=True))
    return first, np.array([max(count.get(int(f), 0), 1) for f in files[first]], dtype=np.int64)


def ranking(timelines: Timelines, spec, snap: Snapshot, store, fused: np.ndarray, steps: list) -> tuple:
    """(rows, scores, chains, matches) of a query's hits: the top k by the `fused` score of its first criteria, or
    by the chain score when it has later `steps` (rankers); one hit per media file for group "video". `chains[i]`
    lists (segment id, score) per later step; `matches[i]` counts a file's matching shots (else both None)."""
    whole = spec.group == "video"  # grouping reads the whole ranking
    then = matches = at = None
    if steps:
        timeline = timelines.get(store, snap)
        chains = rank_chains(timeline, [fused, *(r.scores(snap) for r in steps)], [1.0, *(r.weight for r in steps)],
                             spec.within)
        at = fusion.top_k(chains.scores, len(chains.scores) if whole else spec.k)
        at = at[chains.scores[at] > 0]  # no follower in the window: no hit
        rows, scores = timeline.order[at], chains.scores[at]
    else:
        rows = fusion.top_k(fused, len(fused) if whole else spec.k)
        rows = rows[np.isfinite(fused[rows])]
        scores = fused[rows]
    if whole:
        first, matches = group_by_media(timelines.get(store, snap).media, rows, spec.k)
        rows, scores, at = rows[first], scores[first], None if at is None else at[first]
    if at is not None:
        then = [[(int(snap.ids[timeline.order[p]]), v) for p, v in chains.chain(int(a))] for a in at]
    return rows, scores, then, matches
