"""`Service`: what the routers share (the engine, the media roots, thumbnails, metrics, the token check), and
the translation of a search, feedback, teach or label request into a call of the facade and of its results into
an answer.

Everything about the index is read through the facade (`Engine.counts`, `segments`, `generation`, ...), each
thread on its own read-only connection: a SQLite reader under WAL sees only committed batches, so a concurrent
`mmindex add` is invisible until it commits.
"""

from __future__ import annotations

import inspect
import threading
import time

import anyio
from fastapi import HTTPException

from mmindex.config import ServiceConfig
from mmindex.engine import Engine
from mmindex.search.requests import (
    ApplyRequest,
    FeedbackRequest,
    LabelRequest,
    QuerySpec,
    SearchRequest,
    TeachRequest,
)
from mmindex.search.temporal import parse_step
from mmindex.service import schemas
from mmindex.service.auth import Auth
from mmindex.service.media import Forbidden, MediaRoots, Missing, Thumbnails
from mmindex.service.metrics import Metrics
from mmindex.text import DEFAULT_TEXT_ENCODER, text_encoder_installed


class Service:
    """What the endpoints share: the engine, the media roots, thumbnails, metrics and the token check."""

    def __init__(self, engine: Engine, config: ServiceConfig):
        self.engine = engine
        self.config = config
        self.auth = Auth(config.token, config.public_read)
        self.metrics = Metrics()
        engine.generation()  # StoreError now, not at the first request, if there is no index
        self.upload_lock = threading.Lock()  # the first upload loads the model; do that once
        self.roots = MediaRoots(config.media_roots, engine.media_paths)  # names that are not UTF-8 decoded
        self.thumbnails = Thumbnails(engine.index_dir / "thumbnails", config.thumbnail_size)
        params = inspect.signature(engine.search).parameters
        self.features = schemas.Features(
            # the web UI offers free text only where its encoder is installed (MiniLM: mmindex[text])
            text="text" in params and text_encoder_installed(getattr(engine, "text_encoder", DEFAULT_TEXT_ENCODER)),
            feedback=callable(getattr(engine, "run_spec", None)),
            upload=True, write=self.auth.enabled)
        # A server has many users: no shared "last query" written into the index on every search.
        self._search_options = {"remember": False} if "remember" in params else {}
        self._counts: tuple[int, dict] | None = None
        self.pool: anyio.CapacityLimiter | None = None  # the thread pool, once the server runs (lifespan)
        self._disk: tuple[float, int] | None = None

    def generation(self) -> int:
        return self.engine.generation()

    def segment(self, segment_id: int) -> dict:
        found = self.engine.segment_details([segment_id]).get(segment_id)
        if found is None:
            raise HTTPException(404, f"no segment with id {segment_id}")
        return found

    def counts(self) -> dict:
        generation = self.generation()
        if self._counts is None or self._counts[0] != generation:
            self._counts = (generation, self.engine.counts())
        return self._counts[1]

    def disk_bytes(self) -> int:
        if self._disk is None or time.monotonic() - self._disk[0] > 30:  # a folder walk: not per request
            self._disk = (time.monotonic(), self.engine.disk_bytes())
        return self._disk[1]

    def real_media_path(self, path: str) -> str:
        try:
            return self.roots.check(path, self.generation())
        except Forbidden as exc:
            raise HTTPException(403, f"refused: {exc}") from None
        except Missing as exc:
            raise HTTPException(404, str(exc)) from None

    def search(self, request: SearchRequest, offset: int = 0) -> dict:
        """One page of hits: the engine is asked for offset + k and the first `offset` are dropped."""
        self._check_depth(offset, request.k)
        if not request.concept and not request.like and not request.text:
            return self._empty(offset, request.k, "empty query: give at least one concept, like or text")
        self._check_ids(int(ref.partition("^")[0]) for ref in request.like if ref.partition("^")[0].isdigit())
        self._check_steps(request.then)
        if request.text and not self.features.text:
            raise HTTPException(501, "free-text queries are not supported by this server's engine yet")
        arguments = request.engine_arguments()
        if not request.text:
            del arguments["text"]  # an engine without free text takes no `text` argument
        t0 = time.perf_counter()
        results = self.engine.search(**{**arguments, "k": offset + request.k}, **self._search_options)
        return self._page(results, offset, request.k, t0, request.explain or bool(request.text))

    def feedback(self, query: schemas.FeedbackQueryIn, request: FeedbackRequest) -> dict:
        """The query refined by relevance judgments; the client keeps the query and the judgments (stateless)."""
        if not self.features.feedback:
            raise HTTPException(501, "relevance feedback is not supported by this server's engine yet")
        k: int = request.k  # type: ignore[assignment]  # the body's k has a default and is never null
        if not query.concept and not query.like and not query.text:
            return self._empty(0, k, "empty query: feedback refines a query, give its concept, like or text")
        self._check_ids([*query.like, *request.positive, *request.negative])
        self._check_steps(query.then)
        spec = QuerySpec([*query.concept], [str(i) for i in query.like], [query.text] if query.text else [], k,
                         text_encoder=getattr(self.engine, "text_encoder", None), then=[*query.then],
                         within=query.within, group=query.group)
        t0 = time.perf_counter()
        results = self.engine.run_spec(spec.judge(request.positive, request.negative), explain=request.explain)
        return self._page(results, 0, k, t0, request.explain or bool(query.text))

    def teach(self, request: TeachRequest) -> dict:
        """Record the judgments (origin "ui": the API is the web UI's), train the concept on all of its judgments
        and apply it (`Engine.teach`, under the writer lock: 409 while another writer holds the index)."""
        self._check_ids([*request.positive, *request.negative])
        report = self.engine.teach(**request.engine_arguments(), origin="ui")
        (concept,) = report["concepts"]  # a taught detector has the one label
        return {**report, "query": concept["query"], "shadows": concept["shadows"]}

    def apply(self, request: ApplyRequest, model_file: str | None) -> dict:
        """Apply a model (`Engine.apply`, under the writer lock: 409 while another writer holds the index):
        `model_file`, a file on the server the caller checked is inside the media roots, or else the copy of the
        detector applied under `request.detector` (404 when there is none)."""
        arguments = request.engine_arguments()
        if model_file is None:
            copy = self.engine.applied_bundle(request.detector)
            if copy is None:
                raise HTTPException(404, f"no detector named {request.detector!r} in the index; give the absolute "
                                    "path of a model file on the server (inside the media roots) to apply a new one")
            arguments.update(detector=str(copy), name=request.name or request.detector)
        return self.engine.apply(**arguments)

    def proposals(self, request: LabelRequest) -> dict:
        """The unjudged segments to judge next for a concept (`Engine.label`), with their thumbnails' URLs."""
        found = self.engine.label(**request.engine_arguments())
        found["segments"] = [{**s, **segment_urls(s["segment_id"], s["start"], s["end"])} for s in found["segments"]]
        return found

    def _check_steps(self, then) -> None:
        """A temporal step's example over HTTP is a segment of the index (400 for a file name, 404 if unknown), as
        `like` is: the server reads no file a client names."""
        steps = [parse_step(step) for step in then]
        refs = [value.partition("^")[0] for kind, value in steps if kind == "like"]
        bad = [r for r in refs if not r.isdigit()]
        if bad:
            raise HTTPException(400, f"then like:{bad[0]}: over HTTP an example is a segment id")
        self._check_ids(int(r) for r in refs)

    def _check_ids(self, ids) -> None:
        """404 for example or judged segment ids that are not in the index."""
        ids = list(ids)
        known = self.engine.segment_details(ids)
        missing = sorted({i for i in ids if i not in known})
        if missing:
            raise HTTPException(404, f"no segment with id {', '.join(map(str, missing))} in the index")

    def _empty(self, offset: int, k: int, message: str) -> dict:
        return {"hits": [], "offset": offset, "k": k, "next_offset": None, "took_ms": 0.0, "message": message}

    def _check_depth(self, offset: int, k: int) -> None:
        if offset + k > self.config.max_offset + self.config.max_k:
            raise HTTPException(422, f"offset + k must be at most {self.config.max_offset + self.config.max_k}")

    def _page(self, results, offset: int, k: int, t0: float, with_explanation: bool) -> dict:
        took = (time.perf_counter() - t0) * 1000
        self.metrics.query(took)
        page = {"hits": [h.to_dict() for h in results[offset:]], "offset": offset, "k": k,
                "next_offset": offset + k if len(results) >= offset + k else None, "took_ms": round(took, 3)}
        if with_explanation and getattr(results, "explanation", None):
            page["explanation"] = results.explanation
        if getattr(results, "message", None):
            page["message"] = results.message
        return page



def segment_urls(segment_id: int, start: float | None, end: float | None) -> dict[str, str]:
    """The URLs of a segment's thumbnail and media file (with a video shot's time fragment)."""
    fragment = f"#t={start:.3f},{end:.3f}" if start is not None and end is not None else ""
    return {"thumbnail_url": f"/api/segments/{segment_id}/thumbnail", "media_url": f"/api/media/{segment_id}{fragment}"}
