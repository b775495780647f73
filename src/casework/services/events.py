"""Writing and reading the event log: the one place a state change of the loop is recorded.

``emit`` writes the event in the caller's transaction, keeps what follows from it in the same transaction (the
review counts, the daily roll-ups, agreement's day tallies marked to count again), and marks the transaction so
that, once it commits, this process's worker is woken (casework.db.engine). Whatever else reacts to the event
(the memory pass, webhooks, integrations) is a subscriber reading the log later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from casework.db import outbox
from casework.db.dialect import contains_text
from casework.db.engine import mark_for_wake
from casework.db.models import Event
from casework.db.types import utcnow
from casework.errors import InvalidCursor, ValidationFailed
from casework.events import ADMIN_ONLY, EventType
from casework.ids import new_id
from casework.services import agreement_days, review_counts, rollups
from casework.services.auth import Principal, Role
from casework.services.pagination import decode_cursor, encode_cursor, to_json_time
from casework.services.projects import get_project

# The review events that move a review between states (the kept counts follow them); the others (claimed, due
# soon, overdue) leave its status as it was.
_CHANGES_STATUS = frozenset(
    {
        EventType.review_created,
        EventType.review_resolved,
        EventType.review_reopened,
        EventType.review_needs_adjudication,
    }
)
_ROLLED_UP = frozenset({EventType.review_created, EventType.review_resolved, EventType.control_created})
# The review events that can change what agreement reads (a submitted decision, a review's status or resolution):
# agreement_days.follow marks the review's day to count again when people took part.
_CHANGES_AGREEMENT = frozenset(
    {
        EventType.review_decision_submitted,
        EventType.review_needs_adjudication,
        EventType.review_resolved,
        EventType.review_reopened,
    }
)


def emit(
    session: Session,
    type: EventType,
    *,
    workspace_id: str,
    project_id: str | None,
    actor: str,
    object_type: str,
    object_id: str,
    data: dict[str, Any],
    before: dict[str, Any] | None = None,
) -> str:
    """Record one state change in the current transaction; returns the event's id."""
    event_id = new_id("evt")
    outbox.insert_event(
        session,
        {
            "id": event_id,
            "workspace_id": workspace_id,
            "project_id": project_id,
            "type": type.value,
            "actor": actor[:300],
            "object_type": object_type,
            "object_id": object_id,
            "data": data,
            "before": before,
            "created_at": utcnow(),
        },
    )
    if object_type == "review" and project_id is not None and type in _CHANGES_STATUS:
        review_counts.follow(session, project_id, before=before, after=data)
    if project_id is not None and type in _ROLLED_UP:
        rollups.follow(session, type.value, project_id=project_id, data=data)
    if object_type == "review" and project_id is not None and type in _CHANGES_AGREEMENT:
        agreement_days.follow(session, project_id, before=before, after=data)
    mark_for_wake(session)
    return event_id


def event_record(event: Event) -> dict[str, Any]:
    """An event as the feed and webhooks show it."""
    return {
        "id": event.id,
        "type": event.type,
        "timestamp": to_json_time(event.created_at),
        "workspace_id": event.workspace_id,
        "project_id": event.project_id,
        "actor": event.actor,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "data": event.data,
    }


def read_after(session: Session, *, position: int, limit: int) -> list[Event]:
    """Sequenced events after ``position``, in order (for subscribers)."""
    query = select(Event).where(Event.position > position).order_by(Event.position).limit(limit)
    return list(session.execute(query).scalars())


def end_of_log(session: Session) -> int:
    """The position of the last sequenced event (0 for an empty log)."""
    return int(session.execute(select(func.max(Event.position))).scalar_one() or 0)


# --- the feed (GET /api/v1/events) ----------------------------------------------------------------------------


@dataclass
class FeedPage:
    events: list[Event]
    next_after: str | None


def _visible_to(principal: Principal, query: Any) -> Any:
    """Events about keys and connections (casework.events.ADMIN_ONLY) are read by admin keys only."""
    if principal.role is Role.admin:
        return query
    return query.where(Event.type.not_in(sorted(t.value for t in ADMIN_ONLY)))


def list_feed(
    session: Session,
    *,
    principal: Principal,
    project_id: str | None = None,
    types: list[str] | None = None,
    after: str | None = None,
    limit: int = 100,
) -> FeedPage:
    """The workspace's events (or one project's) after the event ``after``, in log order. Only sequenced events
    are listed, so a poller that continues from the last id it saw never misses one."""
    query = select(Event).where(Event.workspace_id == principal.workspace_id, Event.position.is_not(None))
    query = _visible_to(principal, query)
    if project_id is not None:
        get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
        query = query.where(Event.project_id == project_id)
    if types:
        query = query.where(Event.type.in_(types))
    if after:
        last = session.execute(
            select(Event.position).where(Event.id == after, Event.workspace_id == principal.workspace_id)
        ).scalar_one_or_none()
        if last is None:
            raise InvalidCursor(
                f"after must be the id of an event of this workspace, not {after!r}.",
                details={"after": after},
            )
        query = query.where(Event.position > last)
    query = query.order_by(Event.position).limit(limit)
    events = list(session.execute(query).scalars())
    return FeedPage(events=events, next_after=events[-1].id if events else after)


# --- the audit trail (GET /api/v1/audit) -----------------------------------------------------------------------


@dataclass
class AuditPage:
    events: list[Event]
    next_cursor: str | None


def list_audit(
    session: Session,
    *,
    principal: Principal,
    project_id: str | None,
    object_id: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    since: date | None = None,
    until: date | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> AuditPage:
    """A project's events, newest first: who did what to which review or control, before and after; with no
    project (admins only), the workspace's own, of no one project: its API keys, its workspace-wide integrations
    and webhooks. ``actor``: events by someone whose name holds it (any case); ``since`` and ``until``: UTC
    days, both included."""
    if project_id is None:
        principal.require_admin()
        scope = and_(Event.project_id.is_(None), Event.workspace_id == principal.workspace_id)
    else:
        get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
        scope = Event.project_id == project_id
    if since is not None and until is not None and since > until:
        raise ValidationFailed(
            f"from ({since}) must not be after to ({until}).", details={"from": str(since), "to": str(until)}
        )
    query = _visible_to(principal, select(Event).where(scope))
    if object_id:
        query = query.where(Event.object_id == object_id)
    if action:
        query = query.where(Event.type == action)
    if actor:
        query = query.where(contains_text(session, Event.actor, actor))
    if since is not None:
        query = query.where(Event.created_at >= datetime.combine(since, time(), tzinfo=timezone.utc))
    if until is not None:
        end = datetime.combine(until + timedelta(days=1), time(), tzinfo=timezone.utc)
        query = query.where(Event.created_at < end)
    if cursor:
        (seq,) = decode_cursor(cursor, types=(int,))
        query = query.where(Event.seq < seq)
    rows = list(session.execute(query.order_by(Event.seq.desc()).limit(limit + 1)).scalars())
    next_cursor = encode_cursor(rows[limit - 1].seq) if len(rows) > limit else None
    return AuditPage(events=rows[:limit], next_cursor=next_cursor)
