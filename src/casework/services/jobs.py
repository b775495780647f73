"""The durable job queue: evaluation jobs (one per interaction and evaluator) and memory passes.

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
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from casework.db.models import Job, Project, Span
from casework.db.types import utcnow
from casework.errors import JobNotFound
from casework.evaluators.judge import Interaction
from casework.ids import new_id
from casework.services.auth import Principal
from casework.services.pagination import newest_first
from casework.services.projects import get_project
from casework.tracing.openinference import interaction_of

STATUSES = ("queued", "running", "done", "failed")
MAX_BACKOFF_SECONDS = 300


@dataclass(frozen=True)
class ClaimedJob:
    id: str
    token: str
    kind: str
    attempts: int
    project_id: str
    workspace_id: str
    run_id: str | None
    evaluator_type: str | None
    payload: dict[str, Any]
    # For evaluation jobs: the interaction and where it came from.
    interaction: Interaction | None = None
    trace_id: str | None = None
    span_id: str | None = None


def queue_memory_pass(session: Session, *, project_id: str, control_id: str) -> Job:
    """A pass of a new control over the pending reviews it may settle; queued with the control, so it runs
    even if the process that accepted the feedback stops."""
    job = Job(
        id=new_id("job"),
        kind="memory_pass",
        project_id=project_id,
        payload={"control_ids": [control_id]},
        status="queued",
        attempts=0,
        available_at=utcnow(),
    )
    session.add(job)
    return job


def any_due(session: Session) -> bool:
    """Whether any job is due: a read, so an idle worker does not take the write lock at every poll."""
    due = select(Job.id).where(Job.status.in_(("queued", "running")), Job.available_at <= utcnow()).limit(1)
    return session.execute(due).first() is not None


def claim_jobs(
    session: Session, *, worker: str, limit: int, lease_seconds: float, max_attempts: int
) -> list[ClaimedJob]:
    """Up to ``limit`` jobs that are due, leased to ``worker`` for ``lease_seconds``."""
    now = utcnow()
    candidates = session.execute(
        select(Job.id, Job.status, Job.attempts)
        .where(Job.status.in_(("queued", "running")), Job.available_at <= now)
        .order_by(Job.available_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    # A job whose lease ran out max_attempts times is a job that kills its workers: stop handing it out.
    lost = [row.id for row in candidates if row.status == "running" and row.attempts >= max_attempts]
    if lost:
        session.execute(
            update(Job)
            .where(Job.id.in_(lost))
            .values(
                status="failed",
                finished_at=now,
                lease_token=None,
                last_error=f"its worker stopped before finishing, {max_attempts} times (lease expired)",
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
        .join(Project, Project.id == Job.project_id)
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
    job = session.execute(select(Job).where(Job.id == job_id).with_for_update()).scalar_one_or_none()
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


def fail_job(
    session: Session, *, claimed: ClaimedJob, error: str, max_attempts: int, retryable: bool = True
) -> str | None:
    """Retry later with exponential backoff, or park the job as ``failed`` with its last error."""
    job = held(session, claimed.id, claimed.token)
    if job is None:
        return None
    job.last_error = error[:4000]
    job.lease_token = None
    if retryable and job.attempts < max_attempts:
        job.status = "queued"
        job.available_at = utcnow() + timedelta(seconds=min(2**job.attempts, MAX_BACKOFF_SECONDS))
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


def pending_jobs(session: Session) -> int:
    """Jobs not yet finished, in every project (for the worker's idle check and metrics)."""
    return session.execute(select(func.count()).where(Job.status.in_(("queued", "running")))).scalar_one()
