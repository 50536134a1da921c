"""Trained models: with the token, `POST /api/detectors` applies one to the index (`mmindex apply`): its body is
`ApplyRequest`'s fields (mmindex/search/requests.py), as the command's DETECTOR, --name and --clips-per-shot are."""

import os

from fastapi import APIRouter

from mmindex.search.requests import ApplyRequest
from mmindex.service import schemas
from mmindex.service.params import request_from
from mmindex.service.routes.media import allowed
from mmindex.service.state import Service


def router(svc: Service, write: list) -> APIRouter:
    """The token's endpoint that applies a model."""
    api = APIRouter(dependencies=write)

    @api.post("/detectors", response_model=schemas.AppliedOut)
    def apply(body: schemas.ApplyIn) -> dict:
        """Apply a trained model to the index and make its labels concepts (`mmindex apply`): `detector` is the
        absolute path of a model file on the server, inside the media roots (any model `train`, `train-sequence` or
        `train-clips` wrote), or the name of a detector applied to the index, whose own copy is applied again (after
        media changed, or to finish an interrupted apply). Models that read media back take as long as that does:
        the answer comes when it is done; a request cut off meanwhile leaves an apply that the same request goes on
        with. Needs the token. 400 for a model that does not fit the index (saying why) or is not a model file,
        403 outside the media roots, 404 for no such file or detector, 409 while another writer holds the index."""
        request = request_from(ApplyRequest, body)
        model_file = allowed(svc, request.detector) if os.path.isabs(request.detector) else None
        return svc.apply(request, model_file)

    return api
