"""The review queue and feedback."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from casework.api.schemas.common import Label, NonEmptyText, Reviewer, Strict, Tags, Text

ReviewStatus = Literal["pending", "resolved", "all"]
ExportFormat = Literal["json", "jsonl", "csv"]
MAX_BULK_ITEMS = 1000


class ReviewCreate(Strict):
    project_id: str
    evaluator_type: Label
    query: Text
    response: Text
    context: Text | None = None
    options: list[Label] | None = Field(default=None, max_length=50)
    classification: Label = "ambiguous"
    confidence: float | None = Field(default=None, ge=0, le=1)
    explanation: Text | None = None
    run_id: str | None = None
    trace_id: str | None = Field(default=None, max_length=64)
    span_id: str | None = Field(default=None, max_length=64)
    priority: int = Field(default=0, ge=-1000, le=1000)
    metadata: dict[str, Any] | None = None


class Resolution(BaseModel):
    classification: str
    reasoning: str
    reviewer: str
    tags: list[str]
    control_id: str | None
    resolved_by: Literal["human", "memory"]
    resolved_at: datetime
    submitted_by: str | None = Field(description="The API key (label and id) that submitted the decision.")


class ReviewPublic(BaseModel):
    id: str
    project_id: str
    run_id: str | None
    evaluator_type: str
    query: str
    response: str
    context: str | None
    classification: str
    confidence: float | None
    explanation: str | None
    options: list[str]
    status: Literal["pending", "resolved"]
    priority: int
    created_at: datetime
    age_seconds: float = Field(description="Seconds pending: until now, or until it was resolved.")
    trace_id: str | None
    span_id: str | None
    metadata: dict[str, Any]
    resolution: Resolution | None


class ReviewList(BaseModel):
    reviews: list[ReviewPublic]
    next_cursor: str | None


class FeedbackCreate(Strict):
    classification: Label
    reasoning: NonEmptyText = Field(description="Why: the judge reads this in {memories} on similar cases.")
    reviewer: Reviewer
    tags: Tags = Field(default_factory=list)


class FeedbackAccepted(BaseModel):
    status: Literal["accepted"]
    review_id: str
    control_id: str


class BulkFeedbackItem(FeedbackCreate):
    review_id: str


class BulkFeedbackRequest(BaseModel):
    # Items are validated one by one, so that one malformed item is rejected alone.
    feedback: list[Any]


class ItemError(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = {}


class BulkItemResult(BaseModel):
    review_id: str | None
    status: Literal["accepted", "rejected"]
    control_id: str | None = None
    error: ItemError | None = None


class BulkFeedbackResult(BaseModel):
    accepted: int
    rejected: int
    results: list[BulkItemResult]
