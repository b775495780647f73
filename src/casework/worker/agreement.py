"""Refreshing a project's agreement as a job kind: first its day tallies (the days changed since they were
counted are claimed in a short write transaction, counted in a read-only one and kept in a short write one:
casework.services.agreement_days says why in three), then its stored reports, each computed in a read-only
transaction (without holding SQLite's write lock) and stored in a short write one, kept only when newer than
what another process stored meanwhile."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from casework.services import agreement_days, agreement_reports
from casework.services.jobs import ClaimedJob
from casework.worker.kinds import JobKind

RunInTransaction = Callable[..., Awaitable[Any]]


def agreement_kind(db: RunInTransaction) -> JobKind:
    """``db(function, write=...)`` runs ``function(session)`` in a transaction (the worker's ``db``)."""

    async def refresh(job: ClaimedJob) -> None:
        if job.project_id is None:
            return
        claimed = await db(agreement_days.claim, write=True, project_id=job.project_id)
        if claimed:
            counted = await db(
                agreement_days.count_claimed, write=False, project_id=job.project_id, claimed=claimed
            )
            await db(agreement_days.keep, write=True, project_id=job.project_id, counted=counted)
        scopes = await db(agreement_reports.to_refresh, write=False, project_id=job.project_id)
        for scope in scopes:
            computed = await db(
                agreement_reports.refresh_scope, write=False, project_id=job.project_id, scope=scope
            )
            await db(
                agreement_reports.store,
                write=True,
                project_id=job.project_id,
                scope=scope,
                computed=computed,
                requested=False,
            )

    return JobKind(agreement_reports.REFRESH, refresh, retry_delays=(5.0, 30.0))
