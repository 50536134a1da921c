"""Segments and media: `GET /api/segments/{id}`, its thumbnail, `GET|HEAD /api/media/{id}` (the file, with HTTP
Range), and, with the token, `POST /api/media` (add files) and `DELETE /api/media` (remove them): their body and
parameters are `AddRequest`'s and `RemoveRequest`'s fields (mmindex/search/requests.py), as `mmindex add`'s and
`mmindex remove`'s PATHS are."""

import dataclasses
import mimetypes
import os
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response

from mmindex.errors import MediaError
from mmindex.search.requests import AddRequest, RemoveRequest
from mmindex.service import schemas
from mmindex.service.media import Forbidden
from mmindex.service.params import http_name, request_dependency, request_from
from mmindex.service.state import Service, segment_urls

_MAX_ID = 2**63 - 1
# Served with their own type; anything else (an indexed file named .html or .svg, say) as a download.
_MEDIA_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/tiff",
                "video/mp4", "video/webm", "video/x-matroska", "video/quicktime", "video/x-msvideo", "video/x-m4v"}

SegmentId = Annotated[int, PathParam(ge=0, le=_MAX_ID, description="segment id")]


def router(svc: Service, read: list) -> APIRouter:
    """The read endpoints (segments, thumbnails, media files); `write_router` has adding and removing."""
    api = APIRouter(dependencies=read)
    scope = "public" if svc.config.public_read else "private"

    @api.get("/segments/{segment_id}", response_model=schemas.SegmentOut)
    def segment(segment_id: SegmentId) -> dict:
        """A segment's media path, kind, time range and the URLs of its thumbnail and media."""
        s = svc.segment(segment_id)
        return {"segment_id": segment_id, **s, **segment_urls(segment_id, s["start"], s["end"])}

    @api.get("/segments/{segment_id}/thumbnail", response_class=Response,
             responses={200: {"content": {"image/jpeg": {}}}})
    def thumbnail(segment_id: SegmentId) -> Response:
        """A JPEG thumbnail: the image, or the frame in the middle of a video shot. Cached on disk."""
        s = svc.segment(segment_id)
        real = svc.real_media_path(s["path"])
        try:
            data = svc.thumbnails.get(segment_id, real, s["kind"], s["start"], s["end"])
        except MediaError as exc:
            raise HTTPException(422, f"cannot make a thumbnail: {exc}") from None
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": f"{scope}, max-age=86400"})

    @api.head("/media/{segment_id}", response_class=FileResponse, include_in_schema=False)
    @api.get("/media/{segment_id}", response_class=FileResponse,
             responses={200: {"content": {"image/*": {}, "video/*": {}, "application/octet-stream": {}}},
                        206: {"description": "partial content"},
                        416: {"description": "range not satisfiable"}})
    def media(segment_id: SegmentId) -> FileResponse:
        """The segment's media file, with HTTP Range support (a video plays from a shot's start)."""
        real = svc.real_media_path(svc.segment(segment_id)["path"])
        guessed = mimetypes.guess_type(real)[0]
        media_type = guessed if guessed in _MEDIA_TYPES else "application/octet-stream"
        return FileResponse(real, media_type=media_type, headers={"Content-Security-Policy": "sandbox"})

    return api


def write_router(svc: Service, write: list) -> APIRouter:
    """Adding and removing media on the server: the token's endpoints."""
    api = APIRouter(dependencies=write)
    removal = Depends(request_dependency(RemoveRequest, Query))
    (paths_field,) = dataclasses.fields(RemoveRequest)

    @api.post("/media", response_model=schemas.AddOut)
    def add_media(body: schemas.PathsIn) -> dict:
        """Index files or folders on the server (inside the media roots). Needs the token."""
        paths = [allowed(svc, p) for p in request_from(AddRequest, body).paths]
        # Confined as reads are: no symbolic link met in a folder is followed out of the roots.
        report = svc.engine.add(paths, confine_to=svc.roots.containing(paths, svc.generation()))
        return {"added": report.added, "updated": report.updated, "unchanged": report.unchanged,
                "failed": report.failed, "errors": [list(e) for e in report.errors], "seconds": report.seconds}

    @api.delete("/media", response_model=schemas.RemoveOut)
    def remove_media(request: Request, _checked: RemoveRequest = removal) -> dict:
        """Remove media by file, or every file under a folder (inside the media roots). Needs the token."""
        # The paths are read again from the raw query (the dependency checked and documented them): Starlette
        # turns %-escaped bytes that are not UTF-8 into U+FFFD, and a file name that is not UTF-8 must arrive
        # as the index keeps it, surrogateescape text ('caf\udce9').
        query = request.scope.get("query_string", b"").decode("latin-1")
        name = http_name(paths_field)
        paths = [v for k, v in parse_qsl(query, keep_blank_values=True, errors="surrogateescape") if k == name]
        return {"removed": svc.engine.remove([allowed(svc, p, must_exist=False) for p in paths])}

    return api


def allowed(svc: Service, path: str, must_exist: bool = True) -> str:
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
