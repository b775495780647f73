"""Refreshing the stored agreement reports of a project as a job kind: each report is computed in a read-only
transaction (seconds at 100,000 reviews, without holding SQLite's write lock) and stored in a short write one,
kept only when newer than what another process stored meanwhile."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from casework.services import agreement_reports
from casework.services.jobs import ClaimedJob
from casework.worker.kinds import JobKind

RunInTransaction = Callable[..., Awaitable[Any]]


def agreement_kind(db: RunInTransaction) -> JobKind:
    """``db(function, write=...)`` runs ``function(session)`` in a transaction (the worker's ``db``)."""

    async def refresh(job: ClaimedJob) -> None:
        if job.project_id is None:
            return
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
