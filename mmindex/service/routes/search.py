"""Searching: `GET /api/search` (parameters made from `SearchRequest`), `POST /api/search` (an uploaded example)
and `POST /api/feedback` (a body with `FeedbackRequest`'s fields): each request is defined once, in
mmindex/search/requests.py, for the CLI too. The concepts to search by are routes/concepts.py's."""

import dataclasses
import tempfile
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, UploadFile

from mmindex.media.images import open_image
from mmindex.search.requests import FeedbackRequest, SearchRequest
from mmindex.service import schemas
from mmindex.service.params import request_dependency, request_from, request_model
from mmindex.service.state import Service

#: the fields an upload search takes beside the image (`like` is the image; a free text needs no upload)
UPLOAD_FIELDS = ("concept", "k", "explain", "normalise", "fusion")


def router(svc: Service, read: list) -> APIRouter:
    config = svc.config
    limits = {"k": {"max": config.max_k}}
    query = Depends(request_dependency(SearchRequest, Query, limits))
    form = Depends(request_dependency(SearchRequest, Form, limits, only=UPLOAD_FIELDS))
    FeedbackIn = request_model(FeedbackRequest, "FeedbackIn", limits, base=schemas.FeedbackQueryIn,  # noqa: N806
                               doc="The query being refined, and the hits the user marked relevant or not.")
    api = APIRouter(dependencies=read)
    Offset = Annotated[int, Query(ge=0, le=config.max_offset, description="hits to skip (paging)")]
    FormOffset = Annotated[int, Form(ge=0, le=config.max_offset, description="hits to skip (paging)")]

    @api.get("/search", response_model=schemas.SearchOut, response_model_exclude_unset=True)
    def search(request: SearchRequest = query, offset: Offset = 0) -> dict:
        """Rank segments by concept expressions, free texts and example segments, fused; same hits as
        `mmindex search --json`, whose options are these parameters (mmindex/search/requests.py)."""
        return svc.search(request, offset)

    @api.post("/search", response_model=schemas.SearchOut, response_model_exclude_unset=True)
    def search_by_upload(image: Annotated[UploadFile, File(description="an image to use as the example")],
                         request: SearchRequest = form, offset: FormOffset = 0) -> dict:
        """Search with an uploaded image as the example (plus optional concept expressions)."""
        data = image.file.read(config.max_upload_bytes + 1)
        if len(data) > config.max_upload_bytes:
            raise HTTPException(413, f"image larger than {config.max_upload_bytes:,} bytes")
        open_image(data, config.max_upload_pixels)  # refuse bombs and non-images before the model sees them
        with tempfile.NamedTemporaryFile(suffix=".upload") as tmp:
            tmp.write(data)
            tmp.flush()
            with svc.upload_lock:
                svc.engine.embed_image(tmp.name)  # loads the model outside the engine's search lock
            return svc.search(dataclasses.replace(request, like=(tmp.name,)), offset)

    @api.post("/feedback", response_model=schemas.SearchOut, response_model_exclude_unset=True, status_code=200)
    def feedback(body: FeedbackIn) -> dict:
        """Relevance feedback: the query re-ranked with hits marked relevant (positive) or not (negative);
        `positive`, `negative`, `k` and `explain` are `mmindex feedback`'s options (mmindex/search/requests.py).

        Stateless: send the whole query and every judgment so far. Judged hits are not shown again.
        Answers 501 when the engine has no feedback support.
        """
        return svc.feedback(body, request_from(FeedbackRequest, body))

    return api
