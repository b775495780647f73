"""The SLA sweep as a scheduled job kind: each tick, one worker (whichever queued the tick's job) pauses and
resumes clocks, announces reviews due soon and overdue, and checks the queue thresholds (casework.services.sla_sweep).
Each step is its own transaction, and the announcements go a batch per transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from casework.services import sla_sweep
from casework.services.jobs import ClaimedJob
from casework.worker.kinds import JobKind, Schedule

RunInTransaction = Callable[..., Awaitable[Any]]


def sla_kind(db: RunInTransaction) -> JobKind:
    """``db(function, write=True)`` runs ``function(session)`` in a transaction (the worker's ``db``)."""

    async def sweep(_job: ClaimedJob) -> None:
        await db(sla_sweep.pause_and_resume, write=True)
        while await db(sla_sweep.announce_overdue, write=True) >= sla_sweep.BATCH:
            pass
        while await db(sla_sweep.announce_due_soon, write=True) >= sla_sweep.BATCH:
            pass
        await db(sla_sweep.check_thresholds, write=True)

    return JobKind(sla_sweep.SWEEP, sweep, retry_delays=(5.0,))


def sla_schedule(every_seconds: float) -> Schedule:
    return Schedule(sla_sweep.SWEEP, every_seconds=every_seconds)
