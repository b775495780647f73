"""The HITL review queue, as the tutorial calls it: list, get, feedback, bulk feedback, export."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session

from casework.api.deps import Caller, Db, Reply, created_or_existing
from casework.api.export import ENCODERS, TAKES_JSON_TEXT, Encoder, encode
from casework.api.schemas.common import Cursor, Limit, TimeFilter
from casework.api.schemas.reviews import (
    MAX_BULK_ITEMS,
    BulkFeedbackItem,
    BulkFeedbackRequest,
    BulkFeedbackResult,
    BulkItemResult,
    DecisionList,
    DecisionPublic,
    ExportFormat,
    FeedbackAccepted,
    FeedbackSubmit,
    ItemError,
    ReviewCreate,
    ReviewDetail,
    ReviewList,
    ReviewPublic,
    ReviewStatus,
    ReviewUpdate,
)
from casework.db.types import utcnow
from casework.errors import PayloadTooLarge
from casework.services import review_queries
from casework.services import reviews as review_service
from casework.services.auth import Principal
from casework.services.review_queries import ReviewFilters, review_record
from casework.services.reviews import Feedback
from casework.text import text_problem

router = APIRouter(prefix="/api/v1/hitl/reviews", tags=["reviews"])


def _filters(
    project_id: Annotated[str, Query(description="The project whose reviews to list.")],
    status: Annotated[
        ReviewStatus | None,
        Query(
            description="pending (the default), resolved, needs_adjudication or all. With overdue=true the "
            "default is all: every review waiting for a decision (pending or needs_adjudication)."
        ),
    ] = None,
    evaluator_type: Annotated[str | None, Query()] = None,
    tag: Annotated[str | None, Query(description="Reviews resolved with this tag.")] = None,
    created_after: TimeFilter = None,
    created_before: TimeFilter = None,
    due_before: TimeFilter = None,
    overdue: Annotated[
        bool,
        Query(
            description="Only reviews waiting for a decision (pending or needs_adjudication) past their due time "
            "(a paused SLA clock is not overdue); without a status, both, soonest due first."
        ),
    ] = False,
    sort: Annotated[
        Literal["queue", "due"],
        Query(description="queue: highest priority, then oldest (the default); due: soonest due first."),
    ] = "queue",
    assigned_to: Annotated[
        str | None,
        Query(
            max_length=300, description='Reviews assigned to this reviewer; "me": to the caller (key label).'
        ),
    ] = None,
    needs_my_decision: Annotated[
        bool, Query(description="Only pending reviews the caller has not given a decision on yet.")
    ] = False,
) -> ReviewFilters:
    return ReviewFilters(
        project_id=project_id,
        status=status or ("all" if overdue else "pending"),
        evaluator_type=evaluator_type,
        tag=tag,
        created_after=created_after,
        created_before=created_before,
        due_before=due_before,
        overdue=overdue,
        sort=sort,
        assigned_to=assigned_to or None,
        needs_my_decision=needs_my_decision,
    )


def _public(review: Any, now: datetime | None = None) -> ReviewPublic:
    return ReviewPublic.model_validate(review_record(review, now=now))


@router.post(
    "",
    response_model=ReviewPublic,
    status_code=201,
    summary="Queue a review by hand",
    responses={
        200: {
            "model": ReviewPublic,
            "description": "A review for this span or trace is still pending: that one.",
        }
    },
)
async def create_review(body: ReviewCreate, db: Db, caller: Caller) -> Response:
    _, reply = await db.reply(
        created_or_existing(_public), review_service.enqueue_review, principal=caller, **body.model_dump()
    )
    return reply


Filters = Annotated[ReviewFilters, Depends(_filters)]


@router.get("", response_model=ReviewList, summary="List reviews: highest priority first, then oldest first")
async def list_reviews(
    db: Db,
    caller: Caller,
    filters: Filters,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ReviewList:
    page = await db(
        review_queries.list_reviews, principal=caller, filters=filters, limit=limit, cursor=cursor
    )
    now = utcnow()
    return ReviewList(reviews=[_public(review, now) for review in page.reviews], next_cursor=page.next_cursor)


@router.get(
    "/export",
    summary="Export reviews as JSON, JSON Lines or CSV, streamed",
    responses={
        200: {
            "description": "Every matching review, in list order, with a Content-Disposition file name.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "reviews": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/ReviewPublic"},
                            }
                        },
                        "required": ["reviews"],
                    }
                },
                "application/x-ndjson": {"schema": {"type": "string", "description": "One review per line."}},
                "text/csv": {
                    "schema": {"type": "string", "description": "A header row, then one review per row."}
                },
            },
        }
    },
)
async def export_reviews(
    db: Db,
    caller: Caller,
    filters: Filters,
    format: Annotated[ExportFormat, Query(description='json ({"reviews": [...]}), jsonl or csv.')] = "json",
) -> StreamingResponse:
    encoder = ENCODERS[format]("reviews")
    export = review_queries.export_review_json if format in TAKES_JSON_TEXT else review_queries.export_reviews
    chunks = await db.stream(_export_bytes, export=export, principal=caller, filters=filters, encoder=encoder)
    filename = f"reviews-{filters.project_id}-{filters.status}-{utcnow():%Y%m%dT%H%M%SZ}.{encoder.extension}"
    return StreamingResponse(
        chunks,
        media_type=encoder.media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _export_bytes(
    session: Session,
    *,
    export: Callable[..., Iterator[Any]],
    principal: Principal,
    filters: ReviewFilters,
    encoder: Encoder,
) -> Iterator[bytes]:
    return encode(export(session, principal=principal, filters=filters), encoder)


@router.post(
    "/bulk-feedback", response_model=BulkFeedbackResult, summary="Submit feedback on many reviews at once"
)
async def bulk_feedback(body: BulkFeedbackRequest, db: Db, caller: Caller) -> Response:
    caller.require_write()
    if len(body.feedback) > MAX_BULK_ITEMS:
        raise PayloadTooLarge(
            f"At most {MAX_BULK_ITEMS} items per request; this one has {len(body.feedback)}. Split it.",
            details={"limit": MAX_BULK_ITEMS, "items": len(body.feedback)},
        )
    results: list[BulkItemResult | None] = [None] * len(body.feedback)
    valid: list[tuple[int, BulkFeedbackItem]] = []
    for index, raw in enumerate(body.feedback):
        try:
            valid.append((index, BulkFeedbackItem.model_validate(raw)))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "item"
            review_id = raw.get("review_id") if isinstance(raw, dict) else None
            results[index] = BulkItemResult(
                review_id=review_id if isinstance(review_id, str) and not text_problem(review_id) else None,
                status="rejected",
                error=ItemError(
                    code="validation_error", message=f"{where}: {first['msg']}", details={"index": index}
                ),
            )

    def shape(applied: list[review_service.BulkItemResult]) -> Reply:
        for (index, _), outcome in zip(valid, applied, strict=True):
            if outcome.error is None:
                results[index] = BulkItemResult(
                    review_id=outcome.review_id, status="accepted", control_id=outcome.control_id
                )
            else:
                error = outcome.error
                results[index] = BulkItemResult(
                    review_id=outcome.review_id,
                    status="rejected",
                    error=ItemError(code=error.code, message=error.message, details=error.details),
                )
        final = [r for r in results if r is not None]
        accepted = sum(r.status == "accepted" for r in final)
        return Reply(BulkFeedbackResult(accepted=accepted, rejected=len(final) - accepted, results=final))

    _, reply = await db.reply(
        shape,
        review_service.bulk_feedback,
        principal=caller,
        items=[
            (item.review_id, Feedback(item.classification, item.reasoning, item.reviewer, item.tags))
            for _, item in valid
        ],
    )
    return reply


@router.get("/{review_id}", response_model=ReviewDetail, summary="One review, with the decisions you may see")
async def get_review(review_id: str, db: Db, caller: Caller) -> ReviewDetail:
    view = await db(review_service.view_review, principal=caller, review_id=review_id)
    return ReviewDetail.model_validate(
        {
            **review_record(view.review),
            "decisions": [DecisionPublic.model_validate(d, from_attributes=True) for d in view.decisions],
            "decisions_hidden": view.hidden,
        }
    )


@router.post(
    "/{review_id}/feedback",
    response_model=FeedbackAccepted,
    status_code=201,
    summary="Resolve a review with an expert's decision; it becomes a control",
    responses={
        200: {
            "model": FeedbackAccepted,
            "description": "This exact feedback was already accepted: the same control is returned.",
        },
        409: {
            "description": "Different feedback on a review that was already resolved (review_already_resolved); "
            "a second, different decision from the same reviewer (decision_already_submitted); feedback on a "
            "review waiting for a lead (review_needs_adjudication); adjudicate on a review that does not need "
            "it (review_not_awaiting_adjudication)."
        },
    },
)
async def submit_feedback(review_id: str, body: FeedbackSubmit, db: Db, caller: Caller) -> Response:
    _, reply = await db.reply(
        lambda outcome: Reply(
            FeedbackAccepted(
                status="accepted",
                review_id=review_id,
                control_id=outcome.control_id,
                memory=outcome.memory,
                review_status=outcome.review.status,
                decisions_submitted=outcome.review.decisions_submitted,
                reviewers_required=outcome.review.reviewers_required,
            ),
            201 if outcome.created else 200,
        ),
        review_service.submit_feedback,
        principal=caller,
        review_id=review_id,
        feedback=Feedback(body.classification, body.reasoning, body.reviewer, body.tags),
        overturn=body.overturn,
        adjudicate=body.adjudicate,
    )
    return reply


@router.patch(
    "/{review_id}",
    response_model=ReviewPublic,
    summary="Assign a review to a reviewer (assignee: null unassigns)",
    responses={409: {"description": "The review was already resolved (review_already_resolved)."}},
)
async def update_review(review_id: str, body: ReviewUpdate, db: Db, caller: Caller) -> Response:
    _, reply = await db.reply(
        lambda review: Reply(_public(review)),
        review_service.assign_review,
        principal=caller,
        review_id=review_id,
        assignee=body.assignee,
    )
    return reply


@router.post(
    "/{review_id}/claim",
    response_model=ReviewPublic,
    summary="Claim a review while you decide it (10 minutes, renewable): memory leaves it to you",
    responses={
        409: {
            "description": "Another person's claim is live (review_claimed), or the review was already resolved "
            "(review_already_resolved)."
        }
    },
)
async def claim_review(review_id: str, db: Db, caller: Caller) -> Response:
    _, reply = await db.reply(
        lambda review: Reply(_public(review)),
        review_service.claim_review,
        principal=caller,
        review_id=review_id,
    )
    return reply


@router.delete("/{review_id}/claim", response_model=ReviewPublic, summary="Release your claim")
async def release_claim(review_id: str, db: Db, caller: Caller) -> Response:
    _, reply = await db.reply(
        lambda review: Reply(_public(review)),
        review_service.release_claim,
        principal=caller,
        review_id=review_id,
    )
    return reply


@router.get(
    "/{review_id}/decisions", response_model=DecisionList, summary="Every decision on a review, oldest first"
)
async def list_decisions(review_id: str, db: Db, caller: Caller) -> DecisionList:
    decisions = await db(review_service.decisions_of, principal=caller, review_id=review_id)
    return DecisionList(decisions=[DecisionPublic.model_validate(d, from_attributes=True) for d in decisions])
