"""Moving subscribers along the event log: each one in a transaction of its own, so one that fails neither
blocks the others nor loses its place; it is retried with backoff from where it stopped."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.db.dialect import insert_ignoring_conflict
from casework.db.models import Event, SubscriberPosition
from casework.db.types import utcnow
from casework.services import events
from casework.subscribers import Subscriber

BATCH = 500
MAX_RETRY_SECONDS = 300.0


def behind(session: Session, names: list[str], *, retrying_before: datetime | None = None) -> list[str]:
    """Which of the subscribers ``names`` have final events left to read, and are not waiting out a failure
    past ``retrying_before`` (default: now) (a read: an idle worker takes no write lock to find out)."""
    end = events.end_of_log(session)
    positions = {
        row.name: row
        for row in session.execute(
            select(SubscriberPosition).where(SubscriberPosition.name.in_(names))
        ).scalars()
    }
    until = retrying_before or utcnow()
    due = []
    for name in names:
        position = positions.get(name)
        if position is None:
            due.append(name)  # starts at the end of the log: it is set up on its first dispatch
        elif (position.retry_at is None or position.retry_at <= until) and position.position < end:
            due.append(name)
    return due


def dispatch(session: Session, *, subscriber: Subscriber, batch: int = BATCH) -> int:
    """Hand the subscriber its next events and move its position past them, in this one transaction.
    Returns how many events were read (0: it is up to date, or another worker is serving it right now)."""
    position = session.execute(
        select(SubscriberPosition)
        .where(SubscriberPosition.name == subscriber.name)
        .with_for_update(skip_locked=True)
    ).scalar_one_or_none()
    if position is None:
        # A new subscriber starts at the end of the log: it reacts to what happens from now on.
        insert_ignoring_conflict(
            session,
            SubscriberPosition,
            {
                "name": subscriber.name,
                "position": events.end_of_log(session),
                "failures": 0,
                "updated_at": utcnow(),
            },
            conflict_columns=["name"],
        )
        return 0
    if position.retry_at is not None and position.retry_at > utcnow():
        return 0
    read = events.read_after(session, position=position.position, limit=batch)
    if not read:
        return 0
    wanted = [e for e in read if subscriber.types is None or e.type in subscriber.types]
    if wanted:
        subscriber.handle(session, wanted)
    last: Event = read[-1]
    assert last.position is not None
    position.position = last.position
    position.failures = 0
    position.retry_at = None
    position.last_error = None
    position.updated_at = utcnow()
    return len(read)


def record_failure(session: Session, *, name: str, error: str) -> None:
    """The subscriber failed on its next batch: try again later, from the same place."""
    position = session.get(SubscriberPosition, name)
    if position is None:
        return
    position.failures += 1
    delay = min(2.0**position.failures, MAX_RETRY_SECONDS)
    position.retry_at = utcnow() + timedelta(seconds=delay)
    position.last_error = error[:4000]
    position.updated_at = utcnow()
