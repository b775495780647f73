"""Moving subscribers along the event log: each one in a savepoint of its own, so one that fails neither
blocks the others nor loses its place; it is retried with backoff from where it stopped."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.db.dialect import insert_ignoring_conflict
from casework.db.models import Event, SubscriberPosition
from casework.db.types import utcnow
from casework.services import events
from casework.subscribers import Subscriber

logger = logging.getLogger("casework.worker")

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


def dispatch(session: Session, *, subscribers: Sequence[Subscriber], batch: int = BATCH) -> int:
    """Hand each of ``subscribers`` its next events and move its position past them, in this one transaction,
    each in a savepoint of its own: one that raises is rolled back alone and waits out a backoff
    (:func:`record_failure`) while the others move on. Subscribers at the same position (all of them, as a
    rule) share one read of the log, and the whole round costs one commit rather than one per subscriber.

    Returns the most events any one subscriber read (0: all are up to date, or other workers serve them now).
    """
    by_name = {subscriber.name: subscriber for subscriber in subscribers}
    positions = list(
        session.execute(
            select(SubscriberPosition)
            .where(SubscriberPosition.name.in_(list(by_name)))
            .order_by(SubscriberPosition.name)
            .with_for_update(skip_locked=True)
        ).scalars()
    )
    known = {position.name for position in positions}
    for name in sorted(set(by_name) - known):
        # A new subscriber starts at the end of the log: it reacts to what happens from now on. (One that
        # another worker holds locked is also missing here; inserting it again is then a no-op.)
        insert_ignoring_conflict(
            session,
            SubscriberPosition,
            {"name": name, "position": events.end_of_log(session), "failures": 0, "updated_at": utcnow()},
            conflict_columns=["name"],
        )
    now = utcnow()
    ready = [p for p in positions if p.retry_at is None or p.retry_at <= now]
    reads: dict[int, list[Event]] = {}
    most = 0
    for position in ready:
        if position.position not in reads:
            reads[position.position] = events.read_after(session, position=position.position, limit=batch)
        read = reads[position.position]
        if not read:
            continue
        subscriber = by_name[position.name]
        wanted = [e for e in read if subscriber.types is None or e.type in subscriber.types]
        try:
            if wanted:
                with session.begin_nested():
                    subscriber.handle(session, wanted)
        except Exception as exc:
            logger.exception("subscriber %s failed; it will retry from where it stopped", subscriber.name)
            _failed(position, f"{type(exc).__name__}: {exc}")
            continue
        last = read[-1]
        assert last.position is not None
        position.position = last.position
        position.failures = 0
        position.retry_at = None
        position.last_error = None
        position.updated_at = utcnow()
        most = max(most, len(read))
    return most


def _failed(position: SubscriberPosition, error: str) -> None:
    position.failures += 1
    delay = min(2.0**position.failures, MAX_RETRY_SECONDS)
    position.retry_at = utcnow() + timedelta(seconds=delay)
    position.last_error = error[:4000]
    position.updated_at = utcnow()
