"""The integrations' delivery log, for people: the API's list and the admin page (newest first, every attempt)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casework.db.models import Integration, IntegrationAttempt, IntegrationDelivery
from casework.services.auth import Principal
from casework.services.integrations import get_integration
from casework.services.pagination import to_json_time


def delivery_record(delivery: IntegrationDelivery, attempts: list[IntegrationAttempt]) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "integration_id": delivery.integration_id,
        "action": delivery.action,
        "review_id": delivery.review_id,
        "event_id": delivery.event_id,
        "status": delivery.status,
        "last_error": delivery.last_error,
        "attempts": [
            {
                "attempted_at": to_json_time(a.attempted_at),
                "status_code": a.status_code,
                "latency_ms": a.latency_ms,
                "response_excerpt": a.response_excerpt,
                "error": a.error,
            }
            for a in attempts
        ],
        "next_attempt_at": to_json_time(delivery.next_attempt_at) if delivery.status == "pending" else None,
        "created_at": to_json_time(delivery.created_at),
        "finished_at": to_json_time(delivery.finished_at),
    }


def recent_deliveries(
    session: Session, integration_ids: Sequence[str], limit: int
) -> dict[str, list[dict[str, Any]]]:
    """The newest ``limit`` deliveries of each integration, each with its attempts."""
    found: dict[str, list[IntegrationDelivery]] = {}
    for integration_id in integration_ids:
        found[integration_id] = list(
            session.execute(
                select(IntegrationDelivery)
                .where(IntegrationDelivery.integration_id == integration_id)
                .order_by(IntegrationDelivery.created_at.desc(), IntegrationDelivery.id.desc())
                .limit(limit)
            ).scalars()
        )
    ids = [d.id for rows in found.values() for d in rows]
    attempts: dict[str, list[IntegrationAttempt]] = {i: [] for i in ids}
    if ids:
        for attempt in session.execute(
            select(IntegrationAttempt)
            .where(IntegrationAttempt.delivery_id.in_(ids))
            .order_by(IntegrationAttempt.id)
        ).scalars():
            attempts[attempt.delivery_id].append(attempt)
    return {key: [delivery_record(d, attempts[d.id]) for d in rows] for key, rows in found.items()}


def list_deliveries(
    session: Session, *, principal: Principal, integration_id: str, limit: int = 50
) -> list[dict[str, Any]]:
    """Newest first, each with every attempt."""
    get_integration(session, principal=principal, integration_id=integration_id)
    return recent_deliveries(session, [integration_id], limit)[integration_id]


@dataclass
class IntegrationRow:
    integration: Integration
    deliveries: list[dict[str, Any]]
    failed: int


def admin_page(session: Session, *, principal: Principal) -> list[IntegrationRow]:
    """The admin page: every integration of the workspace with its last deliveries and errors."""
    principal.require_admin()
    integrations = list(
        session.execute(
            select(Integration)
            .where(Integration.workspace_id == principal.workspace_id)
            .order_by(Integration.created_at)
        ).scalars()
    )
    recent = recent_deliveries(session, [i.id for i in integrations], 10)
    failed = dict(
        session.execute(
            select(IntegrationDelivery.integration_id, func.count())
            .where(
                IntegrationDelivery.integration_id.in_([i.id for i in integrations]),
                IntegrationDelivery.status == "failed",
            )
            .group_by(IntegrationDelivery.integration_id)
        ).all()
    )
    return [IntegrationRow(i, recent[i.id], int(failed.get(i.id, 0))) for i in integrations]
