"""Traces, spans, sessions and jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from casework.api.schemas.common import Public


class TracePublic(Public):
    trace_id: str
    project_id: str
    run_id: str | None
    session_id: str | None
    root_name: str | None
    start_time: datetime
    end_time: datetime
    span_count: int
    interaction_count: int
    error_count: int


class TraceList(BaseModel):
    traces: list[TracePublic]
    next_cursor: str | None = None


class SpanPublic(BaseModel):
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str | None
    start_time: datetime
    end_time: datetime
    duration_ms: float
    status_code: str
    status_message: str | None
    session_id: str | None
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    query: str | None
    response: str | None
    context: str | None


class SpanNode(SpanPublic):
    children: list[SpanNode]


class TraceDetail(TracePublic):
    spans: list[SpanNode]  # the roots, each with its children, in start order


class Turn(BaseModel):
    trace_id: str
    span_id: str
    start_time: datetime
    model: str | None
    query: str | None
    response: str | None


class SessionDetail(BaseModel):
    session_id: str
    project_id: str
    turns: list[Turn]


class JobPublic(Public):
    id: str
    kind: str
    project_id: str
    run_id: str | None
    evaluator_type: str | None
    status: str
    attempts: int
    last_error: str | None
    evaluation_id: str | None
    leased_by: str | None
    created_at: datetime
    finished_at: datetime | None


class JobList(BaseModel):
    jobs: list[JobPublic]
    next_cursor: str | None = None


class JobCounts(BaseModel):
    queued: int
    running: int
    done: int
    failed: int
