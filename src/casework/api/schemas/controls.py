"""Controls (evaluation memory) and the audit trail."""

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


class ControlList(BaseModel):
    controls: list[ControlPublic]
    next_cursor: str | None


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


class AuditEventPublic(Public):
    id: int
    project_id: str
    actor: str
    action: str
    object_type: str
    object_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    created_at: datetime


class AuditList(BaseModel):
    events: list[AuditEventPublic]
    next_cursor: str | None
