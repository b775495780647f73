"""Controls: evaluation memory."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from casework.api.schemas.common import Label, NonEmptyText, Public, Reviewer, Strict, Tags, Text

ControlStatus = Literal["active", "retired", "superseded"]


class ControlCreate(Strict):
    project_id: str
    evaluator_type: Label
    classification: Label
    reasoning: NonEmptyText
    reviewer: Reviewer
    tags: Tags = Field(default_factory=list)
    query: Text | None = None
    response: Text | None = None
    context: Text | None = None


class ControlUpdate(Strict):
    classification: Label | None = None
    reasoning: NonEmptyText | None = None
    tags: Tags | None = None
    status: ControlStatus | None = None


class ControlPublic(Public):
    id: str
    project_id: str
    evaluator_type: str
    classification: str
    reasoning: str
    tags: list[str]
    reviewer: str
    status: ControlStatus
    version: int
    review_id: str | None
    query: str | None
    response: str | None
    context: str | None
    created_at: datetime
    created_by: str
    updated_at: datetime
    attention: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Decisions this control drove that a person overturned: look at it (a possible conflict).",
    )


class ControlList(BaseModel):
    controls: list[ControlPublic]
    next_cursor: str | None


class ControlConflict(BaseModel):
    evaluator_type: str
    similarity: float = Field(description="How alike the two decided interactions are, in [0, 1].")
    controls: list[ControlPublic] = Field(description="The two controls, older first.")


class ControlConflictList(BaseModel):
    conflicts: list[ControlConflict] = Field(
        description="Policy ambiguity: active controls of one evaluator on near-identical interactions "
        "(similarity at least 0.9) whose classifications differ; most similar first."
    )


class ControlVersionPublic(Public):
    version: int
    classification: str
    reasoning: str
    tags: list[str]
    status: ControlStatus
    changed_by: str
    changed_at: datetime


class ControlHistory(BaseModel):
    control_id: str
    versions: list[ControlVersionPublic] = Field(description="Every version, newest first.")


class ControlUsagePublic(BaseModel):
    control_id: str
    resolved_reviews: int = Field(
        description="Reviews memory resolved with this control that still stand: changing its classification or "
        "retiring it re-opens them."
    )
    review_ids: list[str] = Field(description="The most recent of them (at most 50).")
    evaluations_informed: int = Field(
        description="Evaluations that had it in {memories} or in the precedent vote."
    )
    evaluations_decided: int = Field(
        description="Of those, the ones decided without a person (not superseded)."
    )
