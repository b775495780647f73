"""The durable job queue: every kind of background work (casework.worker.kinds says what each kind does).

Workers claim jobs with a lease: ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so many workers on many
machines share one queue without waiting on each other; on SQLite the same statement runs inside the one
writer's ``BEGIN IMMEDIATE``. ``available_at`` is when a queued job may run and, once claimed, when its lease
runs out: a job whose worker died is simply claimable again. A result is stored only by the worker that holds
the lease, in the same transaction that marks the job done, and evaluations are unique per job, so a job run
twice (a worker paused past its lease) still leaves one evaluation and at most one review.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from casework.db.dialect import insert_ignoring_conflict
from casework.db.engine import mark_for_wake
from casework.db.models import Job, Project, Span
from casework.db.types import utcnow
from casework.definitions import Interaction
from casework.errors import JobNotFound
from casework.ids import new_id
from casework.services.auth import Principal
from casework.services.pagination import newest_first
from casework.services.projects import get_project
from casework.tracing.openinference import interaction_of

STATUSES = ("queued", "running", "done", "failed")


@dataclass(frozen=True)
class ClaimedJob:
    id: str
    token: str
    kind: str
    attempts: int
    project_id: str | None
    workspace_id: str | None
    run_id: str | None
    evaluator_type: str | None
    payload: dict[str, Any]
    # For evaluation jobs: the interaction and where it came from.
    interaction: Interaction | None = None
    trace_id: str | None = None
    span_id: str | None = None


def queue_job(
    session: Session,
    *,
    kind: str,
    project_id: str | None = None,
    payload: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
    available_at: datetime | None = None,
    job_id: str | None = None,
) -> bool:
    """Queue a job in the caller's transaction; False when ``dedupe_key`` names one that already exists."""
    values = {
        "id": job_id or new_id("job"),
        "kind": kind,
        "project_id": project_id,
        "payload": payload or {},
        "status": "queued",
        "attempts": 0,
        "available_at": available_at or utcnow(),
        "dedupe_key": dedupe_key,
        "created_at": utcnow(),
    }
    if dedupe_key is None:
        session.add(Job(**values))
        queued = True
    else:
        queued = insert_ignoring_conflict(session, Job, values, conflict_columns=["dedupe_key"])
    if queued:
        mark_for_wake(session)
    return queued


def queue_jobs(session: Session, *, kind: str, items: Sequence[tuple[str | None, dict[str, Any]]]) -> None:
    """Queue many jobs of one kind in the caller's transaction, in one statement: ``items`` are (project id,
    payload) pairs. No dedupe keys: for work the caller made sure is new (the deliveries it just created)."""
    if not items:
        return
    now = utcnow()
    session.execute(
        insert(Job),
        [
            {
                "id": new_id("job"),
                "kind": kind,
                "project_id": project_id,
                "payload": payload,
                "status": "queued",
                "attempts": 0,
                "available_at": now,
                "dedupe_key": None,
                "created_at": now,
            }
            for project_id, payload in items
        ],
    )
    mark_for_wake(session)


def queue_tick(session: Session, *, kind: str, tick: float) -> bool:
    """The job of one tick of a scheduled kind (``tick``: its start, in seconds since the epoch): queued once,
    whichever worker asks first."""
    return queue_job(
        session,
        kind=kind,
        payload={"tick": tick},
        dedupe_key=f"tick:{kind}:{int(tick)}",
        available_at=datetime.fromtimestamp(tick, timezone.utc),
    )


def due_kinds(session: Session) -> set[str]:
    """The kinds of job that are due: a read, so an idle worker does not take the write lock at every poll."""
    due = (
        select(Job.kind)
        .where(Job.status.in_(("queued", "running")), Job.available_at <= utcnow())
        .group_by(Job.kind)
    )
    return set(session.execute(due).scalars())


def claim_jobs(
    session: Session,
    *,
    worker: str,
    kinds: Sequence[str],
    limit: int,
    lease_seconds: float,
    max_attempts: dict[str, int],
) -> list[ClaimedJob]:
    """Up to ``limit`` jobs of ``kinds`` that are due, leased to ``worker`` for ``lease_seconds``.
    ``max_attempts`` gives each kind's limit."""
    now = utcnow()
    candidates = session.execute(
        select(Job.id, Job.kind, Job.status, Job.attempts)
        .where(Job.status.in_(("queued", "running")), Job.available_at <= now, Job.kind.in_(list(kinds)))
        .order_by(Job.available_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    # A job whose lease ran out max_attempts times is a job that kills its workers: stop handing it out.
    lost = [
        row.id
        for row in candidates
        if row.status == "running" and row.attempts >= max_attempts.get(row.kind, 1)
    ]
    if lost:
        session.execute(
            update(Job)
            .where(Job.id.in_(lost))
            .values(
                status="failed",
                finished_at=now,
                lease_token=None,
                last_error="its worker stopped before finishing, every attempt (lease expired)",
            )
        )
    ids = [row.id for row in candidates if row.id not in set(lost)]
    if not ids:
        return []
    token = secrets.token_hex(16)
    session.execute(
        update(Job)
        .where(Job.id.in_(ids))
        .values(
            status="running",
            attempts=Job.attempts + 1,
            available_at=now + timedelta(seconds=lease_seconds),
            lease_token=token,
            leased_by=worker[:200],
        )
    )
    rows = session.execute(
        select(Job, Project.workspace_id, Span)
        .outerjoin(Project, Project.id == Job.project_id)
        .outerjoin(Span, Span.id == Job.span_id)
        .where(Job.id.in_(ids))
        .order_by(Job.available_at, Job.id)
    ).all()
    claimed = []
    for job, workspace_id, span in rows:
        claimed.append(
            ClaimedJob(
                id=job.id,
                token=token,
                kind=job.kind,
                attempts=job.attempts,
                project_id=job.project_id,
                workspace_id=workspace_id,
                run_id=job.run_id,
                evaluator_type=job.evaluator_type,
                payload=dict(job.payload),
                interaction=interaction_of(span.attributes) if span is not None else None,
                trace_id=span.trace_id if span is not None else None,
                span_id=span.span_id if span is not None else None,
            )
        )
    return claimed


def extend_leases(session: Session, *, jobs: Sequence[tuple[str, str]], lease_seconds: float) -> int:
    """Keep the leases of jobs still in progress (``(job_id, token)`` pairs); returns how many were kept."""
    if not jobs:
        return 0
    until = utcnow() + timedelta(seconds=lease_seconds)
    kept = 0
    for token in {token for _, token in jobs}:
        ids = [job_id for job_id, t in jobs if t == token]
        kept += session.execute(
            update(Job)
            .where(Job.id.in_(ids), Job.lease_token == token, Job.status == "running")
            .values(available_at=until)
        ).rowcount  # type: ignore[attr-defined]
    return kept


def held(session: Session, job_id: str, token: str) -> Job | None:
    """The job, locked, if this claim still holds it; None if its lease was lost (another worker has it)."""
    job = session.execute(
        select(Job).where(Job.id == job_id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if job is None or job.status != "running" or job.lease_token != token:
        return None
    return job


def finish_job(session: Session, *, claimed: ClaimedJob) -> bool:
    job = held(session, claimed.id, claimed.token)
    if job is None:
        return False
    job.status = "done"
    job.finished_at = utcnow()
    job.last_error = None
    return True


def fail_job(session: Session, *, claimed: ClaimedJob, error: str, retry_after: float | None) -> str | None:
    """Retry after ``retry_after`` seconds, or (None) park the job as ``failed`` with its last error."""
    job = held(session, claimed.id, claimed.token)
    if job is None:
        return None
    job.last_error = error[:4000]
    job.lease_token = None
    if retry_after is not None:
        job.status = "queued"
        job.available_at = utcnow() + timedelta(seconds=retry_after)
    else:
        job.status = "failed"
        job.finished_at = utcnow()
    return job.status


# --- reading -------------------------------------------------------------------------------------------------


@dataclass
class JobPage:
    jobs: list[Job]
    next_cursor: str | None


def list_jobs(
    session: Session,
    *,
    principal: Principal,
    project_id: str,
    status: str | None = None,
    run_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> JobPage:
    """Newest first."""
    get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    query = select(Job).where(Job.project_id == project_id)
    if status:
        query = query.where(Job.status == status)
    if run_id:
        query = query.where(Job.run_id == run_id)
    rows, next_cursor = newest_first(session, query, (Job.created_at, Job.id), limit=limit, cursor=cursor)
    return JobPage(jobs=rows, next_cursor=next_cursor)


def get_job(session: Session, *, principal: Principal, job_id: str) -> Job:
    job = session.execute(
        select(Job)
        .join(Project, Project.id == Job.project_id)
        .where(Job.id == job_id, Project.workspace_id == principal.workspace_id)
    ).scalar_one_or_none()
    if job is None:
        raise JobNotFound(f"No job {job_id} in this workspace.", details={"job_id": job_id})
    return job


def count_jobs(
    session: Session, *, principal: Principal, project_id: str, run_id: str | None = None
) -> dict[str, int]:
    """How many jobs are in each status: ``queued + running == 0`` means everything sent so far is evaluated."""
    get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    query = select(Job.status, func.count()).where(Job.project_id == project_id)
    if run_id:
        query = query.where(Job.run_id == run_id)
    counts = dict.fromkeys(STATUSES, 0)
    for status, count in session.execute(query.group_by(Job.status)).all():
        counts[status] = count
    return counts


# How many finished jobs one transaction deletes: on SQLite the delete holds the one write lock meanwhile.
PRUNE_BATCH = 5_000


def prune_finished(session: Session, *, finished_before: datetime, limit: int = PRUNE_BATCH) -> int:
    """Delete up to ``limit`` jobs that finished well before ``finished_before``: the operational ones (webhook
    and integration deliveries, scheduled ticks, memory passes, refreshes), whose results live elsewhere (the
    deliveries' own records, the events, the reviews). Evaluation jobs (of a span or a run) are kept with what
    they evaluated: a span's job is what keeps the same interaction from being evaluated twice, and a run's
    jobs are what its progress counts. Failed jobs are kept for an operator to read. Returns how many went."""
    doomed = (
        select(Job.id)
        .where(
            Job.status == "done",
            Job.span_id.is_(None),
            Job.run_id.is_(None),
            Job.finished_at < finished_before,
        )
        .order_by(Job.finished_at)
        .limit(limit)
    )
    ids = list(session.execute(doomed).scalars())
    if ids:
        session.execute(delete(Job).where(Job.id.in_(ids)))
    return len(ids)


def pending_jobs(session: Session) -> int:
    """Jobs not yet finished, in every project (for the worker's idle check and metrics)."""
    return session.execute(select(func.count()).where(Job.status.in_(("queued", "running")))).scalar_one()
