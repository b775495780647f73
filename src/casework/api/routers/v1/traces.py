"""Traces in (OTLP/HTTP at /v1/traces) and out (/api/v1/traces, /api/v1/sessions), and the job queue."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from casework.api.deps import Caller, Db
from casework.api.schemas.common import Cursor, Limit
from casework.api.schemas.traces import (
    JobCounts,
    JobList,
    JobPublic,
    SessionDetail,
    SpanNode,
    SpanPublic,
    TraceDetail,
    TraceList,
    TracePublic,
    Turn,
)
from casework.db.models import Span
from casework.errors import ServiceUnavailable
from casework.services import jobs as job_service
from casework.services import traces as trace_service
from casework.services.traces import TraceTree
from casework.tracing.openinference import interaction_of
from casework.tracing.otlp import encode_response

otlp = APIRouter(tags=["traces"])
router = APIRouter(prefix="/api/v1", tags=["traces"])


@otlp.post(
    "/v1/traces",
    summary="OTLP/HTTP trace export (protobuf or JSON, gzip accepted)",
    responses={
        200: {
            "description": "Stored: every span is committed, and its evaluation jobs queued. The (empty) "
            "ExportTraceServiceResponse, in the request's encoding.",
            "content": {
                "application/json": {"schema": {"type": "object", "maxProperties": 0}},
                "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        404: {
            "description": "The resource names a project (casework.project_id) or run that is not the caller's."
        },
        503: {
            "description": "Ingestion is at its bound, or the database is busy: retry after Retry-After seconds."
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "An OTLP ExportTraceServiceRequest (Content-Encoding gzip or deflate accepted).",
            "content": {
                "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"type": "object", "description": "OTLP/JSON, ids in hex."}},
            },
        }
    },
)
async def export_traces(request: Request, db: Db, caller: Caller) -> Response:
    """Point any OpenTelemetry exporter here. The project comes from the resource attribute
    ``openinference.project.name`` (created on first use) or ``casework.project_id``; the run from
    ``casework.run_id``. 200 means durable: the spans are committed before the reply."""
    caller.require_write()
    state = request.app.state
    if state.ingest_pending >= state.settings.ingest_max_pending:
        raise ServiceUnavailable(
            "Ingestion is at capacity; retry shortly (OTLP exporters do).",
            retry_after=1,
            details={"max_pending": state.settings.ingest_max_pending},
        )
    state.ingest_pending += 1
    try:
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        result = await db(
            trace_service.ingest_otlp,
            principal=caller,
            body=body,
            content_type=content_type,
            content_encoding=request.headers.get("content-encoding", ""),
            max_bytes=state.settings.max_body_bytes,
        )
    finally:
        state.ingest_pending -= 1
    state.metrics.spans_received.inc(result.stored)
    payload, media_type = encode_response(content_type)
    return Response(content=payload, media_type=media_type)


@router.get("/traces", response_model=TraceList, summary="A project's traces, newest first")
async def list_traces(
    db: Db,
    caller: Caller,
    project_id: Annotated[str, Query()],
    run_id: Annotated[str | None, Query()] = None,
    session_id: Annotated[str | None, Query()] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> TraceList:
    page = await db(
        trace_service.list_traces,
        principal=caller,
        project_id=project_id,
        run_id=run_id,
        session_id=session_id,
        limit=limit,
        cursor=cursor,
    )
    return TraceList(
        traces=[TracePublic.model_validate(t) for t in page.traces], next_cursor=page.next_cursor
    )


@router.get("/traces/{trace_id}", response_model=TraceDetail, summary="One trace: its span tree")
async def get_trace(
    trace_id: str, db: Db, caller: Caller, project_id: Annotated[str | None, Query()] = None
) -> TraceDetail:
    tree = await db(trace_service.get_trace, principal=caller, trace_id=trace_id, project_id=project_id)
    return TraceDetail(
        **TracePublic.model_validate(tree.trace).model_dump(), spans=[_node(tree, s) for s in tree.roots]
    )


def _node(tree: TraceTree, span: Span) -> SpanNode:
    return SpanNode(
        **_span_fields(span), children=[_node(tree, child) for child in tree.children.get(span.span_id, [])]
    )


def _span_fields(span: Span, model: type[BaseModel] = SpanPublic) -> dict[str, Any]:
    """The span's columns that ``model`` shows, and for an LLM span its interaction (from its attributes)."""
    interaction = interaction_of(span.attributes) if span.kind == "LLM" else None
    fields = {name: getattr(span, name) for name in model.model_fields if hasattr(Span, name)}
    return {
        **fields,
        "query": interaction.query if interaction else None,
        "response": interaction.response if interaction else None,
        "context": interaction.context if interaction else None,
    }


@router.get(
    "/sessions/{session_id}", response_model=SessionDetail, summary="A session's conversation, in order"
)
async def get_session(
    session_id: str, db: Db, caller: Caller, project_id: Annotated[str | None, Query()] = None
) -> SessionDetail:
    turns = await db(
        trace_service.get_session_turns, principal=caller, session_id=session_id, project_id=project_id
    )
    return SessionDetail(
        session_id=session_id,
        project_id=turns[0].project_id,
        turns=[Turn.model_validate(_span_fields(turn, Turn)) for turn in turns],
    )


@router.get("/jobs", response_model=JobList, summary="A project's evaluation jobs, newest first")
async def list_jobs(
    db: Db,
    caller: Caller,
    project_id: Annotated[str, Query()],
    status: Annotated[Literal["queued", "running", "done", "failed"] | None, Query()] = None,
    run_id: Annotated[str | None, Query()] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> JobList:
    page = await db(
        job_service.list_jobs,
        principal=caller,
        project_id=project_id,
        status=status,
        run_id=run_id,
        limit=limit,
        cursor=cursor,
    )
    return JobList(jobs=[JobPublic.model_validate(j) for j in page.jobs], next_cursor=page.next_cursor)


@router.get("/jobs/counts", response_model=JobCounts, summary="How many jobs are in each status")
async def count_jobs(
    db: Db, caller: Caller, project_id: Annotated[str, Query()], run_id: Annotated[str | None, Query()] = None
) -> JobCounts:
    counts = await db(job_service.count_jobs, principal=caller, project_id=project_id, run_id=run_id)
    return JobCounts(**counts)


@router.get("/jobs/{job_id}", response_model=JobPublic, summary="One job")
async def get_job(job_id: str, db: Db, caller: Caller) -> JobPublic:
    return JobPublic.model_validate(await db(job_service.get_job, principal=caller, job_id=job_id))
