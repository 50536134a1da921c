"""The index and the server: `GET /api/health` (always open) and `GET /api/metrics`."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from mmindex import __version__
from mmindex.service import schemas
from mmindex.service.state import Service


def router(svc: Service, read: list) -> APIRouter:
    api = APIRouter()

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

    return api
