"""The event log: the machine feed and the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class EventPublic(BaseModel):
    id: str = Field(description="Stable: the idempotency key of the event wherever it is delivered.")
    type: str
    timestamp: datetime
    workspace_id: str
    project_id: str | None
    actor: str
    object_type: str
    object_id: str
    data: dict[str, Any] = Field(description="The object as its GET returns it, after the change.")


class EventList(BaseModel):
    events: list[EventPublic]
    next_after: str | None = Field(
        description="Pass as `after` to read on: the last event's id (or the `after` given, when none came)."
    )


class AuditEventPublic(BaseModel):
    id: int
    project_id: str | None = Field(description="None for the workspace's own changes (API keys...).")
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
