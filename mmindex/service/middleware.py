"""One plain ASGI middleware: request body limit, security headers, JSON errors and request counters.

Plain ASGI rather than Starlette's BaseHTTPMiddleware, which would buffer streamed media responses
and cost a task per request.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from mmindex.service.metrics import Metrics

# The web UI loads only its own files; media are shown, never run. /docs pulls Swagger UI from a
# CDN, so it gets no CSP (it is documentation, and works only online anyway).
_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self'; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class ServiceMiddleware:
    """Counts requests and errors, adds security headers, and refuses bodies over `max_body` bytes (413).

    A body without Content-Length (chunked) is read up to the limit before the app sees it, so an
    upload can never fill the disk or the memory. An error answered in another type than JSON (Starlette's
    FileResponse answers a bad Range header with text/plain 400 and an empty 416) is rewritten as the
    app's JSON error, {"error": ...}, its status and other headers kept.
    """

    def __init__(self, app, metrics: Metrics, max_body: int):
        self.app = app
        self.metrics = metrics
        self.max_body = max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        status = {"code": 500}
        extra = list(_HEADERS)
        if not (path.startswith("/docs") or path.startswith("/redoc")):
            extra.append((b"content-security-policy", _CSP.encode()))

        held: dict = {}  # a non-JSON error response, until its body is complete

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [h for h in extra if h[0] not in names]
                if message["status"] >= 400 and not _is_json(message["headers"]):
                    held.update(start=message, body=bytearray())
                    return
            elif message["type"] == "http.response.body" and "start" in held:
                held["body"] += message.get("body", b"")
                if not message.get("more_body", False):
                    for m in _as_json(held.pop("start"), bytes(held.pop("body"))):
                        await send(m)
                return
            await send(message)

        try:
            if scope["method"] in ("POST", "PUT", "PATCH", "DELETE"):
                length = dict(scope.get("headers", [])).get(b"content-length")
                if length is not None and (not length.isdigit() or int(length) > self.max_body):
                    return await _refuse(send_wrapper, self.max_body)
                if length is None:
                    body, more = bytearray(), True
                    while more:
                        message = await receive()
                        if message["type"] == "http.disconnect":
                            return
                        body += message.get("body", b"")
                        more = message.get("more_body", False)
                        if len(body) > self.max_body:
                            return await _refuse(send_wrapper, self.max_body)
                    receive = _replay(bytes(body), receive)
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.request(status["code"])


def _is_json(headers) -> bool:
    return any(k.lower() == b"content-type" and v.split(b";")[0].strip() == b"application/json" for k, v in headers)


def _as_json(start: dict, body: bytes) -> list[dict]:
    """The messages of an error response whose body is not JSON, with the body as {"error": text}."""
    status = start["status"]
    headers = [(k, v) for k, v in start["headers"] if k.lower() not in (b"content-type", b"content-length")]
    message = body.decode("utf-8", "replace").strip()
    if status == 416:  # Starlette's is empty; say what is satisfiable (Content-Range: bytes */size)
        size = dict((k.lower(), v) for k, v in headers).get(b"content-range", b"").rpartition(b"/")[2]
        message = f"range not satisfiable: the file has {size.decode()} bytes" if size.isdigit() else message
    if not message:
        try:
            message = HTTPStatus(status).phrase
        except ValueError:
            message = f"error {status}"
    data = json.dumps({"error": message}).encode()
    headers += [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    return [{**start, "headers": headers}, {"type": "http.response.body", "body": data}]


async def _refuse(send, limit: int) -> None:
    body = json.dumps({"error": f"request body too large (limit {limit:,} bytes)"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, original):
    """A receive() that gives the buffered body once, then waits on the real one (for the disconnect)."""
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return await original()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
