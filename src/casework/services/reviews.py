"""The HITL review queue: enqueue, list, resolve with expert feedback (which creates a control), bulk, export."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from casework.db.dialect import insert_ignoring_conflict
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
from casework.services import audit, controls, jobs, review_counts
from casework.services.auth import Principal
from casework.services.evaluators import options_for as evaluator_options
from casework.services.projects import get_project, project_in_workspace
from casework.services.review_queries import review_record

AMBIGUOUS = "ambiguous"
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
    review_counts.bump(session, project_id, {review_counts.PENDING: 1})
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
    review_counts.bump(
        session, review.project_id, {review_counts.PENDING: -1, review_counts.resolved_by("human"): 1}
    )
    jobs.queue_memory_pass(session, project_id=review.project_id, control_id=control.id)
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
