"""The HITL review queue, as the tutorial calls it: list, get, feedback, bulk feedback, export."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session

from casework.api.deps import Caller, Db
from casework.api.export import ENCODERS, TAKES_JSON_TEXT, Encoder, encode
from casework.api.schemas.common import Cursor, Limit, TimeFilter
from casework.api.schemas.reviews import (
    MAX_BULK_ITEMS,
    BulkFeedbackItem,
    BulkFeedbackRequest,
    BulkFeedbackResult,
    BulkItemResult,
    ExportFormat,
    FeedbackAccepted,
    FeedbackCreate,
    ItemError,
    ReviewCreate,
    ReviewList,
    ReviewPublic,
    ReviewStatus,
)
from casework.db.types import utcnow
from casework.errors import PayloadTooLarge
from casework.services import review_queries
from casework.services import reviews as review_service
from casework.services.auth import Principal
from casework.services.review_queries import ReviewFilters, review_record
from casework.services.reviews import Feedback

router = APIRouter(prefix="/api/v1/hitl/reviews", tags=["reviews"])


def _filters(
    project_id: Annotated[str, Query(description="The project whose reviews to list.")],
    status: Annotated[ReviewStatus, Query(description="pending, resolved or all.")] = "pending",
    evaluator_type: Annotated[str | None, Query()] = None,
    tag: Annotated[str | None, Query(description="Reviews resolved with this tag.")] = None,
    created_after: TimeFilter = None,
    created_before: TimeFilter = None,
) -> ReviewFilters:
    return ReviewFilters(
        project_id=project_id,
        status=status,
        evaluator_type=evaluator_type,
        tag=tag,
        created_after=created_after,
        created_before=created_before,
    )


def _public(review: Any, now: datetime | None = None) -> ReviewPublic:
    return ReviewPublic.model_validate(review_record(review, now=now))


@router.post("", response_model=ReviewPublic, status_code=201, summary="Queue a review by hand")
async def create_review(body: ReviewCreate, db: Db, caller: Caller, response: Response) -> ReviewPublic:
    review, created = await db(review_service.enqueue_review, principal=caller, **body.model_dump())
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return _public(review)


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


@router.get("/export", summary="Export reviews as JSON, JSON Lines or CSV, streamed")
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
async def bulk_feedback(
    body: BulkFeedbackRequest, db: Db, caller: Caller, request: Request
) -> BulkFeedbackResult:
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
                review_id=review_id if isinstance(review_id, str) else None,
                status="rejected",
                error=ItemError(
                    code="validation_error", message=f"{where}: {first['msg']}", details={"index": index}
                ),
            )
    applied = await db(
        review_service.bulk_feedback,
        principal=caller,
        items=[
            (item.review_id, Feedback(item.classification, item.reasoning, item.reviewer, item.tags))
            for _, item in valid
        ],
    )
    for (index, _), outcome in zip(valid, applied, strict=True):
        if outcome.created and outcome.control_id:
            _memory_pass_queued(request)
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
    return BulkFeedbackResult(accepted=accepted, rejected=len(final) - accepted, results=final)


@router.get("/{review_id}", response_model=ReviewPublic, summary="One review")
async def get_review(review_id: str, db: Db, caller: Caller) -> ReviewPublic:
    return _public(await db(review_service.get_review, principal=caller, review_id=review_id))


@router.post(
    "/{review_id}/feedback",
    response_model=FeedbackAccepted,
    status_code=201,
    summary="Resolve a review with an expert's decision; it becomes a control",
    responses={
        200: {"description": "This exact feedback was already accepted: the same control is returned."}
    },
)
async def submit_feedback(
    review_id: str, body: FeedbackCreate, db: Db, caller: Caller, request: Request, response: Response
) -> FeedbackAccepted:
    outcome = await db(
        review_service.submit_feedback,
        principal=caller,
        review_id=review_id,
        feedback=Feedback(body.classification, body.reasoning, body.reviewer, body.tags),
    )
    response.status_code = status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK
    if outcome.created:
        _memory_pass_queued(request)
    return FeedbackAccepted(status="accepted", review_id=review_id, control_id=outcome.control_id)


def _memory_pass_queued(request: Request) -> None:
    """A new control queued a memory pass (in its transaction): let this process's worker start it now."""
    if request.app.state.worker is not None:
        request.app.state.worker.wake()
