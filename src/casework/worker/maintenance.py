"""Maintenance as a scheduled job kind: each tick, one worker forgets webhook secrets past their day, gives a
sender to any endpoint whose deliveries were left without one, and deletes finished jobs older than the
retention (casework.services.jobs.prune_finished), a batch per transaction, so the job table holds what is
running and what happened lately, not everything ever done."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from casework.db.types import utcnow
from casework.services import jobs
from casework.services import webhooks as webhook_service
from casework.services.jobs import ClaimedJob
from casework.worker.kinds import JobKind, Schedule

MAINTENANCE = "maintenance"
EVERY_SECONDS = 600.0

RunInTransaction = Callable[..., Awaitable[Any]]


def maintenance_kind(db: RunInTransaction, *, retention_days: float) -> JobKind:
    """``db(function, write=True, **kwargs)`` runs ``function(session, **kwargs)`` in a transaction (the
    worker's ``db``); ``retention_days`` 0 keeps every finished job."""

    async def maintain(_job: ClaimedJob) -> None:
        await db(webhook_service.forget_expired_secrets, write=True)
        await db(webhook_service.wake_stranded_senders, write=True)
        if retention_days > 0:
            before = utcnow() - timedelta(days=retention_days)
            while await db(jobs.prune_finished, write=True, finished_before=before) >= jobs.PRUNE_BATCH:
                pass

    return JobKind(MAINTENANCE, maintain)


def maintenance_schedule(every_seconds: float = EVERY_SECONDS) -> Schedule:
    return Schedule(MAINTENANCE, every_seconds=every_seconds)
