"""`create_app`: the HTTP API and the web UI over one Engine. It translates HTTP in and out; nothing else.

The endpoints live in per-resource routers (mmindex/service/routes/) that talk only to the facade, through
the shared `Service` (mmindex/service/state.py); `GET /api/search`'s parameters are made from `SearchRequest`
(mmindex/search/requests.py), as `mmindex search`'s options are. Endpoints are plain `def`s: FastAPI runs them
in its thread pool, which holds `ServiceConfig.threads` threads (a request beyond them waits its turn), and
each thread reads through its own read-only connection. See docs/service.md for the API reference and the
security model.
"""

import contextlib
import json
import os
from pathlib import Path

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from mmindex import __version__
from mmindex.config import ServiceConfig
from mmindex.engine import Engine
from mmindex.service import schemas
from mmindex.service.errors import JSON, install_error_handlers
from mmindex.service.middleware import ServiceMiddleware
from mmindex.service.routes import concepts as concept_routes
from mmindex.service.routes import detectors as detector_routes
from mmindex.service.routes import index as index_routes
from mmindex.service.routes import media as media_routes
from mmindex.service.routes import search as search_routes
from mmindex.service.state import Service

WEB = Path(__file__).parent / "web"
_ERRORS = {code: {"model": schemas.ErrorOut} for code in (400, 401, 403, 404, 409, 413, 422, 501, 503)}

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
    api = APIRouter(prefix="/api", responses=_ERRORS)
    api.include_router(search_routes.router(svc, read))
    api.include_router(media_routes.router(svc, read))
    api.include_router(index_routes.router(svc, read))
    write = [Depends(svc.auth.write)]
    api.include_router(concept_routes.router(svc, read, write))
    api.include_router(media_routes.write_router(svc, write))
    api.include_router(detector_routes.router(svc, write))
    app.include_router(api)
    install_error_handlers(app)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=WEB), name="static")
    app.add_middleware(ServiceMiddleware, metrics=svc.metrics, max_body=config.max_upload_bytes + 1024 * 1024)
    return app
