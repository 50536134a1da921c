"""Search results: `Hit` (one segment, its score and why) and `Results` (hits, best first, with an explanation);
`make_hits` reads the hits' details from the store."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields


@dataclass
class Hit:
    """One result. `why` (on request) gives each criterion's raw score for this segment. A temporal query's hit
    carries its chain, `then`: the shot of each later step ({"segment_id", "start", "end", "score"}, the score
    being that step's normalised score); a video-level hit (`group="video"`) its file's number of `matches`."""

    segment_id: int
    path: str
    start: float | None
    end: float | None
    score: float
    kind: str = "image"
    media_id: int | None = None
    why: dict[str, float] | None = field(default=None)
    parts: dict[str, float] | None = field(default=None)  # on request: each criterion's share of `score`
    then: list[dict] | None = field(default=None)
    matches: int | None = field(default=None)

    def to_dict(self) -> dict:
        """The JSON form (`search --json`, the HTTP API); `why`, `parts`, `then` and `matches` only when set."""
        # Not dataclasses.asdict: it deep-copies every field, and the service calls this for every hit.
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("why", "parts", "then", "matches"):
            if d[key] is None:
                del d[key]
        return d


class Results(list):
    """Hits, best first (a plain list), with `explanation`: the fusion, each criterion and its weight, and
    for a text criterion the concepts it was mapped to; and `message`: why there are no hits, when a
    text query matched no concept (an empty result, never the top of a random ranking)."""

    def __init__(self, hits: Iterable[Hit] = (), explanation: dict | None = None, message: str | None = None):
        super().__init__(hits)
        self.explanation = explanation or {}
        self.message = message

    def to_arrow(self):
        """A `pyarrow.Table`, one row per hit (search/display.py: rank, segment_id, path, kind, start, end, score,
        media_id, and with `explain` each criterion's `why:` score and `share:`). Needs pyarrow."""
        from mmindex.search.display import hits_table  # deferred: pyarrow is an extra

        return hits_table(self)

    def to_pandas(self):
        """`to_arrow()` as a pandas DataFrame. Needs pyarrow and pandas (`pip install 'mmindex[data]'`)."""
        return self.to_arrow().to_pandas()

    def _repr_html_(self) -> str:
        """What Jupyter shows: a grid of thumbnails (inline JPEGs) with rank, score, segment id and time span."""
        from mmindex.search.display import results_html  # deferred: decoding thumbnails only when displayed

        return results_html(self, self.explanation, self.message)


def make_hits(store, ids, scores, why=None, then=None, matches=None) -> list[Hit]:
    """Hits of segment `ids` with their `scores`, details read from `store` (a `Store`); `why[i]` is (raw scores,
    shares), `then[i]` a list of (segment id, score) of the chain, `matches[i]` a count. A segment removed since
    the snapshot was taken is left out."""
    details = store.segments([*map(int, ids), *(sid for chain in then or () for sid, _ in chain)])
    hits = []
    for i, (sid, score) in enumerate(zip(ids, scores, strict=True)):
        d = details.get(int(sid))
        if d is None or then and any(s not in details for s, _ in then[i]):
            continue
        w, p = why[i] if why else (None, None)
        chain = [{"segment_id": s, "start": details[s]["start"], "end": details[s]["end"], "score": v}
                 for s, v in then[i]] if then else None
        hits.append(Hit(int(sid), d["path"], d["start"], d["end"], float(score), d["kind"], d["media_id"], w, p,
                        chain, None if matches is None else int(matches[i])))
    return hits
