"""What each page of the reviewer UI shows, read in one transaction per page."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Date, Integer, cast, func, select, text
from sqlalchemy.orm import Session

from casework.db.models import Control, ControlVersion, Evaluation, Project, Review, Span
from casework.db.types import utcnow
from casework.errors import TraceNotFound
from casework.services import controls as control_service
from casework.services import review_counts
from casework.services import reviews as review_service
from casework.services.auth import Principal
from casework.services.evaluators import evaluator_names
from casework.services.projects import get_project
from casework.services.review_queries import ReviewFilters, list_reviews
from casework.services.reviews import Feedback
from casework.services.traces import TraceTree, get_trace
from casework.tracing.openinference import interaction_of


@dataclass
class QueueHealth:
    pending: int
    oldest: datetime | None


def queue_health(session: Session, project_id: str) -> QueueHealth:
    """Pending now (kept counted) and the oldest pending review (first entry of the pending-age index)."""
    oldest = session.execute(
        select(Review.created_at)
        .where(Review.project_id == project_id, PENDING_ONLY)
        .order_by(Review.created_at)
        .limit(1)
    ).scalar_one_or_none()
    return QueueHealth(
        pending=review_counts.counts(session, project_id)[review_counts.PENDING], oldest=oldest
    )


# A literal, not a bound parameter: only then may SQLite use the partial index on pending reviews.
PENDING_ONLY = text("reviews.status = 'pending'")


@dataclass
class ProjectRow:
    project: Project
    health: QueueHealth


def projects_page(session: Session, *, principal: Principal) -> list[ProjectRow]:
    projects = session.execute(
        select(Project).where(Project.workspace_id == principal.workspace_id).order_by(Project.name)
    ).scalars()
    return [ProjectRow(project=p, health=queue_health(session, p.id)) for p in projects]


@dataclass
class QueuePage:
    project: Project
    health: QueueHealth
    reviews: list[Review]
    next_cursor: str | None
    evaluators: list[str]


def queue_page(
    session: Session, *, principal: Principal, filters: ReviewFilters, cursor: str | None, limit: int = 50
) -> QueuePage:
    project = get_project(session, workspace_id=principal.workspace_id, project_id=filters.project_id)
    page = list_reviews(session, principal=principal, filters=filters, limit=limit, cursor=cursor)
    return QueuePage(
        project=project,
        health=queue_health(session, project.id),
        reviews=page.reviews,
        next_cursor=page.next_cursor,
        evaluators=evaluator_names(session, project.id),
    )


@dataclass
class ReviewPage:
    review: Review
    project: Project
    trace: TraceTree | None
    conversation: list[dict[str, Any]]
    memories_seen: list[Control]
    project_tags: list[str]
    next_id: str | None
    previous_id: str | None


def review_page(session: Session, *, principal: Principal, review_id: str) -> ReviewPage:
    review = review_service.get_review(session, principal=principal, review_id=review_id)
    project = get_project(session, workspace_id=principal.workspace_id, project_id=review.project_id)
    trace = None
    conversation: list[dict[str, Any]] = []
    if review.trace_id:
        try:
            trace = get_trace(session, principal=principal, trace_id=review.trace_id, project_id=project.id)
        except TraceNotFound:  # queued by hand with a trace id Casework never received
            trace = None
    if trace is not None:
        span = next((s for s in trace.spans if s.span_id == review.span_id), None)
        if span is not None and span.session_id:
            turns = session.execute(
                select(Span)
                .where(Span.project_id == project.id, Span.session_id == span.session_id, Span.kind == "LLM")
                .order_by(Span.start_time)
                .limit(200)
            ).scalars()
            for turn in turns:
                interaction = interaction_of(turn.attributes)
                if interaction is not None:
                    conversation.append(
                        {
                            "span_id": turn.span_id,
                            "query": interaction.query,
                            "response": interaction.response,
                        }
                    )
    seen_ids = list((review.attributes or {}).get("memory_control_ids") or [])
    memories = (
        list(session.execute(select(Control).where(Control.id.in_(seen_ids))).scalars()) if seen_ids else []
    )
    neighbours = _neighbours(session, principal, review)
    return ReviewPage(
        review=review,
        project=project,
        trace=trace,
        conversation=conversation,
        memories_seen=memories,
        project_tags=project_tags(session, project.id),
        next_id=neighbours[1],
        previous_id=neighbours[0],
    )


def _neighbours(session: Session, principal: Principal, review: Review) -> tuple[str | None, str | None]:
    """The pending reviews before and after this one in queue order (a short window of the queue)."""
    page = list_reviews(
        session, principal=principal, filters=ReviewFilters(project_id=review.project_id), limit=200
    )
    ids = [r.id for r in page.reviews]
    if review.id not in ids:
        return None, next((i for i in ids if i != review.id), None)
    at = ids.index(review.id)
    return (ids[at - 1] if at > 0 else None), (ids[at + 1] if at + 1 < len(ids) else None)


def project_tags(session: Session, project_id: str, scan: int = 1000) -> list[str]:
    """Tags of the project's most recent controls, most used first: suggestions for a new decision."""
    counts: dict[str, int] = {}
    for tags in session.execute(
        select(Control.tags)
        .where(Control.project_id == project_id)
        .order_by(Control.created_at.desc())
        .limit(scan)
    ).scalars():
        for tag in tags or []:
            counts[tag] = counts.get(tag, 0) + 1
    return sorted(counts, key=lambda t: (-counts[t], t))[:50]


def decide(
    session: Session, *, principal: Principal, review_id: str, feedback: Feedback
) -> tuple[str, str | None]:
    """Submit the decision; return the project and the next pending review (highest priority, oldest) if any."""
    outcome = review_service.submit_feedback(
        session, principal=principal, review_id=review_id, feedback=feedback
    )
    project_id = outcome.review.project_id
    page = list_reviews(session, principal=principal, filters=ReviewFilters(project_id=project_id), limit=1)
    return project_id, page.reviews[0].id if page.reviews else None


@dataclass
class ControlPage:
    control: Control
    history: list[ControlVersion]
    project_tags: list[str] = field(default_factory=list)


def control_page(session: Session, *, principal: Principal, control_id: str) -> ControlPage:
    control = control_service.get_control(session, principal=principal, control_id=control_id)
    return ControlPage(
        control=control,
        history=control_service.control_history(session, principal=principal, control_id=control_id),
        project_tags=project_tags(session, control.project_id),
    )


@dataclass
class DayRate:
    day: str
    verdicts: int
    ambiguous: int

    @property
    def rate(self) -> float:
        return self.ambiguous / self.verdicts if self.verdicts else 0.0


@dataclass
class Overview:
    project: Project
    health: QueueHealth
    resolved_by_people: int
    resolved_by_memory: int
    controls: int
    days: list[DayRate]


def overview_page(session: Session, *, principal: Principal, project_id: str, days: int = 30) -> Overview:
    project = get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    counted = review_counts.counts(session, project_id)
    since = utcnow() - timedelta(days=days)
    day = (
        cast(Evaluation.created_at, Date)
        if session.get_bind().dialect.name == "postgresql"
        else func.date(Evaluation.created_at)
    )
    rows = session.execute(
        select(day.label("day"), func.count(), func.sum(cast(Evaluation.ambiguous, Integer)))
        .where(
            Evaluation.project_id == project_id,
            Evaluation.created_at >= since,
            Evaluation.status == "completed",
        )
        .group_by(day)
        .order_by(day)
    ).all()
    controls = session.execute(
        select(func.count()).where(Control.project_id == project_id, Control.status == "active")
    ).scalar_one()
    return Overview(
        project=project,
        health=queue_health(session, project_id),
        resolved_by_people=counted[review_counts.resolved_by("human")],
        resolved_by_memory=counted[review_counts.resolved_by("memory")],
        controls=controls,
        days=[DayRate(day=str(r[0]), verdicts=r[1], ambiguous=int(r[2] or 0)) for r in rows],
    )
