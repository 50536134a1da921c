"""`create_app`: the HTTP API and the web UI over one Engine. It translates HTTP in and out; nothing else.

Endpoints are plain `def`s: FastAPI runs them in its thread pool, which holds `ServiceConfig.threads`
threads (a request beyond them waits its turn), and each thread reads through its own read-only Store
(a SQLite reader under WAL sees only committed batches, so a concurrent `mmindex add` is invisible
until it commits). See docs/service.md for the API reference and the security model.
"""

import contextlib
import inspect
import json
import logging
import mimetypes
import os
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qsl

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from mmindex import __version__
from mmindex.config import ServiceConfig
from mmindex.errors import IndexLocked, MediaError, MmindexError, StoreError, UnknownConcept
from mmindex.index.store import Store
from mmindex.media.images import open_image
from mmindex.search.fusion import NormaliserName
from mmindex.search.engine import Engine
from mmindex.service import schemas
from mmindex.service.auth import Auth
from mmindex.service.media import Forbidden, MediaRoots, Missing, Thumbnails
from mmindex.service.metrics import Metrics
from mmindex.service.middleware import ServiceMiddleware

log = logging.getLogger(__name__)

WEB = Path(__file__).parent / "web"
_MAX_ID = 2**63 - 1
_ERRORS = {code: {"model": schemas.ErrorOut} for code in (400, 401, 403, 404, 409, 413, 422, 501, 503)}
# Served with their own type; anything else (an indexed file named .html or .svg, say) as a download.
_MEDIA_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/tiff",
                "video/mp4", "video/webm", "video/x-matroska", "video/quicktime", "video/x-msvideo", "video/x-m4v"}

SegmentId = Annotated[int, PathParam(ge=0, le=_MAX_ID, description="segment id")]
ConceptParam = Annotated[list[Annotated[str, Query(min_length=1, max_length=500)]],
                         Query(max_length=20, description='concept expression, e.g. "cat AND NOT dog" (repeatable)')]
LikeParam = Annotated[list[Annotated[str, Query(pattern=r"^[0-9]{1,18}(\^[0-9]{1,6}(\.[0-9]{1,6})?)?$")]],
                      Query(max_length=20, description="example segment id, optionally weighted: 42 or 42^0.5")]


class JSON(JSONResponse):
    """The app's JSON responses: UTF-8 as usual, but a file name that is not UTF-8 (a str holding lone
    surrogates, 'caf\\udce9') is written with ASCII escapes ("caf\\udce9"), as `mmindex search --json`
    writes it, where Starlette's JSONResponse (and FastAPI's pydantic fast path) fail to encode it."""

    def render(self, content) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


class Service:
    """What the endpoints share: the engine, a store reader, the media roots, thumbnails, metrics."""

    def __init__(self, engine: Engine, config: ServiceConfig):
        self.engine = engine
        self.config = config
        self.auth = Auth(config.token, config.public_read)
        self.metrics = Metrics()
        engine.reader()  # StoreError now, not at the first request, if there is no index
        self._upload_lock = threading.Lock()  # the first upload loads the model; do that once
        self.roots = MediaRoots(config.media_roots, self._media_paths)
        self.thumbnails = Thumbnails(engine.index_dir / "thumbnails", config.thumbnail_size)
        params = inspect.signature(engine.search).parameters
        self.features = schemas.Features(
            text="text" in params, feedback=callable(getattr(engine, "run_spec", None)),
            upload=True, write=self.auth.enabled)
        # A server has many users: no shared "last query" written into the index on every search.
        self._search_options = {"remember": False} if "remember" in params else {}
        self._counts: tuple[int, dict] | None = None
        self.pool: anyio.CapacityLimiter | None = None  # the thread pool, once the server runs (lifespan)
        self._disk: tuple[float, int] | None = None

    @property
    def store(self) -> Store:
        """This thread's read-only store (requests run in parallel threads, each on its own connection)."""
        return self.engine.reader()

    def generation(self) -> int:
        return self.store.generation

    def segment(self, segment_id: int) -> dict:
        found = self.store.segments([segment_id]).get(segment_id)
        if found is None:
            raise HTTPException(404, f"no segment with id {segment_id}")
        return found

    def counts(self) -> dict:
        generation = self.generation()
        if self._counts is None or self._counts[0] != generation:
            self._counts = (generation, self.store.counts())
        return self._counts[1]

    def disk_bytes(self) -> int:
        if self._disk is None or time.monotonic() - self._disk[0] > 30:  # a folder walk: not per request
            self._disk = (time.monotonic(), self.store.disk_bytes())
        return self._disk[1]

    def real_media_path(self, path: str) -> str:
        try:
            return self.roots.check(path, self.generation())
        except Forbidden as exc:
            raise HTTPException(403, f"refused: {exc}") from None
        except Missing as exc:
            raise HTTPException(404, str(exc)) from None

    def search(self, concepts, like, text, k, offset, explain, normalise) -> dict:
        """One page of hits: the engine is asked for offset + k and the first `offset` are dropped."""
        self._check_depth(offset, k)
        if not concepts and not like and not text:
            return self._empty(offset, k, "empty query: give at least one concept, like or text")
        self._check_ids(int(str(ref).partition("^")[0]) for ref in like if str(ref).partition("^")[0].isdigit())
        kwargs = dict(self._search_options)
        if text:
            if not self.features.text:
                raise HTTPException(501, "free-text queries are not supported by this server's engine yet")
            kwargs["text"] = text
        t0 = time.perf_counter()
        results = self.engine.search(list(concepts), list(like), k=offset + k, explain=explain,
                                     normalise=normalise, **kwargs)
        return self._page(results, offset, k, t0, explain or bool(text))

    def feedback(self, body: schemas.FeedbackIn) -> dict:
        """The query refined by relevance judgments; the client keeps the query and the judgments (stateless)."""
        if not self.features.feedback:
            raise HTTPException(501, "relevance feedback is not supported by this server's engine yet")
        from mmindex.search.feedback import QuerySpec

        if not body.concept and not body.like and not body.text:
            return self._empty(0, body.k, "empty query: feedback refines a query, give its concept, like or text")
        self._check_ids([*body.like, *body.positive, *body.negative])
        spec = QuerySpec([*body.concept], [str(i) for i in body.like], [body.text] if body.text else [], body.k,
                         text_encoder=getattr(self.engine, "text_encoder", None))
        t0 = time.perf_counter()
        results = self.engine.run_spec(spec.judge(body.positive, body.negative), explain=True)
        return self._page(results, 0, body.k, t0, True)

    def _check_ids(self, ids) -> None:
        """404 for example or judged segment ids that are not in the index."""
        ids = list(ids)
        known = self.store.segments(ids)
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

    def _media_paths(self) -> list[str]:
        return self.store.media_paths()  # the store decodes names that are not UTF-8 (kept as bytes)


def app_from_environment() -> FastAPI:
    """The app of one `mmindex serve --workers N` process: index and settings from $MMINDEX_SERVE
    (JSON, written by the command), the token from $MMINDEX_TOKEN."""
    spec = json.loads(os.environ["MMINDEX_SERVE"])
    settings = spec["config"]
    settings["media_roots"] = tuple(settings["media_roots"])
    return create_app(spec["index"], ServiceConfig(token=os.environ.get("MMINDEX_TOKEN") or None, **settings))


def create_app(engine_or_index: Engine | str | os.PathLike, config: ServiceConfig | None = None) -> FastAPI:
    """The FastAPI app serving the API under /api and the web UI at /. Raises StoreError if there is no index."""
    config = config or ServiceConfig()
    engine = engine_or_index if isinstance(engine_or_index, Engine) else Engine(engine_or_index)
    svc = Service(engine, config)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        # The pool is per event loop, so it is sized here, in the loop of the process that serves.
        svc.pool = anyio.to_thread.current_default_thread_limiter()
        svc.pool.total_tokens = config.threads
        yield

    app = FastAPI(title="mmindex", version=__version__, summary="Search an mmindex index by concept and example.",
                  lifespan=lifespan, default_response_class=JSON)
    app.state.service = svc
    # Read endpoints document (and check) the bearer token only when reads are private.
    read = [] if config.public_read else [Depends(svc.auth.read)]
    write = [Depends(svc.auth.write)]
    api = APIRouter(prefix="/api", responses=_ERRORS)

    @api.get("/search", response_model=schemas.SearchOut, response_model_exclude_unset=True, dependencies=read)
    def search(
        concept: ConceptParam = [],  # noqa: B006 (FastAPI copies defaults per request)
        like: LikeParam = [],  # noqa: B006
        text: Annotated[str | None, Query(max_length=500, description="free text (if the engine supports it)")] = None,
        k: Annotated[int, Query(ge=1, le=config.max_k, description="hits per page")] = 24,
        offset: Annotated[int, Query(ge=0, le=config.max_offset, description="hits to skip (paging)")] = 0,
        explain: bool = False,
        normalise: NormaliserName = "minmax",
    ) -> dict:
        """Rank segments by concept expressions and example segments, fused; same hits as `mmindex search --json`."""
        return svc.search(concept, like, text, k, offset, explain, normalise)

    @api.post("/search", response_model=schemas.SearchOut, response_model_exclude_unset=True, dependencies=read)
    def search_by_upload(
        image: Annotated[UploadFile, File(description="an image to use as the example")],
        concept: Annotated[list[str], Form(max_length=20)] = [],  # noqa: B006
        k: Annotated[int, Form(ge=1, le=config.max_k)] = 24,
        offset: Annotated[int, Form(ge=0, le=config.max_offset)] = 0,
        explain: Annotated[bool, Form()] = False,
    ) -> dict:
        """Search with an uploaded image as the example (plus optional concept expressions)."""
        data = image.file.read(config.max_upload_bytes + 1)
        if len(data) > config.max_upload_bytes:
            raise HTTPException(413, f"image larger than {config.max_upload_bytes:,} bytes")
        open_image(data, config.max_upload_pixels)  # refuse bombs and non-images before the model sees them
        with tempfile.NamedTemporaryFile(suffix=".upload") as tmp:
            tmp.write(data)
            tmp.flush()
            with svc._upload_lock:
                engine.embed_image(tmp.name)  # loads the model outside the engine's search lock
            return svc.search(concept, [tmp.name], None, k, offset, explain, "minmax")

    @api.get("/segments/{segment_id}", response_model=schemas.SegmentOut, dependencies=read)
    def segment(segment_id: SegmentId) -> dict:
        """A segment's media path, kind, time range and the URLs of its thumbnail and media."""
        s = svc.segment(segment_id)
        fragment = f"#t={s['start']:.3f},{s['end']:.3f}" if s["start"] is not None and s["end"] is not None else ""
        return {"segment_id": segment_id, **s, "thumbnail_url": f"/api/segments/{segment_id}/thumbnail",
                "media_url": f"/api/media/{segment_id}{fragment}"}

    @api.get("/segments/{segment_id}/thumbnail", response_class=Response, dependencies=read,
             responses={200: {"content": {"image/jpeg": {}}}})
    def thumbnail(segment_id: SegmentId) -> Response:
        """A JPEG thumbnail: the image, or the frame in the middle of a video shot. Cached on disk."""
        s = svc.segment(segment_id)
        real = svc.real_media_path(s["path"])
        try:
            data = svc.thumbnails.get(segment_id, real, s["kind"], s["start"], s["end"])
        except MediaError as exc:
            raise HTTPException(422, f"cannot make a thumbnail: {exc}") from None
        scope = "public" if config.public_read else "private"
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": f"{scope}, max-age=86400"})

    @api.head("/media/{segment_id}", response_class=FileResponse, dependencies=read, include_in_schema=False)
    @api.get("/media/{segment_id}", response_class=FileResponse, dependencies=read,
             responses={200: {"content": {"image/*": {}, "video/*": {}, "application/octet-stream": {}}},
                        206: {"description": "partial content"},
                        416: {"description": "range not satisfiable"}})
    def media(segment_id: SegmentId) -> FileResponse:
        """The segment's media file, with HTTP Range support (a video plays from a shot's start)."""
        real = svc.real_media_path(svc.segment(segment_id)["path"])
        guessed = mimetypes.guess_type(real)[0]
        media_type = guessed if guessed in _MEDIA_TYPES else "application/octet-stream"
        return FileResponse(real, media_type=media_type, headers={"Content-Security-Policy": "sandbox"})

    @api.get("/concepts", response_model=schemas.ConceptsOut, dependencies=read)
    def concepts(
        q: Annotated[str | None, Query(max_length=100, description="text to complete")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 10,
    ) -> dict:
        """Concept autocomplete: names, synonyms or WordNet ids matching `q`, best first."""
        found = engine.concepts(q, limit)
        return {"concepts": [{"id": c.id, "name": c.name, "synonyms": list(c.synonyms), "source": c.source,
                              "classes": len(c.classes)} for c in found]}

    @api.get("/health", response_model=schemas.HealthOut)
    def health() -> dict:
        """Liveness, the number of committed segments and what this server supports. Always open.

        503 {"status": "damaged", "detail"} when the index cannot be searched (`mmindex check` says why)."""
        damage = svc.engine.health()
        if damage:
            return JSONResponse({"status": "damaged", "detail": damage, "version": __version__}, status_code=503)
        return {"status": "ok", "segments": svc.counts()["segments"], "generation": svc.generation(),
                "features": svc.features.model_dump(), "version": __version__}

    @api.get("/metrics", response_model=schemas.MetricsOut, dependencies=read)
    def metrics() -> dict:
        """Requests, queries, errors and search latency since start; index size; this process's request threads."""
        pool = svc.pool.statistics() if svc.pool else None
        threads = pool and {"size": int(pool.total_tokens), "busy": pool.borrowed_tokens, "queued": pool.tasks_waiting}
        return {**svc.metrics.snapshot(), "index": {**svc.counts(), "disk_bytes": svc.disk_bytes()}, "threads": threads}

    @api.post("/feedback", response_model=schemas.SearchOut, response_model_exclude_unset=True,
              dependencies=read, status_code=200)
    def feedback(body: schemas.FeedbackIn) -> dict:
        """Relevance feedback: the query re-ranked with hits marked relevant (positive) or not (negative).

        Stateless: send the whole query and every judgment so far. Judged hits are not shown again.
        Answers 501 when the engine has no feedback support.
        """
        return svc.feedback(body)

    @api.post("/media", response_model=schemas.AddOut, dependencies=write)
    def add_media(body: schemas.PathsIn) -> dict:
        """Index files or folders on the server (inside the media roots). Needs the token."""
        paths = [_allowed(svc, p) for p in body.paths]
        # Confined as reads are: no symbolic link met in a folder is followed out of the roots.
        report = engine.add(paths, confine_to=svc.roots.containing(paths, svc.generation()))
        return {"added": report.added, "updated": report.updated, "unchanged": report.unchanged,
                "failed": report.failed, "errors": [list(e) for e in report.errors], "seconds": report.seconds}

    @api.delete("/media", response_model=schemas.RemoveOut, dependencies=write)
    def remove_media(
        request: Request,
        path: Annotated[list[str], Query(min_length=1, max_length=1000, description="file or folder (repeatable)")],
    ) -> dict:
        """Remove media by file, or every file under a folder (inside the media roots). Needs the token."""
        # Read again from the raw query: Starlette turns %-escaped bytes that are not UTF-8 into U+FFFD, and a
        # file name that is not UTF-8 must arrive as the index keeps it, surrogateescape text ('caf\udce9').
        query = request.scope.get("query_string", b"").decode("latin-1")
        path = [v for k, v in parse_qsl(query, keep_blank_values=True, errors="surrogateescape") if k == "path"]
        return {"removed": engine.remove([_allowed(svc, p, must_exist=False) for p in path])}

    app.include_router(api)
    _install_error_handlers(app)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=WEB), name="static")
    app.add_middleware(ServiceMiddleware, metrics=svc.metrics, max_body=config.max_upload_bytes + 1024 * 1024)
    return app


def _allowed(svc: Service, path: str, must_exist: bool = True) -> str:
    """A path a client asked to add or remove, if it lies inside the media roots (else 400/403/404)."""
    if "\x00" in path:
        raise HTTPException(400, "path contains a NUL byte")
    try:  # a name that is not UTF-8 arrives as surrogateescape text ('caf\udce9'); other lone surrogates are no name
        os.fsencode(path)
    except UnicodeEncodeError:
        raise HTTPException(400, f"not a file name: {path!r} holds a lone surrogate") from None
    if not os.path.isabs(path):
        raise HTTPException(400, f"not an absolute path: {path!r}")
    path = path.rstrip(os.sep) or os.sep
    try:
        svc.roots.check(path, svc.generation(), must_exist=False)
    except Forbidden as exc:
        raise HTTPException(403, f"refused: {exc}") from None
    if must_exist and not os.path.exists(path):
        raise HTTPException(404, f"no such file or folder: {path}")
    return path


def _install_error_handlers(app: FastAPI) -> None:
    """Every error becomes JSON {"error": ...} with a 4xx (or 5xx for a bug), never a traceback."""

    def error(status: int, message: str, headers=None, **extra) -> JSONResponse:
        # JSON, not Starlette's JSONResponse: a message may name a file whose name is not UTF-8
        return JSON({"error": message, **extra}, status_code=status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # Starlette names only the first route's methods; name every route's
            allowed = {m for r in app.routes if getattr(r, "methods", None) and r.path_regex.match(request.url.path)
                       for m in r.methods}
            headers = {**(headers or {}), "Allow": ", ".join(sorted(allowed))}
        return error(exc.status_code, str(exc.detail), headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
                     "type": str(e.get("type", ""))} for e in exc.errors()]
        if problems and all(p["loc"][:1] == ["path"] for p in problems):
            return error(404, "not found")  # /api/segments/abc, /api/media/..%2Fetc: no such resource
        where = ", ".join(".".join(p["loc"][1:]) or p["loc"][0] for p in problems if p["loc"])
        return error(422, f"invalid parameters: {where}" if where else "invalid request", detail=problems)

    @app.exception_handler(UnknownConcept)
    async def unknown_concept(request: Request, exc: UnknownConcept):
        return error(400, str(exc), suggestions=exc.suggestions)

    @app.exception_handler(MmindexError)
    async def library_error(request: Request, exc: MmindexError):
        if isinstance(exc, IndexLocked):
            return error(409, str(exc))
        if isinstance(exc, StoreError):
            return error(503, str(exc))
        return error(400, str(exc))  # QueryError, MediaError: the client's query or upload

    @app.exception_handler(sqlite3.DatabaseError)
    async def database_error(request: Request, exc: sqlite3.DatabaseError):
        return error(503, f"the index database failed ({exc}); run `mmindex check`")

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error(500, "internal error (logged on the server)")
