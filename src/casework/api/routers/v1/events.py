"""The event log: ``/events`` for machines (oldest first, read on with ``after``), ``/audit`` for people."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from casework.api.deps import Caller, Db
from casework.api.schemas.common import Cursor, Limit
from casework.api.schemas.events import AuditEventPublic, AuditList, EventList, EventPublic
from casework.events import ALL_TYPES
from casework.services import events as event_service

router = APIRouter(prefix="/api/v1", tags=["events"])


@router.get("/events", response_model=EventList, summary="The event feed: every change, oldest first")
async def list_events(
    db: Db,
    caller: Caller,
    project_id: Annotated[str | None, Query(description="Only this project's events.")] = None,
    type: Annotated[
        list[str] | None,
        Query(description=f"Only these types (repeat the parameter): {', '.join(sorted(ALL_TYPES))}."),
    ] = None,
    after: Annotated[str | None, Query(description="The id of the last event you have read.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventList:
    page = await db(
        event_service.list_feed,
        principal=caller,
        project_id=project_id,
        types=type,
        after=after,
        limit=limit,
    )
    return EventList(
        events=[EventPublic.model_validate(event_service.event_record(e)) for e in page.events],
        next_after=page.next_after,
    )


@router.get("/audit", response_model=AuditList, summary="Who changed what, newest first")
async def list_audit_events(
    db: Db,
    caller: Caller,
    project_id: Annotated[
        str | None,
        Query(
            description="The project's changes (its integrations' and webhooks' too). Without it (admin keys "
            "only): the workspace's own, of no one project: API keys, workspace-wide integrations and webhooks."
        ),
    ] = None,
    object_id: Annotated[str | None, Query(description="Only events about this review or control.")] = None,
    action: Annotated[str | None, Query(description="e.g. review.resolved, control.updated")] = None,
    actor: Annotated[
        str | None,
        Query(
            max_length=300,
            description="Only changes by someone whose name holds this, in any case: a key's label or id, "
            "casework-memory...",
        ),
    ] = None,
    since: Annotated[date | None, Query(alias="from", description="First day (UTC), included.")] = None,
    until: Annotated[date | None, Query(alias="to", description="Last day (UTC), included.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> AuditList:
    page = await db(
        event_service.list_audit,
        principal=caller,
        project_id=project_id,
        object_id=object_id,
        action=action,
        actor=actor or None,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    return AuditList(
        events=[
            AuditEventPublic(
                id=e.seq,
                project_id=e.project_id,
                actor=e.actor,
                action=e.type,
                object_type=e.object_type,
                object_id=e.object_id,
                before=e.before,
                after=e.data,
                created_at=e.created_at,
            )
            for e in page.events
        ],
        next_cursor=page.next_cursor,
    )
