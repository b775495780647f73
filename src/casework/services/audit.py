"""The audit trail: every change to reviews and controls, who made it, and the state before and after."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.db.models import AuditEvent
from casework.db.types import utcnow
from casework.services.auth import Principal
from casework.services.pagination import decode_cursor, encode_cursor
from casework.services.projects import get_project


def record(
    session: Session,
    *,
    project_id: str,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEvent(
            project_id=project_id,
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            before=before,
            after=after,
            created_at=utcnow(),
        )
    )


@dataclass
class AuditPage:
    events: list[AuditEvent]
    next_cursor: str | None


def list_events(
    session: Session,
    *,
    principal: Principal,
    project_id: str,
    object_id: str | None = None,
    action: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> AuditPage:
    """Newest first."""
    get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    query = select(AuditEvent).where(AuditEvent.project_id == project_id)
    if object_id:
        query = query.where(AuditEvent.object_id == object_id)
    if action:
        query = query.where(AuditEvent.action == action)
    if cursor:
        (last_id,) = decode_cursor(cursor, types=(int,))
        query = query.where(AuditEvent.id < last_id)
    events = list(session.execute(query.order_by(AuditEvent.id.desc()).limit(limit + 1)).scalars())
    next_cursor = encode_cursor(events[limit - 1].id) if len(events) > limit else None
    return AuditPage(events=events[:limit], next_cursor=next_cursor)
