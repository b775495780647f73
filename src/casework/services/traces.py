"""Traces in: spans stored as received, LLM spans as interactions, one evaluation job per interaction and
evaluator, all in the request's one transaction. Traces out: lists, span trees and sessions."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casework.db.dialect import fast_insert, greatest, insert_statement, least
from casework.db.engine import mark_for_wake
from casework.db.models import Job, Project, Run, Span, Trace
from casework.db.types import utcnow
from casework.errors import RunNotFound, SessionNotFound, TraceNotFound
from casework.ids import new_id
from casework.services.auth import Principal
from casework.services.evaluators import evaluator_names
from casework.services.pagination import newest_first
from casework.services.projects import get_or_create_project, get_project
from casework.tracing.openinference import span_facts
from casework.tracing.otlp import SpanRecord, decode_request

PROJECT_NAME_ATTRIBUTE = "openinference.project.name"
PROJECT_ID_ATTRIBUTE = "casework.project_id"
RUN_ID_ATTRIBUTE = "casework.run_id"
DEFAULT_PROJECT = "default"


@dataclass
class IngestResult:
    spans: int = 0  # in the request
    stored: int = 0  # new (a span sent again is stored once)
    jobs: int = 0  # evaluation jobs queued


def ingest_otlp(
    session: Session,
    *,
    principal: Principal,
    body: bytes,
    content_type: str,
    content_encoding: str,
    max_bytes: int,
) -> IngestResult:
    """One ``POST /v1/traces``: decode, then :func:`ingest_spans`."""
    records = decode_request(
        body, content_type=content_type, content_encoding=content_encoding, max_bytes=max_bytes
    )
    return ingest_spans(session, principal=principal, records=records)


def ingest_spans(session: Session, *, principal: Principal, records: list[SpanRecord]) -> IngestResult:
    principal.require_write()
    result = IngestResult(spans=len(records))
    if not records:
        return result
    targets: dict[tuple[Any, Any, Any], tuple[str, str | None]] = {}
    rows = []
    now = utcnow()
    for record in records:
        resource_key = (
            record.resource.get(PROJECT_ID_ATTRIBUTE),
            record.resource.get(PROJECT_NAME_ATTRIBUTE),
            record.resource.get(RUN_ID_ATTRIBUTE),
        )
        if resource_key not in targets:
            targets[resource_key] = _target(session, principal, *resource_key)
        project_id, run_id = targets[resource_key]
        facts = span_facts(record.attributes)
        interaction = facts.interaction
        rows.append(
            {
                "id": new_id("spn"),
                "project_id": project_id,
                "run_id": run_id,
                "trace_id": record.trace_id,
                "span_id": record.span_id,
                "parent_span_id": record.parent_span_id,
                "name": record.name,
                "kind": facts.kind,
                "start_time": record.start_time,
                "end_time": record.end_time,
                "duration_ms": record.duration_ms,
                "status_code": record.status_code,
                "status_message": record.status_message,
                "session_id": facts.session_id,
                "model": facts.model,
                "prompt_tokens": facts.prompt_tokens,
                "completion_tokens": facts.completion_tokens,
                "attributes": record.attributes,
                "events": record.events,
                "interactive": interaction is not None,  # not a column: whether to queue evaluations
                "created_at": now,
            }
        )
    # The same span twice in one request is stored once, like a span sent again later. Rows go in key order, so
    # concurrent requests with overlapping spans take their locks in one order (no deadlock on PostgreSQL).
    rows = sorted(
        {(row["project_id"], row["trace_id"], row["span_id"]): row for row in reversed(rows)}.values(),
        key=lambda row: (row["project_id"], row["trace_id"], row["span_id"]),
    )
    # An exporter that retries after a lost reply sends spans again: those already stored are left out.
    stored, known_traces = _stored_keys(session, rows)
    new_rows = [row for row in rows if (row["project_id"], row["trace_id"], row["span_id"]) not in stored]
    fast_insert(session, Span.__table__, new_rows, skip_conflicts=True)
    if session.get_bind().dialect.name == "postgresql":
        # A concurrent request may have stored some of them first (ON CONFLICT skipped ours, after waiting for
        # its commit): trace summaries and evaluation jobs are made from the rows this request inserted. On
        # SQLite the request has held the write lock since its first read, so _stored_keys was exact.
        new_rows = _inserted(session, new_rows)
    result.stored = len(new_rows)
    _update_traces(session, new_rows, known_traces)
    result.jobs = _queue_evaluations(session, new_rows, now)
    return result


def _inserted(session: Session, rows: list[dict[str, Any]], chunk: int = 10_000) -> list[dict[str, Any]]:
    """The rows whose ids are in the spans table, as this transaction sees it."""
    found: set[str] = set()
    for start in range(0, len(rows), chunk):
        ids = [row["id"] for row in rows[start : start + chunk]]
        found.update(session.execute(select(Span.id).where(Span.id.in_(ids))).scalars())
    return [row for row in rows if row["id"] in found]


def _stored_keys(
    session: Session, rows: list[dict[str, Any]]
) -> tuple[set[tuple[str, str, str]], set[tuple[str, str]]]:
    """The spans of ``rows`` already stored, and the (project, trace) pairs that already have a summary."""
    by_project: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        by_project[row["project_id"]].add(row["trace_id"])
    found: set[tuple[str, str, str]] = set()
    traces: set[tuple[str, str]] = set()
    for project_id, trace_ids in by_project.items():
        # Only traces that already have a summary can hold stored spans: usually none of them.
        known = list(
            session.execute(
                select(Trace.trace_id).where(Trace.project_id == project_id, Trace.trace_id.in_(trace_ids))
            ).scalars()
        )
        traces.update((project_id, trace_id) for trace_id in known)
        if known:
            rows_found = session.execute(
                select(Span.project_id, Span.trace_id, Span.span_id).where(
                    Span.project_id == project_id, Span.trace_id.in_(known)
                )
            ).all()
            found.update((row[0], row[1], row[2]) for row in rows_found)
    return found, traces


def _target(
    session: Session, principal: Principal, project_id: Any, project_name: Any, run_id: Any
) -> tuple[str, str | None]:
    """The project (and run) a resource's spans belong to."""
    if project_id:
        project = get_project(session, workspace_id=principal.workspace_id, project_id=str(project_id))
    else:
        project, _ = get_or_create_project(
            session, workspace_id=principal.workspace_id, name=str(project_name or DEFAULT_PROJECT)[:200]
        )
    if run_id:
        run = session.get(Run, str(run_id))
        if run is None or run.project_id != project.id:
            raise RunNotFound(
                f"No run {run_id} in project {project.id} (resource attribute {RUN_ID_ATTRIBUTE}).",
                details={"run_id": str(run_id), "project_id": project.id},
            )
        return project.id, run.id
    return project.id, None


def _update_traces(session: Session, rows: list[dict[str, Any]], known: set[tuple[str, str]]) -> None:
    summaries: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["project_id"], row["trace_id"])
        summary = summaries.get(key)
        if summary is None:
            summary = summaries[key] = {
                "project_id": row["project_id"],
                "trace_id": row["trace_id"],
                "run_id": row["run_id"],
                "session_id": row["session_id"],
                "root_name": None,
                "start_time": row["start_time"],
                "end_time": row["end_time"],
                "span_count": 0,
                "interaction_count": 0,
                "error_count": 0,
            }
        summary["start_time"] = min(summary["start_time"], row["start_time"])
        summary["end_time"] = max(summary["end_time"], row["end_time"])
        summary["span_count"] += 1
        summary["interaction_count"] += row["interactive"]
        summary["error_count"] += row["status_code"] == "ERROR"
        summary["run_id"] = summary["run_id"] or row["run_id"]
        summary["session_id"] = summary["session_id"] or row["session_id"]
        if row["parent_span_id"] is None:
            summary["root_name"] = row["name"]
    if not summaries:
        return
    # On SQLite (one writer at a time, so ``known`` is exact) new traces, the usual case, are plain inserts
    # and only traces that already have spans are merged by the upsert. On PostgreSQL a concurrent request
    # may create the same trace meanwhile, so every summary goes through the upsert.
    ordered = sorted(summaries.values(), key=lambda s: (s["project_id"], s["trace_id"]))
    if session.get_bind().dialect.name == "postgresql":
        known = {(s["project_id"], s["trace_id"]) for s in ordered}
    fresh = [s for s in ordered if (s["project_id"], s["trace_id"]) not in known]
    fast_insert(session, Trace.__table__, fresh)
    again = [s for s in ordered if (s["project_id"], s["trace_id"]) in known]
    if not again:
        return
    table = Trace.__table__
    statement = insert_statement(session, table)
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=["project_id", "trace_id"],
        set_={
            "start_time": least(session, table.c.start_time, excluded.start_time),
            "end_time": greatest(session, table.c.end_time, excluded.end_time),
            "span_count": table.c.span_count + excluded.span_count,
            "interaction_count": table.c.interaction_count + excluded.interaction_count,
            "error_count": table.c.error_count + excluded.error_count,
            "run_id": func.coalesce(table.c.run_id, excluded.run_id),
            "session_id": func.coalesce(table.c.session_id, excluded.session_id),
            "root_name": func.coalesce(excluded.root_name, table.c.root_name),
        },
    )
    # Sorted, so concurrent requests touching the same traces lock them in one order (no deadlocks).
    session.execute(statement, again)


def _queue_evaluations(session: Session, rows: list[dict[str, Any]], now: datetime) -> int:
    """One job per (interaction, evaluator): the run's evaluators, or else the project's."""
    interactions = [row for row in rows if row["interactive"]]
    if not interactions:
        return 0
    names_by_target: dict[tuple[str, str | None], list[str]] = {}
    jobs = []
    for row in interactions:
        target = (row["project_id"], row["run_id"])
        if target not in names_by_target:
            names_by_target[target] = _evaluator_names(session, *target)
        for name in names_by_target[target]:
            jobs.append(
                {
                    "id": new_id("job"),
                    "kind": "evaluate",
                    "project_id": row["project_id"],
                    "run_id": row["run_id"],
                    "span_id": row["id"],
                    "evaluator_type": name,
                    "payload": {},
                    "status": "queued",
                    "attempts": 0,
                    "available_at": now,
                    "created_at": now,
                }
            )
    if jobs:
        fast_insert(session, Job.__table__, jobs)
        mark_for_wake(session)
    return len(jobs)


def _evaluator_names(session: Session, project_id: str, run_id: str | None) -> list[str]:
    if run_id is not None:
        attached = session.execute(select(Run.evaluators).where(Run.id == run_id)).scalar_one_or_none()
        if attached is not None:
            return list(attached)
    return evaluator_names(session, project_id)


# --- reading -------------------------------------------------------------------------------------------------


@dataclass
class TracePage:
    traces: list[Trace]
    next_cursor: str | None


def list_traces(
    session: Session,
    *,
    principal: Principal,
    project_id: str,
    run_id: str | None = None,
    session_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> TracePage:
    """Newest first."""
    get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    query = select(Trace).where(Trace.project_id == project_id)
    if run_id:
        query = query.where(Trace.run_id == run_id)
    if session_id:
        query = query.where(Trace.session_id == session_id)
    rows, next_cursor = newest_first(
        session, query, (Trace.start_time, Trace.trace_id), limit=limit, cursor=cursor
    )
    return TracePage(traces=rows, next_cursor=next_cursor)


# How deep a span tree nests when shown. Spans further down hang at the last level, under the ancestor there
# (their parent_span_id still names their parent): trees of any depth are shown whole, and a reply or page
# never nests deeper than a JSON writer or a template can go.
MAX_TREE_DEPTH = 64


@dataclass
class TraceTree:
    trace: Trace
    spans: list[Span]  # in start order
    # span id -> the spans shown under it, in start order; None: the roots. Every span is shown once.
    children: dict[str | None, list[Span]]

    @property
    def roots(self) -> list[Span]:
        """Spans without a parent, or whose parent never arrived, and the first span of any cycle of parents."""
        return self.children.get(None, [])


def span_tree(spans: list[Span], max_depth: int = MAX_TREE_DEPTH) -> dict[str | None, list[Span]]:
    """Who is shown under whom (see TraceTree.children), built without recursion: a trace may be any depth."""
    known = {span.span_id for span in spans}
    natural: dict[str | None, list[Span]] = defaultdict(list)
    for span in spans:
        parent = span.parent_span_id
        natural[parent if parent in known and parent != span.span_id else None].append(span)
    shown: dict[str | None, list[Span]] = defaultdict(list)
    placed: set[str] = set()
    roots = natural.get(None, [])
    # Roots first; then any span no root reaches (a cycle of parents) starts a tree of its own.
    for start in [*roots, *spans]:
        if start.span_id in placed:
            continue
        placed.add(start.span_id)
        shown[None].append(start)
        pending: list[tuple[Span, int, str | None]] = [(start, 1, None)]  # span, its level, whom it is under
        while pending:
            span, level, under = pending.pop()
            children = [child for child in natural.get(span.span_id, []) if child.span_id not in placed]
            holder, child_level = (span.span_id, level + 1) if level < max_depth else (under, level)
            for child in children:
                placed.add(child.span_id)
                shown[holder].append(child)
                pending.append((child, child_level, holder))
    for group in shown.values():
        group.sort(key=lambda span: (span.start_time, span.span_id))
    return dict(shown)


def get_trace(
    session: Session, *, principal: Principal, trace_id: str, project_id: str | None = None
) -> TraceTree:
    query = (
        select(Trace)
        .join(Project, Project.id == Trace.project_id)
        .where(Trace.trace_id == trace_id.lower(), Project.workspace_id == principal.workspace_id)
    )
    if project_id:
        query = query.where(Trace.project_id == project_id)
    trace = session.execute(query.limit(1)).scalar_one_or_none()
    if trace is None:
        raise TraceNotFound(f"No trace {trace_id} in this workspace.", details={"trace_id": trace_id})
    spans = list(
        session.execute(
            select(Span)
            .where(Span.project_id == trace.project_id, Span.trace_id == trace.trace_id)
            .order_by(Span.start_time, Span.span_id)
        ).scalars()
    )
    return TraceTree(trace=trace, spans=spans, children=span_tree(spans))


def get_session_turns(
    session: Session,
    *,
    principal: Principal,
    session_id: str,
    project_id: str | None = None,
    limit: int = 1000,
) -> list[Span]:
    """The conversation of an OpenInference session: its LLM interactions in time order."""
    query = (
        select(Span)
        .join(Project, Project.id == Span.project_id)
        .where(
            Project.workspace_id == principal.workspace_id,
            Span.session_id == session_id,
            Span.kind == "LLM",
        )
    )
    if project_id:
        query = query.where(Span.project_id == project_id)
    turns = list(session.execute(query.order_by(Span.start_time, Span.span_id).limit(limit)).scalars())
    if not turns:
        raise SessionNotFound(
            f"No session {session_id} with interactions in this workspace.",
            details={"session_id": session_id},
        )
    return turns
