"""Integrations and their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from casework.api.schemas.common import Strict

KIND_DESCRIPTION = "slack, teams, jira, azure_devops, servicenow or zendesk."


class IntegrationCreate(Strict):
    kind: str = Field(description=KIND_DESCRIPTION)
    config: dict[str, Any] = Field(
        description="The kind's settings (docs/integrations/<kind>.md). Tokens and secrets are write-only."
    )
    project_id: str | None = Field(default=None, description="Only this project's reviews (default: all).")
    events: list[str] | None = Field(
        default=None, max_length=10, description='Default ["review.created", "review.resolved"].'
    )
    name: str = Field(default="", max_length=200)
    enabled: bool = True


class IntegrationUpdate(Strict):
    config: dict[str, Any] | None = Field(
        default=None,
        description="Merged into the current config; a key set to null goes back to its default.",
    )
    events: list[str] | None = Field(default=None, min_length=1, max_length=10)
    name: str | None = Field(default=None, max_length=200)
    enabled: bool | None = None


class IntegrationPublic(BaseModel):
    id: str
    kind: str
    name: str
    project_id: str | None
    events: list[str]
    config: dict[str, Any] = Field(description="Everything but the secrets.")
    secrets_set: list[str] = Field(description="Which write-only secrets are set (never their values).")
    enabled: bool
    inbound_url: str = Field(description="Where the tool sends decisions: paste it into the tool's set-up.")
    created_at: datetime
    created_by: str
    updated_at: datetime


class IntegrationList(BaseModel):
    integrations: list[IntegrationPublic]


class IntegrationAttemptPublic(BaseModel):
    attempted_at: datetime
    status_code: int | None
    latency_ms: float
    response_excerpt: str | None
    error: str | None


class IntegrationDeliveryPublic(BaseModel):
    id: str
    integration_id: str
    action: Literal["open", "resolve", "update", "reply", "digest", "test"]
    review_id: str | None
    event_id: str | None
    status: Literal["waiting", "pending", "succeeded", "failed"]
    last_error: str | None
    attempts: list[IntegrationAttemptPublic]
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None


class IntegrationDeliveryList(BaseModel):
    deliveries: list[IntegrationDeliveryPublic]
