"""The HTTP API's request and response bodies (pydantic models; they make /openapi.json). The request bodies hold
the fields of the requests the CLI shares (mmindex/search/requests.py), made by mmindex/service/params.py."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from mmindex.search.requests import AddRequest, ApplyRequest, TeachRequest
from mmindex.service.params import StrictBody, request_model

SegmentRef = Annotated[int, Field(ge=0, le=2**63 - 1)]  # a SQLite INTEGER


class ErrorOut(BaseModel):
    """Every 4xx/5xx answer: a message a person can act on, never a traceback."""

    error: str
    suggestions: list[str] | None = Field(default=None, description="close concept names, for an unknown concept")
    detail: list[dict] | None = Field(default=None, description="which parameters were invalid, and why")


class ChainOut(BaseModel):
    """The shot of one later step of a temporal query, with that step's normalised score."""

    segment_id: int
    start: float | None
    end: float | None
    score: float


class HitOut(BaseModel):
    """One hit, exactly as `mmindex search --json` prints it."""

    segment_id: int
    path: str
    start: float | None
    end: float | None
    score: float
    kind: str
    media_id: int | None = None
    why: dict[str, float] | None = Field(default=None, description="each criterion's raw score (explain=true)")
    parts: dict[str, float] | None = Field(default=None, description="each criterion's share of the score")
    then: list[ChainOut] | None = Field(default=None, description="a temporal query's chain: the shot of each later "
                                        "step, in order")
    matches: int | None = Field(default=None, description="group=video: the file's matching segments")


class SearchOut(BaseModel):
    """A page of hits, best first. `next_offset` is null on the last page."""

    hits: list[HitOut]
    offset: int
    k: int
    next_offset: int | None
    took_ms: float
    explanation: dict | None = Field(default=None, description="the fusion, each criterion and its weight, and the "
                                     "concepts a free text was mapped to, with its parse: what it was read as, "
                                     "the parts ANDed (explain=true or text given)")
    message: str | None = Field(default=None, description="why there are no hits (a text that matched no concept)")


class SegmentOut(BaseModel):
    """A segment's details and the URLs of its thumbnail and media (with the shot's time fragment)."""

    segment_id: int
    media_id: int
    path: str
    kind: str
    start: float | None
    end: float | None
    thumbnail_url: str
    media_url: str


class ConceptOut(BaseModel):
    id: str
    name: str
    synonyms: list[str]
    source: str
    classes: int = Field(description="ImageNet classes the concept covers (1 for a class)")


class ConceptsOut(BaseModel):
    concepts: list[ConceptOut]


class Features(BaseModel):
    """What the engine behind this server supports; the web UI shows only what is there."""

    text: bool
    feedback: bool
    upload: bool
    write: bool


class HealthOut(BaseModel):
    status: str
    segments: int
    generation: int
    features: Features
    version: str


class LatencyOut(BaseModel):
    count: int
    p50_ms: float | None
    p99_ms: float | None


class ThreadsOut(BaseModel):
    """The request threads of the process that answered: how many, how many are working, how many requests wait."""

    size: int
    busy: int
    queued: int


class MetricsOut(BaseModel):
    """Counters since the server started; latency over the last 10,000 searches."""

    uptime_s: float
    requests: int
    queries: int
    errors_4xx: int
    errors_5xx: int
    search_latency: LatencyOut
    index: dict[str, int]
    threads: ThreadsOut | None = Field(None, description="null until the server has started (no lifespan)")


#: `POST /api/media`'s body: `AddRequest`'s fields, as `mmindex add`'s PATHS are
PathsIn = request_model(AddRequest, "PathsIn", doc="Files or folders on the server to index.")


class AddOut(BaseModel):
    added: int
    updated: int
    unchanged: int
    failed: int
    errors: list[list[str]]
    seconds: float


class RemoveOut(BaseModel):
    removed: int


class FeedbackQueryIn(StrictBody):
    """The query that feedback refines: over HTTP the client sends it (the CLI refines its last query, or a saved
    one). `POST /api/feedback`'s body is this query and `FeedbackRequest`'s fields, made per app in
    routes/search.py (`k` is bounded by the server's `max_k`)."""

    concept: list[str] = Field(default_factory=list, max_length=20)
    like: list[SegmentRef] = Field(default_factory=list, max_length=20)
    text: str | None = Field(default=None, max_length=500)
    then: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        default_factory=list, max_length=8, description="a temporal query's later steps, as `GET /api/search`'s")
    within: float = Field(default=10.0, gt=0, le=86_400, description="as `GET /api/search`'s")
    group: Literal["segment", "video"] = Field(default="segment", description="as `GET /api/search`'s")


#: `POST /api/concepts`'s body: `TeachRequest`'s fields, as `mmindex teach`'s NAME, --positive and --negative
TeachIn = request_model(TeachRequest, "TeachIn", doc="A concept to teach: its name and the judged segments.")


class BuiltinOut(BaseModel):
    """The built-in concept a taught name hides, and how to reach it still."""

    id: str = Field(description="its WordNet id")
    query: str = Field(description="wordnet:NAME")


class ConceptNameOut(BaseModel):
    id: str
    name: str
    query: str = Field(description="what to search it by: its name, or its id when another detector has the name")
    shadows: BuiltinOut | None


class JudgmentCountsOut(BaseModel):
    added: int
    changed: int
    unchanged: int


class TaughtOut(BaseModel):
    """The detector taught and applied: `mmindex teach --json`'s report, plus the one concept's `query` and
    `shadows` at the top."""

    name: str
    detector_id: int
    version: int = Field(description="1, then one more each time the name is taught again")
    query: str = Field(description="search it as concept=QUERY")
    shadows: BuiltinOut | None = Field(description="the built-in concept of the same name, now reached as "
                                       "wordnet:NAME or its WordNet id")
    concepts: list[ConceptNameOut]
    segments: int = Field(description="segments it scored")
    replaced: bool = Field(description="whether it replaced an earlier version")
    messages: list[str]
    judgments: JudgmentCountsOut = Field(description="the judgments this request recorded (origin \"ui\")")
    training: dict = Field(description="how it was fitted: positives, negatives, sampled negatives, C, seconds")


#: `POST /api/detectors`'s body: `ApplyRequest`'s fields, as `mmindex apply`'s DETECTOR, --name and --clips-per-shot
ApplyIn = request_model(ApplyRequest, "ApplyIn", doc="A trained model to apply: a file on the server or an applied "
                        "detector's name, the name to give it, and the clips a shot for a 3D CNN.")


class AppliedOut(BaseModel):
    """The model applied: `mmindex apply --json`'s report."""

    name: str
    detector_id: int
    version: int = Field(description="1, then one more each time a model is applied under the name again")
    concepts: list[ConceptNameOut] = Field(description="its labels, as concepts")
    segments: int = Field(description="segments in the index")
    replaced: bool = Field(description="whether it replaced an earlier version")
    resumed: int = Field(description="batches scored by an interrupted apply of the same model that this one went on "
                         "from")
    errors: list[tuple[str, str]] = Field(description="[path, why] of the files that could not be read back (their "
                                          "segments score 0)")
    messages: list[str] = Field(description="which names now mean the detector rather than a built-in concept")


class ProposalOut(BaseModel):
    """An unjudged segment to judge next, with the URLs a hit's card needs."""

    segment_id: int
    path: str
    kind: str
    start: float | None
    end: float | None
    score: float | None = Field(description="the detector's score (null without a detector: a random draw)")
    thumbnail_url: str
    media_url: str


class JudgedOut(BaseModel):
    positive: int
    negative: int


class ProposalsOut(BaseModel):
    """`mmindex label --json`'s answer, each segment with its thumbnail's and media's URLs."""

    name: str
    strategy: str = Field(description="the strategy used (random when there is no detector yet)")
    requested: str
    detector: str | None = Field(description="the id of the concept whose scores chose them")
    judged: JudgedOut
    message: str | None
    segments: list[ProposalOut]
