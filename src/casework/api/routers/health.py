"""Liveness, readiness and metrics: unauthenticated, for load balancers and Prometheus."""

from __future__ import annotations

import hmac
import logging
import os

from anyio import to_thread
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from sqlalchemy.exc import SQLAlchemyError

from casework.api.deps import get_database
from casework.api.metrics import loop_metrics
from casework.db.migrate import current_revision, head_revision
from casework.errors import Unauthenticated
from casework.services import queue_metrics
from casework.services.queue_metrics import Snapshot

router = APIRouter(tags=["operations"])
logger = logging.getLogger("casework.api")


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database is reachable and migrated",
    responses={
        503: {"description": "Not ready: database_unreachable, database_not_migrated or secret_key_mismatch."}
    },
)
def readyz(request: Request) -> JSONResponse:
    try:
        current = current_revision(get_database(request))
    except SQLAlchemyError as exc:
        # The driver's message names the database's host, port, user and name: for the log, not for whoever
        # can reach this unauthenticated endpoint.
        logger.warning("readiness: the database is unreachable: %s", exc.__cause__ or exc)
        message = "The database is not reachable; the server's log says why."
        body = {"error": {"code": "database_unreachable", "message": message, "details": {}}}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
    problem = getattr(request.app.state, "secret_key_problem", None)
    if problem:
        body = {"error": {"code": "secret_key_mismatch", "message": problem, "details": {}}}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "60"})
    head = head_revision()
    if current != head:
        message = f"Database is at migration {current}, this server needs {head}: run `casework db upgrade`."
        body = {
            "error": {"code": "database_not_migrated", "message": message, "details": {"current": current}}
        }
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
    return JSONResponse({"status": "ready", "migration": current})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}},
        401: {"description": "CASEWORK_METRICS_TOKEN is set, and the request does not bear it."},
    },
)
async def metrics(request: Request) -> Response:
    token = request.app.state.settings.metrics_token
    if token is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise Unauthenticated(
                "GET /metrics needs the header Authorization: Bearer <CASEWORK_METRICS_TOKEN>."
            )
    registry = request.app.state.metrics.registry
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # several worker processes: report all of them
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    body = generate_latest(registry)
    database = get_database(request)

    def read() -> Snapshot:
        with database.transaction(write=False) as session:
            return queue_metrics.snapshot(session)

    try:
        body += loop_metrics(await to_thread.run_sync(read))
    except SQLAlchemyError as exc:  # the process's own metrics still answer; /readyz says what is wrong
        logger.warning("metrics: the database could not be read: %s", exc.__cause__ or exc)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
