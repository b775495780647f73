"""What the traces, sessions and evaluations pages of the web UI show, each read in one transaction.

Lists are keyset pages (newest first), served by the (project, time) indexes at any volume; a page's filters
narrow the index walk, which stops at a page of matches.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.db.dialect import milliseconds_between
from casework.db.models import Control, Evaluation, JudgeCall, Project, Review, Run, Span, Trace
from casework.errors import EvaluationNotFound
from casework.services.auth import Principal
from casework.services.evaluators import list_evaluators
from casework.services.pagination import newest_first
from casework.services.projects import get_project
from casework.services.traces import get_session_turns, get_trace
from casework.tracing.openinference import Message, interaction_of, messages_of

# A span tree is drawn indented up to this depth; deeper spans show their depth as a number instead.
MAX_INDENT = 12


def _runs(session: Session, project_id: str) -> list[Run]:
    return list(
        session.execute(
            select(Run).where(Run.project_id == project_id).order_by(Run.created_at.desc()).limit(200)
        ).scalars()
    )


# --- traces ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceFilters:
    run_id: str | None = None
    session_id: str | None = None
    errors_only: bool = False
    min_duration_ms: float | None = None


@dataclass
class TracesPage:
    project: Project
    traces: list[Trace]
    next_cursor: str | None
    runs: list[Run]


def traces_page(
    session: Session,
    *,
    principal: Principal,
    project_id: str,
    filters: TraceFilters,
    cursor: str | None = None,
    limit: int = 50,
) -> TracesPage:
    """The project's traces, newest first."""
    project = get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    query = select(Trace).where(Trace.project_id == project_id)
    if filters.run_id:
        query = query.where(Trace.run_id == filters.run_id)
    if filters.session_id:
        query = query.where(Trace.session_id == filters.session_id)
    if filters.errors_only:
        query = query.where(Trace.error_count > 0)
    if filters.min_duration_ms is not None:
        query = query.where(
            milliseconds_between(session, Trace.start_time, Trace.end_time) >= filters.min_duration_ms
        )
    rows, next_cursor = newest_first(
        session, query, (Trace.start_time, Trace.trace_id), limit=limit, cursor=cursor
    )
    return TracesPage(project=project, traces=rows, next_cursor=next_cursor, runs=_runs(session, project_id))


@dataclass
class SpanRow:
    """One span of a trace, in tree order, with where it sits on the trace's timeline (per mille)."""

    span: Span
    depth: int
    offset: float
    width: float
    inputs: list[Message] = field(default_factory=list)
    outputs: list[Message] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)

    @property
    def indent(self) -> int:
        return min(self.depth, MAX_INDENT)


@dataclass
class TracePage:
    project: Project
    trace: Trace
    rows: list[SpanRow]
    duration_ms: float
    run: Run | None


def trace_page(session: Session, *, principal: Principal, project_id: str, trace_id: str) -> TracePage:
    """A trace's spans as a tree (depth first, in start order, without recursion: a chain of any depth is
    drawn), each on a waterfall; LLM spans with their messages and evaluations."""
    project = get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    tree = get_trace(session, principal=principal, trace_id=trace_id, project_id=project_id)
    start = tree.trace.start_time
    total_ms = max((tree.trace.end_time - start).total_seconds() * 1000, 0.001)
    evaluations = _evaluations_by_span(session, project_id, trace_ids=[tree.trace.trace_id])
    rows: list[SpanRow] = []
    seen: set[str] = set()
    stack: list[tuple[Span, int]] = [(span, 0) for span in reversed(tree.roots)]
    while stack:
        span, depth = stack.pop()
        if span.span_id in seen:  # a span that names itself (or a cycle) as its parent
            continue
        seen.add(span.span_id)
        offset = (span.start_time - start).total_seconds() * 1000 / total_ms * 1000
        row = SpanRow(
            span=span,
            depth=depth,
            offset=round(max(min(offset, 1000.0), 0.0), 1),
            width=round(max(min(span.duration_ms / total_ms * 1000, 1000.0 - offset), 2.0), 1),
            evaluations=evaluations.get((span.trace_id, span.span_id), []),
        )
        if span.kind == "LLM":
            row.inputs, row.outputs = messages_of(span.attributes or {})
        rows.append(row)
        stack.extend((child, depth + 1) for child in reversed(tree.children.get(span.span_id, [])))
    run = session.get(Run, tree.trace.run_id) if tree.trace.run_id else None
    return TracePage(project=project, trace=tree.trace, rows=rows, duration_ms=total_ms, run=run)


def _evaluations_by_span(
    session: Session, project_id: str, *, trace_ids: list[str]
) -> dict[tuple[str | None, str | None], list[Evaluation]]:
    found: dict[tuple[str | None, str | None], list[Evaluation]] = defaultdict(list)
    if not trace_ids:
        return found
    # No ORDER BY: with one, SQLite's planner may walk the project's (project, created_at) index to skip a
    # sort, reading every evaluation of the project (bench/ui.py: 90 ms at 250,000) instead of the trace's.
    rows = session.execute(
        select(Evaluation).where(Evaluation.project_id == project_id, Evaluation.trace_id.in_(trace_ids))
    ).scalars()
    for evaluation in sorted(rows, key=lambda e: (e.created_at, e.id)):
        found[(evaluation.trace_id, evaluation.span_id)].append(evaluation)
    return found


# --- sessions --------------------------------------------------------------------------------------------------


@dataclass
class Turn:
    span: Span
    query: str
    response: str
    evaluations: list[Evaluation]


@dataclass
class SessionPage:
    project: Project
    session_id: str
    turns: list[Turn]


def session_page(session: Session, *, principal: Principal, project_id: str, session_id: str) -> SessionPage:
    """A conversation in order, each turn with its evaluations."""
    project = get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    spans = get_session_turns(session, principal=principal, session_id=session_id, project_id=project_id)
    evaluations = _evaluations_by_span(session, project_id, trace_ids=sorted({s.trace_id for s in spans}))
    turns = []
    for span in spans:
        interaction = interaction_of(span.attributes or {})
        turns.append(
            Turn(
                span=span,
                query=interaction.query if interaction else "",
                response=interaction.response if interaction else "",
                evaluations=evaluations.get((span.trace_id, span.span_id), []),
            )
        )
    return SessionPage(project=project, session_id=session_id, turns=turns)


# --- evaluations -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationFilters:
    evaluator_type: str | None = None
    classification: str | None = None
    ambiguous: bool | None = None
    reevaluated: bool | None = None
    run_id: str | None = None


@dataclass
class EvaluationsPage:
    project: Project
    evaluations: list[Evaluation]
    next_cursor: str | None
    evaluators: list[str]
    classifications: list[str]
    runs: list[Run]


def evaluations_page(
    session: Session,
    *,
    principal: Principal,
    project_id: str,
    filters: EvaluationFilters,
    cursor: str | None = None,
    limit: int = 50,
) -> EvaluationsPage:
    """The project's evaluations, newest first."""
    project = get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    query = select(Evaluation).where(Evaluation.project_id == project_id)
    if filters.evaluator_type:
        query = query.where(Evaluation.evaluator_type == filters.evaluator_type)
    if filters.classification:
        query = query.where(Evaluation.classification == filters.classification)
    if filters.ambiguous is not None:
        query = query.where(Evaluation.ambiguous.is_(filters.ambiguous))
    if filters.reevaluated is not None:
        query = query.where(Evaluation.reevaluated.is_(filters.reevaluated))
    if filters.run_id:
        query = query.where(Evaluation.run_id == filters.run_id)
    rows, next_cursor = newest_first(
        session, query, (Evaluation.created_at, Evaluation.id), limit=limit, cursor=cursor
    )
    evaluators = list_evaluators(session, principal=principal, project_id=project_id)
    classifications = sorted({option for e in evaluators for option in e.options} | {"ambiguous"})
    return EvaluationsPage(
        project=project,
        evaluations=rows,
        next_cursor=next_cursor,
        evaluators=[e.name for e in evaluators],
        classifications=classifications,
        runs=_runs(session, project_id),
    )


@dataclass
class EvaluationPage:
    project: Project
    evaluation: Evaluation
    judge_calls: list[JudgeCall]
    memories: list[Control]
    review: Review | None
    extra: dict[str, Any] = field(default_factory=dict)


def evaluation_page(session: Session, *, principal: Principal, evaluation_id: str) -> EvaluationPage:
    """One evaluation: both verdicts, the exact prompts the judge received and its raw answers, the memories
    it was given (only the project's own controls), and the review it caused."""
    found = session.execute(
        select(Evaluation, Project)
        .join(Project, Project.id == Evaluation.project_id)
        .where(Evaluation.id == evaluation_id, Project.workspace_id == principal.workspace_id)
    ).first()
    if found is None:
        raise EvaluationNotFound(
            f"No evaluation {evaluation_id} in this workspace.", details={"evaluation_id": evaluation_id}
        )
    evaluation, project = found
    calls = list(
        session.execute(
            select(JudgeCall).where(JudgeCall.evaluation_id == evaluation.id).order_by(JudgeCall.step)
        ).scalars()
    )
    memory_ids = [i for i in (evaluation.memory_control_ids or []) if isinstance(i, str)][:50]
    memories = (
        list(
            session.execute(
                select(Control).where(Control.id.in_(memory_ids), Control.project_id == project.id)
            ).scalars()
        )
        if memory_ids
        else []
    )
    review = (
        session.execute(
            select(Review).where(Review.id == evaluation.review_id, Review.project_id == project.id)
        ).scalar_one_or_none()
        if evaluation.review_id
        else None
    )
    return EvaluationPage(
        project=project, evaluation=evaluation, judge_calls=calls, memories=memories, review=review
    )
