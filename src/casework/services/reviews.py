"""The HITL review queue: enqueue, list, resolve with expert feedback (which creates a control), bulk, export."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, text
from sqlalchemy.orm import Session

from casework.db.dialect import insert_ignoring_conflict, json_array_contains
from casework.db.models import Review, Run
from casework.db.types import utcnow
from casework.errors import (
    CaseworkError,
    ReviewAlreadyResolved,
    ReviewNotFound,
    RunNotFound,
    ValidationFailed,
)
from casework.ids import new_id
from casework.services import audit, controls
from casework.services.auth import Principal
from casework.services.pagination import decode_cursor, encode_cursor, to_json_time
from casework.services.projects import get_project, project_in_workspace

AMBIGUOUS = "ambiguous"
REVIEW_STATUSES = ("pending", "resolved", "all")
_PENDING_DEDUPE = text("status = 'pending' AND dedupe_key IS NOT NULL")


@dataclass(frozen=True)
class Feedback:
    """An expert's decision on a review. ``reasoning`` is what the judge will read in ``{memories}``."""

    classification: str
    reasoning: str
    reviewer: str
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FeedbackOutcome:
    review: Review
    control_id: str
    created: bool  # False when this exact feedback had already been accepted (an idempotent repeat)


def review_record(review: Any, *, now: datetime | None = None) -> dict[str, Any]:
    """A review as the API and every export write it. Works on ORM objects and on plain result rows."""
    now = now or utcnow()
    created_at: datetime = review.created_at
    resolved_at: datetime | None = review.resolved_at
    age = ((resolved_at or now) - created_at).total_seconds()
    resolution = None
    if review.status == "resolved":
        resolution = {
            "classification": review.resolution_classification,
            "reasoning": review.resolution_reasoning,
            "reviewer": review.resolution_reviewer,
            "tags": list(review.resolution_tags or []),
            "control_id": review.control_id,
            "resolved_by": review.resolved_by,
            "resolved_at": to_json_time(resolved_at),
            "submitted_by": review.resolution_submitted_by,
        }
    return {
        "id": review.id,
        "project_id": review.project_id,
        "run_id": review.run_id,
        "evaluator_type": review.evaluator_type,
        "query": review.query,
        "response": review.response,
        "context": review.context,
        "classification": review.classification,
        "confidence": review.confidence,
        "explanation": review.explanation,
        "options": list(review.options),
        "status": review.status,
        "priority": review.priority,
        "created_at": to_json_time(created_at),
        "age_seconds": round(max(age, 0.0), 3),
        "trace_id": review.trace_id,
        "span_id": review.span_id,
        "metadata": review.attributes,
        "resolution": resolution,
    }


def _validate_options(options: Sequence[str]) -> list[str]:
    cleaned = [option.strip() for option in options]
    if not cleaned or any(not option for option in cleaned):
        raise ValidationFailed("options must list the classifications a reviewer may choose.")
    if len(set(cleaned)) != len(cleaned):
        raise ValidationFailed("options must not repeat a classification.", details={"options": cleaned})
    if AMBIGUOUS in cleaned:
        raise ValidationFailed(
            "'ambiguous' cannot be an option: it is what sends a case to a person, who must decide.",
            details={"options": cleaned},
        )
    return cleaned


def enqueue_review(
    session: Session,
    *,
    principal: Principal,
    project_id: str,
    evaluator_type: str,
    query: str,
    response: str,
    options: Sequence[str] | None,
    context: str | None = None,
    classification: str = AMBIGUOUS,
    confidence: float | None = None,
    explanation: str | None = None,
    run_id: str | None = None,
    trace_id: str | None = None,
    span_id: str | None = None,
    priority: int = 0,
    metadata: dict[str, Any] | None = None,
) -> tuple[Review, bool]:
    """Queue a review; returns it and whether it is new. The same (project, evaluator, span or trace) while a
    review for it is pending returns that review instead of a duplicate."""
    principal.require_write()
    get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    if run_id is not None:
        run = session.get(Run, run_id)
        if run is None or run.project_id != project_id:
            raise RunNotFound(f"No run with id {run_id!r} in this project.", details={"run_id": run_id})
    if options is None:
        raise ValidationFailed(
            "options is required: list the classifications a reviewer may choose.",
            details={"field": "options"},
        )
    dedupe_key = f"span:{span_id}" if span_id else (f"trace:{trace_id}" if trace_id else None)
    values: dict[str, Any] = {
        "id": new_id("rev"),
        "project_id": project_id,
        "run_id": run_id,
        "evaluator_type": evaluator_type,
        "query": query,
        "response": response,
        "context": context,
        "options": _validate_options(options),
        "classification": classification,
        "confidence": confidence,
        "explanation": explanation,
        "trace_id": trace_id,
        "span_id": span_id,
        "dedupe_key": dedupe_key,
        "priority": priority,
        "attributes": metadata or {},
        "status": "pending",
        "created_at": utcnow(),
        "created_by": principal.identity,
    }
    if dedupe_key is None:
        session.add(Review(**values))
    elif not insert_ignoring_conflict(
        session,
        Review,
        values,
        conflict_columns=["project_id", "evaluator_type", "dedupe_key"],
        conflict_where=_PENDING_DEDUPE,
    ):
        existing = session.execute(
            select(Review).where(
                Review.project_id == project_id,
                Review.evaluator_type == evaluator_type,
                Review.dedupe_key == dedupe_key,
                Review.status == "pending",
            )
        ).scalar_one()
        return existing, False
    review = session.get_one(Review, values["id"])
    audit.record(
        session,
        project_id=project_id,
        actor=principal.identity,
        action="review.created",
        object_type="review",
        object_id=review.id,
        after={"evaluator_type": evaluator_type, "classification": classification, "priority": priority},
    )
    return review, True


def _not_found(review_id: str) -> ReviewNotFound:
    return ReviewNotFound(f"No review with id {review_id!r}.", details={"review_id": review_id})


def get_review(session: Session, *, principal: Principal, review_id: str) -> Review:
    review = session.get(Review, review_id)
    if review is None or not project_in_workspace(
        session, workspace_id=principal.workspace_id, project_id=review.project_id
    ):
        raise _not_found(review_id)
    return review


def _resolution(review: Review) -> dict[str, Any]:
    return review_record(review)["resolution"] or {}


def submit_feedback(
    session: Session, *, principal: Principal, review_id: str, feedback: Feedback
) -> FeedbackOutcome:
    """Resolve the review with an expert's decision and turn it into a control, in this one transaction.

    Submitting the same feedback again returns the first outcome; different feedback on a resolved review is a
    conflict. The row lock makes concurrent submitters queue: exactly one of them creates the control.
    """
    principal.require_write()
    review = session.execute(
        select(Review).where(Review.id == review_id).with_for_update()
    ).scalar_one_or_none()
    if review is None or not project_in_workspace(
        session, workspace_id=principal.workspace_id, project_id=review.project_id
    ):
        raise _not_found(review_id)
    if review.status == "resolved":
        same = (
            review.resolved_by == "human"
            and review.resolution_classification == feedback.classification
            and review.resolution_reasoning == feedback.reasoning
            and review.resolution_reviewer == feedback.reviewer
            and list(review.resolution_tags or []) == list(feedback.tags)
        )
        if same and review.control_id:
            return FeedbackOutcome(review=review, control_id=review.control_id, created=False)
        raise ReviewAlreadyResolved(
            f"Review {review_id} was already resolved; its control can be edited under /api/v1/controls.",
            details={"review_id": review_id, "resolution": _resolution(review)},
        )
    if feedback.classification not in review.options:
        raise ValidationFailed(
            f"classification must be one of {review.options}, not {feedback.classification!r}.",
            details={"field": "classification", "allowed": list(review.options)},
        )
    control = controls.create_control(
        session,
        project_id=review.project_id,
        evaluator_type=review.evaluator_type,
        classification=feedback.classification,
        reasoning=feedback.reasoning,
        tags=feedback.tags,
        reviewer=feedback.reviewer,
        actor=principal.identity,
        review_id=review.id,
        query=review.query,
        response=review.response,
        context=review.context,
    )
    review.status = "resolved"
    review.resolved_at = utcnow()
    review.resolved_by = "human"
    review.resolution_classification = feedback.classification
    review.resolution_reasoning = feedback.reasoning
    review.resolution_reviewer = feedback.reviewer
    review.resolution_tags = list(feedback.tags)
    review.resolution_submitted_by = principal.identity
    review.control_id = control.id
    audit.record(
        session,
        project_id=review.project_id,
        actor=principal.identity,
        action="review.resolved",
        object_type="review",
        object_id=review.id,
        before={"status": "pending", "classification": review.classification},
        after={"status": "resolved", **_resolution(review)},
    )
    return FeedbackOutcome(review=review, control_id=control.id, created=True)


@dataclass(frozen=True)
class BulkItemResult:
    review_id: str | None
    control_id: str | None = None
    error: CaseworkError | None = None


def bulk_feedback(
    session: Session, *, principal: Principal, items: Sequence[tuple[str, Feedback]]
) -> list[BulkItemResult]:
    """Apply each item as the single endpoint would, each in its own savepoint: a bad item never blocks the
    good ones, and what is accepted is committed together."""
    principal.require_write()
    results = []
    for review_id, feedback in items:
        try:
            with session.begin_nested():
                outcome = submit_feedback(
                    session, principal=principal, review_id=review_id, feedback=feedback
                )
            results.append(BulkItemResult(review_id=review_id, control_id=outcome.control_id))
        except CaseworkError as error:
            results.append(BulkItemResult(review_id=review_id, error=error))
    return results


@dataclass
class ReviewFilters:
    project_id: str
    status: str = "pending"
    evaluator_type: str | None = None
    tag: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def _filtered(session: Session, query: Any, filters: ReviewFilters) -> Any:
    query = query.where(Review.project_id == filters.project_id)
    if filters.status != "all":
        query = query.where(Review.status == filters.status)
    if filters.evaluator_type:
        query = query.where(Review.evaluator_type == filters.evaluator_type)
    if filters.tag:
        query = query.where(json_array_contains(session, Review.resolution_tags, filters.tag))
    if filters.created_after:
        query = query.where(Review.created_at > filters.created_after)
    if filters.created_before:
        query = query.where(Review.created_at < filters.created_before)
    return query


def _after(priority: int, created_at: datetime, review_id: str) -> Any:
    """Rows after (priority, created_at, id) in queue order: priority descending, then oldest first."""
    return or_(
        Review.priority < priority,
        and_(
            Review.priority == priority,
            or_(Review.created_at > created_at, and_(Review.created_at == created_at, Review.id > review_id)),
        ),
    )


_QUEUE_ORDER = (Review.priority.desc(), Review.created_at, Review.id)


@dataclass
class ReviewPage:
    reviews: list[Review]
    next_cursor: str | None


def list_reviews(
    session: Session,
    *,
    principal: Principal,
    filters: ReviewFilters,
    limit: int = 50,
    cursor: str | None = None,
) -> ReviewPage:
    """Highest priority first, then oldest first: the order a reviewer should work in."""
    get_project(session, workspace_id=principal.workspace_id, project_id=filters.project_id)
    query = _filtered(session, select(Review), filters)
    if cursor:
        query = query.where(_after(*decode_cursor(cursor, types=(int, datetime, str))))
    rows = list(session.execute(query.order_by(*_QUEUE_ORDER).limit(limit + 1)).scalars())
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last.priority, last.created_at, last.id)
    return ReviewPage(reviews=rows[:limit], next_cursor=next_cursor)


_EXPORT_COLUMNS = [
    column for column in Review.__table__.columns if column.key not in ("dedupe_key", "created_by")
]


def export_reviews(
    session: Session, *, principal: Principal, filters: ReviewFilters, batch_size: int = 2000
) -> Iterator[list[dict[str, Any]]]:
    """Every matching review in queue order, a batch at a time, so memory stays flat however many match.

    The project is checked now, before any batch is read: a caller can still answer with an error.
    """
    get_project(session, workspace_id=principal.workspace_id, project_id=filters.project_id)
    return _export_batches(session, filters, batch_size)


def _export_batches(
    session: Session, filters: ReviewFilters, batch_size: int
) -> Iterator[list[dict[str, Any]]]:
    base = _filtered(session, select(*_EXPORT_COLUMNS), filters).order_by(*_QUEUE_ORDER).limit(batch_size)
    key: tuple[int, datetime, str] | None = None
    now = utcnow()
    while True:
        rows = session.execute(base if key is None else base.where(_after(*key))).all()
        if rows:
            yield [review_record(_RowView(row), now=now) for row in rows]
        if len(rows) < batch_size:
            return
        key = (rows[-1].priority, rows[-1].created_at, rows[-1].id)


class _RowView:
    """A Core result row read like a Review: the ``metadata`` column is ``attributes`` on the model."""

    __slots__ = ("_row",)

    def __init__(self, row: Any) -> None:
        self._row = row

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, "metadata" if name == "attributes" else name)
