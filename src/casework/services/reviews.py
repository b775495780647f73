"""The HITL review queue: enqueue, list, resolve with expert feedback (which creates a control), bulk, export."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, select, text, tuple_
from sqlalchemy.orm import Session

from casework.db.dialect import insert_ignoring_conflict, json_array_contains
from casework.db.models import Review, Run
from casework.db.review_json import review_json
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
from casework.services.evaluators import options_for as evaluator_options
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


_RECORD_COLUMNS = [
    column for column in Review.__table__.columns if column.key not in ("dedupe_key", "created_by")
]


def review_record(review: Review, *, now: datetime | None = None) -> dict[str, Any]:
    """A review as the API and every export write it."""
    return record_from_columns({c.key: getattr(review, _attribute(c.key)) for c in _RECORD_COLUMNS}, now=now)


def _attribute(column: str) -> str:
    return "attributes" if column == "metadata" else column


def record_from_columns(
    values: Mapping[str, Any] | RowMapping, *, now: datetime | None = None
) -> dict[str, Any]:
    """The review record from its column values (an ORM object's, or a result row's ``_mapping``)."""
    created_at: datetime = values["created_at"]
    resolved_at: datetime | None = values["resolved_at"]
    age = ((resolved_at or now or utcnow()) - created_at).total_seconds()
    resolution = None
    if values["status"] == "resolved":
        resolution = {
            "classification": values["resolution_classification"],
            "reasoning": values["resolution_reasoning"],
            "reviewer": values["resolution_reviewer"],
            "tags": values["resolution_tags"] or [],
            "control_id": values["control_id"],
            "resolved_by": values["resolved_by"],
            "resolved_at": to_json_time(resolved_at),
            "submitted_by": values["resolution_submitted_by"],
        }
    return {
        "id": values["id"],
        "project_id": values["project_id"],
        "run_id": values["run_id"],
        "evaluator_type": values["evaluator_type"],
        "query": values["query"],
        "response": values["response"],
        "context": values["context"],
        "classification": values["classification"],
        "confidence": values["confidence"],
        "explanation": values["explanation"],
        "options": values["options"],
        "status": values["status"],
        "priority": values["priority"],
        "created_at": to_json_time(created_at),
        "age_seconds": round(max(age, 0.0), 3),
        "trace_id": values["trace_id"],
        "span_id": values["span_id"],
        "metadata": values["metadata"],
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
        options = evaluator_options(session, project_id=project_id, name=evaluator_type)
    if options is None:
        raise ValidationFailed(
            f"options is required: no evaluator {evaluator_type!r} in this project says which classifications "
            "a reviewer may choose.",
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
    return _check(review, feedback) or _apply(session, review, feedback, principal)


def _check(review: Review, feedback: Feedback) -> FeedbackOutcome | None:
    """The outcome of an idempotent repeat, None when the feedback is to be applied; raises when it cannot be."""
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
            f"Review {review.id} was already resolved; its control can be edited under /api/v1/controls.",
            details={"review_id": review.id, "resolution": _resolution(review)},
        )
    if feedback.classification not in review.options:
        raise ValidationFailed(
            f"classification must be one of {review.options}, not {feedback.classification!r}.",
            details={"field": "classification", "allowed": list(review.options)},
        )
    return None


def _apply(session: Session, review: Review, feedback: Feedback, principal: Principal) -> FeedbackOutcome:
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
    created: bool = False
    error: CaseworkError | None = None


def bulk_feedback(
    session: Session, *, principal: Principal, items: Sequence[tuple[str, Feedback]]
) -> list[BulkItemResult]:
    """Apply each item as the single endpoint would; a bad item is rejected alone and never blocks the others.

    Every item is checked before anything is written, so no item can fail half-way: what is accepted is
    written together, in one flush. The reviews are locked in id order, so concurrent bulks cannot deadlock.
    """
    principal.require_write()
    ids = sorted({review_id for review_id, _ in items})
    locked = session.execute(
        select(Review).where(Review.id.in_(ids)).order_by(Review.id).with_for_update()
    ).scalars()
    visible: dict[str, bool] = {}
    reviews: dict[str, Review] = {}
    for review in locked:
        if review.project_id not in visible:
            visible[review.project_id] = project_in_workspace(
                session, workspace_id=principal.workspace_id, project_id=review.project_id
            )
        if visible[review.project_id]:
            reviews[review.id] = review
    results = []
    for review_id, feedback in items:
        try:
            target = reviews.get(review_id)
            if target is None:
                raise _not_found(review_id)
            outcome = _check(target, feedback) or _apply(session, target, feedback, principal)
            results.append(
                BulkItemResult(review_id=review_id, control_id=outcome.control_id, created=outcome.created)
            )
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


Fetch = Callable[[Any], list[Any]]


@dataclass(frozen=True)
class _Ordering:
    """A sort order and its keyset pagination: the cursor is the sort key of the last row of a page, and
    the next page is read with index range seeks only, so page 1,000 costs what page 1 does."""

    columns: tuple[Any, ...]
    key_types: tuple[type, ...]
    key: Callable[[Any], tuple[Any, ...]]
    page: Callable[[Fetch, Any, tuple[Any, ...] | None, int], list[Any]]


def _queue_page(fetch: Fetch, query: Any, key: tuple[Any, ...] | None, limit: int) -> list[Any]:
    # Priority descends while time ascends, so no single row-value comparison continues the order. Two do:
    # the rest of this priority, then every lower one; each is a seek on ix_reviews_queue.
    if key is None:
        return fetch(query.order_by(*_QUEUE_COLUMNS).limit(limit))
    priority, created_at, review_id = key
    rows = fetch(
        query.where(
            Review.priority == priority, tuple_(Review.created_at, Review.id) > tuple_(created_at, review_id)
        )
        .order_by(Review.created_at, Review.id)
        .limit(limit)
    )
    if len(rows) < limit:
        rows += fetch(
            query.where(Review.priority < priority).order_by(*_QUEUE_COLUMNS).limit(limit - len(rows))
        )
    return rows


def _creation_page(fetch: Fetch, query: Any, key: tuple[Any, ...] | None, limit: int) -> list[Any]:
    # A row-value comparison, not "a > x OR (a = x AND b > y)": SQLite seeks the former and scans the latter.
    if key is not None:
        query = query.where(tuple_(Review.created_at, Review.id) > tuple_(*key))
    return fetch(query.order_by(Review.created_at, Review.id).limit(limit))


_QUEUE_COLUMNS = (Review.priority.desc(), Review.created_at, Review.id)
# With a status: the reviewer's order, highest priority first, then oldest (ix_reviews_queue).
_QUEUE_ORDER = _Ordering(
    columns=_QUEUE_COLUMNS,
    key_types=(int, datetime, str),
    key=lambda row: (row.priority, row.created_at, row.id),
    page=_queue_page,
)
# status=all mixes queues, and created_after asks what arrived since: creation order (ix_reviews_project_id_created_at).
_CREATION_ORDER = _Ordering(
    columns=(Review.created_at, Review.id),
    key_types=(datetime, str),
    key=lambda row: (row.created_at, row.id),
    page=_creation_page,
)


def _ordering(filters: ReviewFilters) -> _Ordering:
    return _CREATION_ORDER if filters.status == "all" or filters.created_after is not None else _QUEUE_ORDER


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
    """With a status, highest priority first, then oldest first: the order a reviewer should work in. With
    status=all or created_after (polling for what is new), oldest first: the order they arrived in."""
    get_project(session, workspace_id=principal.workspace_id, project_id=filters.project_id)
    ordering = _ordering(filters)
    key = decode_cursor(cursor, types=ordering.key_types) if cursor else None

    def fetch(statement: Any) -> list[Any]:
        return list(session.execute(statement).scalars())

    rows = ordering.page(fetch, _filtered(session, select(Review), filters), key, limit + 1)
    next_cursor = encode_cursor(*ordering.key(rows[limit - 1])) if len(rows) > limit else None
    return ReviewPage(reviews=rows[:limit], next_cursor=next_cursor)


def export_reviews(
    session: Session, *, principal: Principal, filters: ReviewFilters, batch_size: int = 2000
) -> Iterator[list[dict[str, Any]]]:
    """Every matching review in list order, a batch of records at a time: memory stays flat however many match.

    The project is checked now, before any batch is read: a caller can still answer with an error.
    """
    get_project(session, workspace_id=principal.workspace_id, project_id=filters.project_id)
    now = utcnow()
    return (
        [record_from_columns(row._mapping, now=now) for row in rows]
        for rows in _export_batches(session, filters, list(_RECORD_COLUMNS), batch_size)
    )


def export_review_json(
    session: Session, *, principal: Principal, filters: ReviewFilters, batch_size: int = 5000
) -> Iterator[list[str]]:
    """Like :func:`export_reviews`, but each record already encoded as JSON by the database (about three times
    the throughput: bench/review_queue.py)."""
    get_project(session, workspace_id=principal.workspace_id, project_id=filters.project_id)
    document = review_json(session.get_bind().dialect.name, now=utcnow()).label("document")
    columns = [document, Review.__table__.c.priority, Review.__table__.c.created_at, Review.__table__.c.id]
    return ([row.document for row in rows] for rows in _export_batches(session, filters, columns, batch_size))


def _export_batches(
    session: Session, filters: ReviewFilters, columns: list[Any], batch_size: int
) -> Iterator[Any]:
    """Keyset batches in list order; ``columns`` must include the ordering's key columns."""
    ordering = _ordering(filters)
    base = _filtered(session, select(*columns), filters)
    key: tuple[Any, ...] | None = None

    def fetch(statement: Any) -> list[Any]:
        return list(session.execute(statement).all())

    while True:
        rows = ordering.page(fetch, base, key, batch_size)
        if rows:
            yield rows
        if len(rows) < batch_size:
            return
        key = ordering.key(rows[-1])
