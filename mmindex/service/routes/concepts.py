"""Concepts and judgments: `GET /api/concepts` (autocomplete, parameters made from `ConceptsRequest`), with the
token `POST /api/concepts` (teach a concept: a body with `TeachRequest`'s fields), `GET /api/concepts/{name}/
proposals` (what to judge next: `LabelRequest`'s fields) and `GET /api/judgments` (the judgments as a CSV or qrels
file: `JudgmentsRequest`'s fields). Each request is defined once, in mmindex/search/requests.py, for the CLI too
(`mmindex concepts`, `teach`, `label`, `judgments export`)."""

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from mmindex.search.requests import ConceptsRequest, JudgmentsRequest, LabelRequest, TeachRequest
from mmindex.service import schemas
from mmindex.service.params import request_dependency, request_from
from mmindex.service.state import Service

# what a judgments file is served as, and the name a browser saves it under
_FILES = {"csv": ("text/csv", "judgments.csv"), "qrels": ("text/plain", "judgments.qrels")}


def router(svc: Service, read: list, write: list) -> APIRouter:
    """The read endpoints take `read` (open unless reads are private), teaching takes `write` (the token)."""
    concepts_query = Depends(request_dependency(ConceptsRequest, Query))
    label_query = Depends(request_dependency(LabelRequest, Query))
    judgments_query = Depends(request_dependency(JudgmentsRequest, Query))
    api = APIRouter()

    @api.get("/concepts", response_model=schemas.ConceptsOut, dependencies=read)
    def concepts(request: ConceptsRequest = concepts_query) -> dict:
        """Concept autocomplete: names, synonyms or WordNet ids matching `q`, best first, the index's taught and
        applied concepts first; `q` and `limit` are `mmindex concepts`'s TEXT and `--limit`."""
        return {"concepts": [{"id": c.id, "name": c.name, "synonyms": list(c.synonyms), "source": c.source,
                              "classes": len(c.classes)} for c in svc.engine.concepts(**request.engine_arguments())]}

    @api.post("/concepts", response_model=schemas.TaughtOut, dependencies=write)
    def teach(body: schemas.TeachIn) -> dict:
        """Teach the index the concept `name` from judged segments (`mmindex teach`): record the judgments (origin
        "ui"), train a detector on every judgment of the name so far, in seconds, and apply it, so that
        `concept=NAME` searches by it. Teaching a name again replaces its detector (a new `version`). Needs the
        token. 400 for a name that cannot name a concept or without any positive judgment, 404 for segment ids
        not in the index, 409 while another writer holds the index."""
        return svc.teach(request_from(TeachRequest, body))

    # `{name:path}`: a concept's name may hold a "/" ("indoor/outdoor"), which the client sends as %2F
    @api.get("/concepts/{name:path}/proposals", response_model=schemas.ProposalsOut, dependencies=read)
    def proposals(request: LabelRequest = label_query) -> dict:
        """The unjudged segments whose judgment helps the concept's detector most (active learning, `mmindex
        label`): `uncertain` (scores nearest the decision boundary), `probable` (the highest) or `random`. Without
        a detector for the name yet, a random draw, and `message` says so. Judge them with `POST /api/concepts`."""
        return svc.proposals(request)

    @api.get("/judgments", response_class=Response, dependencies=read,
             responses={200: {"content": {"text/csv": {}, "text/plain": {}}}})
    def judgments(request: JudgmentsRequest = judgments_query) -> Response:
        """The index's judgments (of one concept, or all) as `mmindex judgments export` writes them: CSV
        `segment_path,start,end,concept,label`, or TRECVID-style qrels (`concept 0 doc relevance`)."""
        media_type, filename = _FILES[request.format]
        text = svc.engine.export_judgments(**request.engine_arguments())
        # A file name that is not UTF-8 goes out as its own bytes, as the CLI writes it to a file.
        return Response(text.encode("utf-8", "surrogateescape"), media_type=f"{media_type}; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    return api
