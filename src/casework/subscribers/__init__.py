"""What reacts to events: each subscriber reads the event log past its own position, at least once.

A subscriber's ``handle`` runs in the same transaction that moves its position, and only writes to the database
(queues jobs, creates deliveries), so its effect happens exactly once even when a batch is read twice. Slow
work (a judge call, an HTTP request) goes into a job, which the worker runs with retries. Adding a subscriber
touches no service or router: list it in :func:`builtin_subscribers`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from casework.db.models import Event


@dataclass(frozen=True)
class Subscriber:
    name: str
    handle: Callable[[Session, list[Event]], None]
    # The event types it wants (None: all); the others only move its position.
    types: frozenset[str] | None = None


def builtin_subscribers() -> list[Subscriber]:
    from casework.subscribers import agreement, integrations, memory_pass, webhooks

    return [
        memory_pass.SUBSCRIBER,
        memory_pass.EVIDENCE,
        memory_pass.PROVENANCE,
        webhooks.SUBSCRIBER,
        integrations.SUBSCRIBER,
        agreement.SUBSCRIBER,
    ]
