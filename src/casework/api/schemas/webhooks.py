"""Webhook endpoints and their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from casework.api.schemas.common import Strict

Url = str


class WebhookCreate(Strict):
    url: Url = Field(max_length=2000, description="Where to POST events: http:// or https://.")
    events: list[str] = Field(min_length=1, max_length=50, description='Event types, or ["*"] for all.')
    project_id: str | None = Field(default=None, description="Only this project's events (default: all).")
    description: str = Field(default="", max_length=1000)
    enabled: bool = True


class WebhookUpdate(Strict):
    url: Url | None = Field(default=None, max_length=2000)
    events: list[str] | None = Field(default=None, min_length=1, max_length=50)
    description: str | None = Field(default=None, max_length=1000)
    enabled: bool | None = None


class WebhookPublic(BaseModel):
    id: str
    url: str
    events: list[str]
    project_id: str | None
    description: str
    enabled: bool
    disabled_reason: str | None
    failed_in_a_row: int = Field(description="Deliveries in a row that failed every retry.")
    created_at: datetime
    created_by: str
    updated_at: datetime


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="The signing secret (whsec_...): shown this once. Verify with it.")


class WebhookList(BaseModel):
    webhooks: list[WebhookPublic]


class SecretRotated(BaseModel):
    secret: str = Field(description="The new secret; the old one keeps signing beside it for 24 hours.")


class AttemptPublic(BaseModel):
    attempted_at: datetime
    status_code: int | None
    latency_ms: float
    response_excerpt: str | None
    error: str | None


class DeliveryPublic(BaseModel):
    id: str
    webhook_id: str
    event_id: str
    event_type: str
    status: Literal["waiting", "pending", "succeeded", "failed"]
    attempts: list[AttemptPublic]
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None


class DeliveryList(BaseModel):
    deliveries: list[DeliveryPublic]
    next_cursor: str | None
