"""The requests of the CLI and the HTTP API, defined once: `mmindex search`'s options and `GET /api/search`'s
query parameters are both made from `SearchRequest`'s fields, so that the two cannot drift apart (a new field
is a new option and a new parameter).

Each field's metadata says what both need: the help text, limits (`min`, `max`), the registry whose names are
the choices (`registry`, "module:attribute", read lazily so that the CLI does not import NumPy to start), the
command-line flags (`flags`, default `--kebab-name`), and what differs on the HTTP side (`http`: another
default, the limits of a list's items, a description). mmindex/cli/options.py and mmindex/service/params.py
read them. Only the standard library here: the CLI imports this module when it starts.

What is not a request field: where the index is and how it is opened (`--index`, `--text-encoder`,
`--vector-index`: the server's engine is opened once, with its own), how results are printed (`--json`), and
HTTP paging (`offset`).

`QuerySpec` is a query as kept to run again: the last query and the saved ones (`search/feedback.py`), with
the relevance judgments made so far.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from mmindex.errors import QueryError


def _field(default: Any, help_text: str, **metadata: Any) -> Any:
    """A request field: its default, its help, and the metadata the CLI and the HTTP API build from."""
    factory = {"default_factory": tuple} if default == () else {"default": default}
    return field(**factory, metadata={"help": help_text, **metadata})


_MAX_CRITERIA = 20  # concept expressions, examples or texts in one HTTP query


@dataclass(frozen=True)
class SearchRequest:
    """One search: concept expressions, examples and free texts, fused into one ranking (`Engine.search`)."""

    concept: tuple[str, ...] = _field((), 'Concept expression, e.g. "cat AND NOT dog".', flags=("--concept", "-c"),
                                      http={"min_length": 1, "max_length": 500, "max_items": _MAX_CRITERIA,
                                            "help": 'concept expression, e.g. "cat AND NOT dog" (repeatable)'})
    like: tuple[str, ...] = _field((), "Example: a segment id or an image file.", flags=("--like", "-l"),
                                   http={"pattern": r"^[0-9]{1,18}(\^[0-9]{1,6}(\.[0-9]{1,6})?)?$",
                                         "max_items": _MAX_CRITERIA,
                                         "help": "example segment id, optionally weighted: 42 or 42^0.5 (repeatable)"})
    text: tuple[str, ...] = _field((), 'Free text, e.g. "a cup of coffee" (mapped to concepts).',
                                   flags=("--text", "-t"),
                                   http={"max_length": 500, "max_items": _MAX_CRITERIA,
                                         "help": "free text, mapped to concepts (if the engine supports it)"})
    k: int = _field(10, "Number of hits.", flags=("-k",), min=1, max=100_000,
                    http={"default": 24, "help": "hits per page"})
    normalise: str = _field("minmax", "Score normalisation before fusing several criteria.",
                            registry="mmindex.search.fusion:NORMALISERS")
    fusion: str = _field("combsum", "How several criteria are fused.", registry="mmindex.search.fusion:METHODS")
    explain: bool = _field(False, "Show each criterion's score for each hit, and what text mapped to.",
                           http={"help": "each criterion's score for each hit, and what a text mapped to"})

    @classmethod
    def names(cls) -> list[str]:
        """The field names, in order: the CLI's request options and the HTTP API's search parameters."""
        return [f.name for f in fields(cls)]

    def engine_arguments(self) -> dict[str, Any]:
        """The keyword arguments of `Engine.search` for this request."""
        return {"concepts": list(self.concept), "like": list(self.like), "text": list(self.text), "k": self.k,
                "explain": self.explain, "normalise": self.normalise, "fusion_method": self.fusion}


@dataclass
class QuerySpec:
    """Everything needed to run a query again: its criteria, options and the judgments so far."""

    concepts: list[str] = field(default_factory=list)
    like: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    k: int = 10
    normalise: str = "minmax"
    fusion: str = "combsum"
    text_encoder: str | None = None
    positive: list[int] = field(default_factory=list)
    negative: list[int] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict) -> QuerySpec:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def to_dict(self) -> dict:
        return asdict(self)

    def judge(self, positive=(), negative=()) -> QuerySpec:
        """A copy with more judgments; a segment judged again keeps its latest judgment."""
        pos = [i for i in self.positive if i not in negative] + [int(i) for i in positive]
        neg = [i for i in self.negative if i not in positive] + [int(i) for i in negative]
        both = set(positive) & set(negative)
        if both:
            raise QueryError(f"segments marked both positive and negative: {sorted(both)}")
        return QuerySpec(**{**asdict(self), "positive": list(dict.fromkeys(pos)),
                            "negative": list(dict.fromkeys(neg))})
