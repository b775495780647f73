"""The event log's order: events are written with ``seq`` and read by ``position``, given by a sequencer.

Why not read by ``seq``: on PostgreSQL many transactions write at once, and a ``seq`` taken early can commit
late; a reader that had passed it would never see it. PostgreSQL's transaction-id horizon would tell which
events are final, but it is shared by every database of the server: one long transaction anywhere would stall
every webhook here. So instead a single sequencer at a time (an advisory lock; on SQLite the one writer) gives
the committed events that have none the next positions, in ``seq`` order. An event that commits late is simply
sequenced later, after everything a reader has seen: positions have no gaps and never go back.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import Session

from casework.db.models import Event

# Any fixed number, distinct from the migration lock's.
_SEQUENCER_LOCK_ID = 7_336_402


def insert_event(session: Session, values: dict[str, Any]) -> None:
    """Write one event row in the session's transaction (unsequenced)."""
    session.execute(insert(Event), values)


def unsequenced(session: Session) -> bool:
    """Whether any committed event waits for a position (a read)."""
    return session.execute(select(Event.seq).where(Event.position.is_(None)).limit(1)).first() is not None


def sequence(session: Session, *, limit: int = 5000) -> int:
    """Give the next positions to up to ``limit`` committed events that have none, oldest ``seq`` first.
    Returns how many. Sequencers take turns, so two never hand out the same position."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _SEQUENCER_LOCK_ID})
    waiting = list(
        session.execute(
            select(Event.seq).where(Event.position.is_(None)).order_by(Event.seq).limit(limit)
        ).scalars()
    )
    if not waiting:
        return 0
    last = int(session.execute(select(func.max(Event.position))).scalar_one() or 0)
    session.execute(
        update(Event),
        [{"seq": seq, "position": last + number} for number, seq in enumerate(waiting, 1)],
    )
    return len(waiting)
