"""Liveness, readiness and metrics: unauthenticated, for load balancers and Prometheus."""

from __future__ import annotations

import os

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from sqlalchemy.exc import SQLAlchemyError

from casework.api.deps import get_database
from casework.db.migrate import current_revision, head_revision

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database is reachable and migrated")
def readyz(request: Request) -> JSONResponse:
    try:
        current = current_revision(get_database(request))
    except SQLAlchemyError as exc:
        body = {
            "error": {"code": "database_unreachable", "message": str(exc.__cause__ or exc), "details": {}}
        }
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
    head = head_revision()
    if current != head:
        message = f"Database is at migration {current}, this server needs {head}: run `casework db upgrade`."
        body = {
            "error": {"code": "database_not_migrated", "message": message, "details": {"current": current}}
        }
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
    return JSONResponse({"status": "ready", "migration": current})


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # several worker processes: report all of them
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
