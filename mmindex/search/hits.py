"""Search results: `Hit` (one segment, its score and why) and `Results` (hits, best first, with an explanation)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields


@dataclass
class Hit:
    """One result. `why` (on request) gives each criterion's raw score for this segment."""

    segment_id: int
    path: str
    start: float | None
    end: float | None
    score: float
    kind: str = "image"
    media_id: int | None = None
    why: dict[str, float] | None = field(default=None)
    parts: dict[str, float] | None = field(default=None)  # on request: each criterion's share of `score`

    def to_dict(self) -> dict:
        """The JSON form (`search --json`, the HTTP API); `why` and `parts` only when set."""
        # Not dataclasses.asdict: it deep-copies every field, and the service calls this for every hit.
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("why", "parts"):
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
