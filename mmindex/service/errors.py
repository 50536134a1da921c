"""The service's JSON responses and its errors: every error becomes JSON {"error": ...} with a 4xx (or a 5xx
for a bug), never a traceback; library errors (mmindex/errors.py) become their status codes here."""

import json
import logging
import sqlite3

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mmindex.errors import IndexLocked, MmindexError, StoreError, UnknownConcept, missing_extra

log = logging.getLogger(__name__)


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


def install_error_handlers(app: FastAPI) -> None:
    """Every error becomes JSON {"error": ...} with a 4xx (or 5xx for a bug), never a traceback."""

    def error(status: int, message: str, headers=None, **extra) -> JSONResponse:
        # JSON, not Starlette's JSONResponse: a message may name a file whose name is not UTF-8
        return JSON({"error": message, **extra}, status_code=status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # Starlette names only the first route's methods; name every route's
            allowed = _methods(app.routes, request.url.path)
            headers = {**(headers or {}), "Allow": ", ".join(sorted(allowed))}
        return error(exc.status_code, str(exc.detail), headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
                     "type": str(e.get("type", ""))} for e in exc.errors()]
        if problems and all(p["loc"][:1] == ["path"] for p in problems):
            return error(404, "not found")  # /api/segments/abc, /api/media/..%2Fetc: no such resource
        # what is wrong with each, in words: "name: String should have at most 64 characters"
        where = "; ".join(f"{'.'.join(p['loc'][1:]) or p['loc'][0]}: {p['msg']}" for p in problems if p["loc"])
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

    @app.exception_handler(ImportError)
    async def missing_module(request: Request, exc: ImportError):
        if missing_extra(exc) is None:
            return await bug(request, exc)
        return error(501, str(missing_extra(exc)))  # this server was installed without that extra

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error(500, "internal error (logged on the server)")


def _methods(routes, path: str, prefix: str = "") -> set[str]:
    """The methods of every route matching `path`, walking the included routers (recent FastAPI versions keep
    an included router as one entry, whose routes match the path without the prefix it was included under)."""
    found: set[str] = set()
    for route in routes:
        if hasattr(route, "original_router"):
            found |= _methods(route.original_router.routes, path, prefix + route.include_context.prefix)
        elif getattr(route, "methods", None) and path.startswith(prefix) and route.path_regex.match(path[len(prefix):]):
            found |= route.methods
    return found
