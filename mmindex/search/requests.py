"""The requests of the CLI and the HTTP API, defined once: each command's request options and its endpoint's
parameters (or JSON body) are made from one dataclass's fields, so that the two cannot drift apart (a new field
is a new option and a new parameter):

| request | CLI | HTTP |
|---|---|---|
| `SearchRequest` | `mmindex search` | `GET /api/search` (and `POST /api/search`, an upload) |
| `FeedbackRequest` | `mmindex feedback` | `POST /api/feedback`'s body |
| `ConceptsRequest` | `mmindex concepts` | `GET /api/concepts` |
| `AddRequest`, `RemoveRequest` | `mmindex add`, `mmindex remove` | `POST /api/media`'s body, `DELETE /api/media` |
| `TeachRequest` | `mmindex teach` | `POST /api/concepts`'s body |
| `ApplyRequest` | `mmindex apply` | `POST /api/detectors`'s body |
| `LabelRequest` | `mmindex label` | `GET /api/concepts/{name}/proposals` |
| `JudgmentsRequest` | `mmindex judgments export` | `GET /api/judgments` |

Each field's metadata says what both need: the help text, limits (`min`, `max`; of each item for a tuple; with
`min_open` the lower limit is excluded), the
registry whose names are the choices (`registry`, "module:attribute", read lazily so that the CLI does not
import NumPy to start), the command-line flags (`flags`, default `--kebab-name`; `argument`: a positional
argument instead), and what differs on the HTTP side (`http`: another default, the parameter's name
(`alias`), limits of a string or of a list and its items, a description). A field without a default is
required on both sides. mmindex/cli/options.py and mmindex/service/params.py read them. Only the standard
library here: the CLI imports this module when it starts.

What is not a request field: where the index is and how it is opened (`--index`, `--text-encoder`,
`--vector-index`, `add`'s model and batch settings: a server's engine is opened once, with its own), how
results are printed (`--json`, `--quiet`), HTTP paging (`offset`), and state a server does not keep
(`feedback --query/--save`: over HTTP the client sends the query it refines).

`QuerySpec` is a query as kept to run again: the last query and the saved ones (`search/feedback.py`), with
the relevance judgments made so far.
"""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from mmindex.errors import QueryError


def _field(default: Any, help_text: str, **metadata: Any) -> Any:
    """A request field: its default (MISSING: required), its help, and the metadata the CLI and the HTTP API
    build from."""
    factory = ({} if default is MISSING else {"default_factory": tuple} if default == () else {"default": default})
    return field(**factory, metadata={"help": help_text, **metadata})


def value_type(kind: Any) -> Any:
    """`int` for a field of type `int | None`: None is a default (nothing given), not a value one sends."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        (kind,) = [k for k in typing.get_args(kind) if k is not type(None)]
    return kind


class _Request:
    """What every request can say about itself."""

    @classmethod
    def names(cls) -> list[str]:
        """The field names, in order: the command's request options and the endpoint's parameters."""
        return [f.name for f in fields(cls)]  # type: ignore[arg-type]


_MAX_CRITERIA = 20  # concept expressions, examples or texts in one HTTP query
_MAX_ID = 2**63 - 1  # a segment id is a SQLite INTEGER


@dataclass(frozen=True)
class SearchRequest(_Request):
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
    then: tuple[str, ...] = _field((), 'A step that follows in the same video (repeatable, in order): a concept '
                                   'expression, "text:WORDS" or "like:ID".', flags=("--then",),
                                   http={"min_length": 1, "max_length": 500, "max_items": 8,
                                         "help": 'a later step, in order: a concept expression, "text:WORDS" or '
                                         '"like:ID" (repeatable)'})
    within: float = _field(10.0, "Seconds from the end of a step's shot to the start of the next step's shot, at "
                           "most (> 0).", min=0.0, min_open=True, max=86_400.0)
    group: str = _field("segment", "segment: one hit per shot or image; video: one hit per file (its best shot, "
                        "with its number of matching shots).", registry="mmindex.search.temporal:GROUPS")

    def __post_init__(self) -> None:
        from mmindex.search.temporal import check_steps  # deferred: NumPy; the CLI imports this module to start

        check_steps(self.then, bool(self.concept or self.like or self.text), self.within)

    def engine_arguments(self) -> dict[str, Any]:
        """The keyword arguments of `Engine.search` for this request."""
        return {"concepts": list(self.concept), "like": list(self.like), "text": list(self.text), "k": self.k,
                "explain": self.explain, "normalise": self.normalise, "fusion_method": self.fusion,
                "then": list(self.then), "within": self.within, "group": self.group}


@dataclass(frozen=True)
class FeedbackRequest(_Request):
    """Relevance judgments on a query's hits, and how to show the refined ranking (`Engine.feedback`).

    The query they refine is the CLI's last query (or `--query NAME`, a saved one); over HTTP, where a server
    keeps no query per user, the body carries it beside these fields (`concept`, `like`, `text`)."""

    positive: tuple[int, ...] = _field((), "A segment id that is a good hit (repeatable).", flags=("--positive", "-p"),
                                       min=0, http={"max": _MAX_ID, "max_items": 200,
                                                    "help": "segment ids of good hits"})
    negative: tuple[int, ...] = _field((), "A segment id that is a wrong hit (repeatable).", flags=("--negative", "-n"),
                                       min=0, http={"max": _MAX_ID, "max_items": 200,
                                                    "help": "segment ids of wrong hits"})
    k: int | None = _field(None, "Number of hits (default: as before).", flags=("-k",), min=1, max=100_000,
                           http={"default": 24, "help": "hits"})
    explain: bool = _field(False, "Show each criterion's score for each hit.",
                           http={"default": True, "help": "each criterion's score for each hit, and what a text "
                                 "mapped to"})

    def engine_arguments(self) -> dict[str, Any]:
        """The keyword arguments of `Engine.feedback` for this request."""
        return {"positive": list(self.positive), "negative": list(self.negative), "k": self.k,
                "explain": self.explain}


@dataclass(frozen=True)
class ConceptsRequest(_Request):
    """The concept vocabulary, or the concepts matching a text (autocomplete), best first (`Engine.concepts`)."""

    text: str | None = _field(None, "A name, synonym or WordNet id, or part of one (none: every concept).",
                              argument=True, http={"alias": "q", "max_length": 100, "help": "text to complete"})
    limit: int | None = _field(None, "At most this many.", min=1, http={"default": 10, "max": 200})

    def engine_arguments(self) -> dict[str, Any]:
        """The keyword arguments of `Engine.concepts` for this request."""
        return {"text": self.text, "limit": self.limit}


@dataclass(frozen=True)
class AddRequest(_Request):
    """Files and folders to index (`Engine.add`). How they are indexed (model, batch size, threads) is not part
    of the request: it is `mmindex add`'s `IngestConfig`, and a server's, fixed when it starts."""

    paths: tuple[str, ...] = _field(MISSING, "Files or folders, indexed recursively.", argument=True, path=True,
                                    http={"min_items": 1, "max_items": 1000, "help": "files or folders on the server"})


@dataclass(frozen=True)
class RemoveRequest(_Request):
    """Media to remove from the index, by file, or every file under a folder (`Engine.remove`)."""

    paths: tuple[str, ...] = _field(MISSING, "Files, or folders whose every file is removed.", argument=True,
                                    path=True, http={"alias": "path", "min_items": 1, "max_items": 1000,
                                                     "help": "file or folder (repeatable)"})


@dataclass(frozen=True)
class TeachRequest(_Request):
    """A concept taught from judged segments: the judgments to record, then a detector trained on all of the
    name's judgments and applied under it (`Engine.teach`)."""

    name: str = _field(MISSING, "The concept's name: what --concept NAME means from now on.", argument=True,
                       http={"min_length": 1, "max_length": 64, "help": "the concept's name"})
    positive: tuple[int, ...] = _field((), "A segment id that shows the concept (repeatable).",
                                       flags=("--positive", "-p"), min=0,
                                       http={"max": _MAX_ID, "max_items": 1000, "help": "segment ids that show it"})
    negative: tuple[int, ...] = _field((), "A segment id that does not show it (repeatable).",
                                       flags=("--negative", "-n"), min=0,
                                       http={"max": _MAX_ID, "max_items": 1000,
                                             "help": "segment ids that do not show it"})

    def engine_arguments(self) -> dict[str, Any]:
        """The keyword arguments of `Engine.teach` for this request."""
        return {"name": self.name, "positive": list(self.positive), "negative": list(self.negative)}


@dataclass(frozen=True)
class ApplyRequest(_Request):
    """A trained model applied to the index, its labels made concepts (`Engine.apply`)."""

    detector: str = _field(MISSING, "A model file (from `train`, `train-sequence` or `train-clips`), or the name of "
                           "a detector applied to the index (its own copy is applied again: after media changed, or "
                           "to finish an interrupted apply).", argument=True, path=True,
                           http={"min_length": 1, "max_length": 4096,
                                 "help": "an absolute path of a model file on the server (inside the media roots), "
                                         "or the name of a detector applied to the index"})
    name: str | None = _field(None, "Detector name in the index (default: the model's).",
                              http={"min_length": 1, "max_length": 64, "help": "its name in the index"})
    clips_per_shot: int = _field(1, "3D CNNs: clips scored per shot, their centres spread evenly over it, their "
                                 "probabilities averaged (other models take 1).", min=1, max=16)

    def engine_arguments(self) -> dict[str, Any]:
        """The keyword arguments of `Engine.apply` for this request."""
        return {"detector": self.detector, "name": self.name, "clips_per_shot": self.clips_per_shot}


@dataclass(frozen=True)
class LabelRequest(_Request):
    """Which unjudged segments to judge next for a concept, chosen by an active-learning strategy
    (`Engine.label`)."""

    # Over HTTP the name is part of the path; its limits are the engine's (`check_name`), whose 400 says what is
    # wrong with it (a path parameter that fails validation would be a bare 404).
    name: str = _field(MISSING, "The concept's name.", argument=True, http={"in": "path", "help": "the concept's name"})
    n: int = _field(20, "How many segments to propose.", flags=("-n",), min=1, max=1000)
    strategy: str = _field("uncertain", "uncertain: scores nearest the detector's decision boundary; probable: the "
                           "highest scores; random: a seeded draw.", registry="mmindex.search.active:STRATEGIES")
    seed: int = _field(0, "Seed of the random draw.", min=0, http={"max": 2**32 - 1})

    def engine_arguments(self) -> dict[str, Any]:
        """The keyword arguments of `Engine.label` for this request."""
        return {"name": self.name, "n": self.n, "strategy": self.strategy, "seed": self.seed}


@dataclass(frozen=True)
class JudgmentsRequest(_Request):
    """The index's judgments (of one concept, or all) as the text of a plain file (`Engine.export_judgments`)."""

    concept: str | None = _field(None, "Only this concept's judgments.",
                                 http={"max_length": 200, "help": "only this concept's judgments"})
    format: str = _field("csv", "csv: segment_path,start,end,concept,label; qrels: `concept 0 doc relevance` "
                         "(trec_eval).", registry="mmindex.evaluate.judgments:FORMATS")

    def engine_arguments(self) -> dict[str, Any]:
        """The keyword arguments of `Engine.export_judgments` for this request."""
        return {"concept": self.concept, "fmt": self.format}


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
    then: list[str] = field(default_factory=list)  # a temporal query's later steps (search/temporal.py)
    within: float = 10.0
    group: str = "segment"

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
