"""The review queue and feedback."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from casework.api.schemas.common import FreeForm, Label, NonEmptyText, Reviewer, Strict, Tags, Text

ReviewStatus = Literal["pending", "resolved", "needs_adjudication", "all"]
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
    metadata: FreeForm | None = None


class ReviewUpdate(Strict):
    assignee: Reviewer | None = Field(
        description="The reviewer to assign it to (as their key label or sign-in "
        "name shows them); null unassigns."
    )


class Resolution(BaseModel):
    classification: str
    reasoning: str
    reviewer: str
    tags: list[str]
    control_id: str | None
    resolved_by: Literal["human", "memory"]
    resolved_at: datetime
    submitted_by: str | None = Field(description="The API key (label and id) that submitted the decision.")


class Vote(BaseModel):
    control_id: str
    score: float
    classification: str


class Suggestion(BaseModel):
    classification: str
    confidence: float = Field(
        description="How often memory was right at this confidence, by the evidence (calibrated: true); before "
        "there is enough evidence, the vote's raw score."
    )
    calibrated: bool = False

    explanation: str
    control_ids: list[str]
    votes: list[Vote] = []
    created_at: datetime | None = None


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
    status: Literal["pending", "resolved", "needs_adjudication"] = Field(
        description="needs_adjudication: the several reviewers it needed disagreed; a lead decides."
    )
    priority: int
    created_at: datetime
    age_seconds: float = Field(description="Seconds pending: until now, or until it was resolved.")
    trace_id: str | None
    span_id: str | None
    metadata: dict[str, Any]
    kind: Literal["review", "spot_check"] = Field(
        description="spot_check: a person checking an automatic decision (subject_id names it)."
    )
    reason: str = Field(
        description="Why it was queued: ambiguous, low_confidence, spot_check, reopened, manual, tier_rule."
    )
    subject_id: str | None = Field(
        description="For a spot check: the review memory resolved, or the evaluation the judge decided."
    )
    tier: str | None = Field(
        default=None, description="The risk tier it was routed under (None where the project has no tiers)."
    )
    suggestion: Suggestion | None = Field(description="Memory's proposed decision, when it has one.")
    claimed_by: str | None = Field(description="Who has the review open (until claim_expires_at).")
    claim_expires_at: datetime | None
    due_at: datetime | None = Field(
        default=None,
        description="When a decision is due by the SLA policy (set when queued, restarted when re-opened; it "
        "moves on by the time the clock was paused).",
    )
    paused_at: datetime | None = Field(
        default=None, description="Since when the SLA clock has been paused (waiting on someone outside)."
    )
    reviewers_required: int = Field(
        default=1,
        description="Independent decisions it needs (its evaluator's reviewers_required when queued).",
    )
    decisions_submitted: int = Field(default=0, description="How many of them are in.")
    assignee: str | None = Field(default=None, description="The reviewer it is assigned to.")
    resolution: Resolution | None


class ReviewList(BaseModel):
    reviews: list[ReviewPublic]
    next_cursor: str | None


class FeedbackCreate(Strict):
    classification: Label
    reasoning: NonEmptyText = Field(description="Why: the judge reads this in {memories} on similar cases.")
    reviewer: Reviewer
    tags: Tags = Field(default_factory=list)


class FeedbackSubmit(FeedbackCreate):
    overturn: bool = Field(
        default=False,
        description="Replace a decision memory made with a different classification (kept in history).",
    )
    adjudicate: bool = Field(
        default=False,
        description="A lead (admin key) settles a review whose reviewers disagreed (needs_adjudication): this "
        "decision alone becomes the control.",
    )


class FeedbackAccepted(BaseModel):
    status: Literal["accepted"]
    review_id: str
    control_id: str | None = Field(
        description="The control the review's resolution made; null while an overlapped review still waits for "
        "decisions or for a lead."
    )
    review_status: Literal["pending", "resolved", "needs_adjudication"] = "resolved"
    decisions_submitted: int = 0
    reviewers_required: int = 1
    memory: Literal["confirmed", "overturned"] | None = Field(
        default=None, description="What this decision did to memory's decision on the review, if it had one."
    )


class DecisionPublic(BaseModel):
    id: str
    by: Literal["human", "memory"]
    status: Literal["current", "confirmed", "overturned", "reopened", "submitted"] = Field(
        description="submitted: one reviewer's independent decision on an overlapped review."
    )
    classification: str
    reasoning: str
    reviewer: str
    tags: list[str]
    submitted_by: str
    control_id: str | None
    confidence: float | None
    votes: list[Vote]
    created_at: datetime
    ended_at: datetime | None
    ended_reason: str | None


class DecisionList(BaseModel):
    decisions: list[DecisionPublic] = Field(description="Every decision the review has had, oldest first.")


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


class ReviewDetail(ReviewPublic):
    """One review (GET /api/v1/hitl/reviews/{id}), with the decisions the caller may see."""

    decisions: list[DecisionPublic] = Field(
        description="Its decisions the caller may see, oldest first: blind overlap hides other reviewers' "
        "submitted decisions until the caller has given theirs (a lead, an admin key, sees all)."
    )
    decisions_hidden: bool = Field(
        description="Whether other reviewers' decisions are hidden from the caller."
    )
