"""The worker's seams, driven with ``run_once``: the job-kind registry, scheduled ticks shared by many
workers, subscribers that fail alone, and the one wake-up after a commit."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import pytest
from anyio import CapacityLimiter
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from casework.db.engine import Database
from casework.db.models import Event, Job, Project, Run, SubscriberPosition
from casework.db.types import utcnow
from casework.events import EventType
from casework.ids import new_id
from casework.services import events
from casework.services.jobs import ClaimedJob, prune_finished, queue_job
from casework.services.workspaces import get_or_create_workspace
from casework.subscribers import Subscriber
from casework.worker.kinds import GiveUp, JobKind, Registry, Retry, Schedule
from casework.worker.loop import Worker
from casework.worker.maintenance import maintenance_kind, maintenance_schedule
from tests.support import run_async

pytestmark = pytest.mark.storage


@pytest.fixture
def workspace_id(database: Database) -> str:
    with database.transaction() as session:
        workspace, _ = get_or_create_workspace(session, name="loop")
        return workspace.id


def make_worker(
    database: Database, registry: Registry, subscribers: list[Subscriber] | None = None
) -> Worker:
    limiter = CapacityLimiter(4)
    return Worker(registry, database, limiter=lambda: limiter, subscribers=subscribers or [], name="w")


def emit(database: Database, workspace_id: str, count: int) -> None:
    with database.transaction() as session:
        for i in range(count):
            events.emit(
                session,
                EventType.webhook_test,
                workspace_id=workspace_id,
                project_id=None,
                actor="test",
                object_type="thing",
                object_id=f"t{i}",
                data={"n": i},
            )


def test_a_scheduled_tick_runs_once_however_many_workers_try(database: Database) -> None:
    ran: list[float] = []

    async def tick(job: ClaimedJob) -> None:
        ran.append(job.payload["tick"])

    def registry() -> Registry:
        return Registry(lanes={"default": 2}).add(JobKind("sweep", tick)).schedule(Schedule("sweep", 3600))

    workers = [make_worker(database, registry()) for _ in range(3)]

    async def together() -> list[int]:
        return list(await asyncio.gather(*(w.run_once() for w in workers)))

    assert sum(run_async(together)) == 1
    assert len(ran) == 1
    with database.transaction(write=False) as session:
        [job] = session.execute(select(Job).where(Job.kind == "sweep")).scalars()
        assert (job.status, job.dedupe_key.startswith("tick:sweep:")) == ("done", True)


def test_job_kinds_retry_on_their_own_schedule_and_give_up_for_good(
    database: Database, workspace_id: str
) -> None:
    calls: list[str] = []

    async def flaky(job: ClaimedJob) -> None:
        calls.append("flaky")
        if job.attempts < 2:
            raise Retry("not yet", after=0)

    async def hopeless(job: ClaimedJob) -> None:
        calls.append("hopeless")
        raise GiveUp("never")

    registry = Registry(lanes={"default": 2}).add(
        JobKind("flaky", flaky, retry_delays=(0, 0)), JobKind("hopeless", hopeless)
    )
    worker = make_worker(database, registry)
    with database.transaction() as session:
        for kind in ("flaky", "hopeless", "unknown"):
            queue_job(session, kind=kind)
        queue_job(session, kind="unknown")
    run_async(worker.run_once)
    with database.transaction(write=False) as session:
        jobs = {job.kind: job for job in session.execute(select(Job)).scalars()}
    assert calls.count("flaky") == 2 and calls.count("hopeless") == 1
    assert (jobs["flaky"].status, jobs["flaky"].attempts) == ("done", 2)
    assert (jobs["hopeless"].status, jobs["hopeless"].last_error) == ("failed", "never")
    # A job of a kind this worker does not know is left for a worker that does.
    assert jobs["unknown"].status == "queued"


def test_a_failing_subscriber_blocks_no_other_and_resumes_where_it_stopped(
    database: Database, workspace_id: str
) -> None:
    seen: dict[str, list[str]] = {"steady": [], "fragile": []}
    failing = [True]

    def steady(session: object, batch: list[Event]) -> None:
        seen["steady"].extend(e.object_id for e in batch)

    def fragile(session: Session, batch: list[Event]) -> None:
        if failing[0]:
            queue_job(session, kind="half-done")  # written, then the failure: it must not stay
            raise RuntimeError("the integration's database row is locked")
        seen["fragile"].extend(e.object_id for e in batch)

    subscribers = [Subscriber("fragile", fragile), Subscriber("steady", steady)]
    worker = make_worker(database, Registry(lanes={"default": 1}), subscribers)
    run_async(worker.run_once)  # new subscribers start at the end of the log
    emit(database, workspace_id, 3)
    run_async(worker.run_once)
    assert seen == {"steady": ["t0", "t1", "t2"], "fragile": []}
    with database.transaction() as session:
        position = session.get_one(SubscriberPosition, "fragile")
        assert position.failures == 1 and "locked" in (position.last_error or "")
        assert position.retry_at is not None and position.retry_at > utcnow()
        assert session.execute(select(Job).where(Job.kind == "half-done")).first() is None
        session.execute(
            update(SubscriberPosition)
            .values(retry_at=utcnow() - timedelta(seconds=1))
            .where(SubscriberPosition.name == "fragile")
        )
    failing[0] = False
    emit(database, workspace_id, 1)
    run_async(worker.run_once)
    assert seen == {"steady": ["t0", "t1", "t2", "t0"], "fragile": ["t0", "t1", "t2", "t0"]}


def test_the_worker_is_woken_by_commits_that_queue_work_and_only_by_them(
    database: Database, workspace_id: str
) -> None:
    woken: list[int] = []
    stop = database.on_new_work(lambda: woken.append(1))
    try:
        with database.transaction() as session:
            session.execute(select(Job.id).limit(1))
        assert woken == []
        with pytest.raises(RuntimeError), database.transaction() as session:
            queue_job(session, kind="x")
            raise RuntimeError("rolled back")
        assert woken == []
        with database.transaction() as session:
            queue_job(session, kind="x")
        assert woken == [1]
        emit(database, workspace_id, 1)
        assert woken == [1, 1]
    finally:
        stop()


def test_a_full_lane_takes_its_next_jobs_as_slots_free_not_at_the_next_poll(database: Database) -> None:
    """Forty jobs queued at once in a lane of two slots: each freed slot takes the next job at once. Waiting
    for the next wake-up or poll instead (an hour here) would leave 38 of them queued."""
    done: list[str] = []

    async def quick(job: ClaimedJob) -> None:
        done.append(job.id)

    registry = Registry(lanes={"default": 2, "other": 1}).add(JobKind("quick", quick))
    with database.transaction() as session:
        for _ in range(40):
            queue_job(session, kind="quick")

    async def serve() -> None:
        worker = Worker(registry, database, limiter=lambda: None, name="w", poll_seconds=3600)
        running = asyncio.get_running_loop().create_task(worker.run())
        try:
            for _ in range(3000):  # up to a minute, in steps of 20 ms
                if len(done) == 40:
                    break
                await asyncio.sleep(0.02)
        finally:
            await worker.stop()
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running

    run_async(serve)
    assert len(done) == 40


def test_maintenance_deletes_old_finished_jobs_and_keeps_evaluations_failures_and_recent_ones(
    database: Database, workspace_id: str
) -> None:
    now = utcnow()
    with database.transaction() as session:
        project = Project(id=new_id("prj"), workspace_id=workspace_id, name="maintained")
        session.add(project)
        session.flush()
        run = Run(id=new_id("run"), project_id=project.id, name="nightly")
        session.add(run)
        session.flush()

        def job(name: str, *, days_ago: float, status: str = "done", run_id: str | None = None) -> Job:
            finished = now - timedelta(days=days_ago)
            return Job(
                id=name, kind="webhook.deliver", project_id=project.id, run_id=run_id, status=status,
                available_at=finished, created_at=finished, finished_at=finished,
            )  # fmt: skip

        session.add_all(
            [
                job("old-1", days_ago=30),
                job("old-2", days_ago=9),
                job("old-3", days_ago=8),
                job("recent", days_ago=6),
                job("old-failed", days_ago=30, status="failed"),
                job("old-evaluation-of-a-run", days_ago=30, run_id=run.id),
            ]
        )

    def left() -> set[str]:
        with database.transaction(write=False) as session:
            return set(session.execute(select(Job.id).where(Job.project_id.is_not(None))).scalars())

    # A batch takes the oldest first.
    with database.transaction() as session:
        assert prune_finished(session, finished_before=now - timedelta(days=7), limit=2) == 2
    assert left() == {"old-3", "recent", "old-failed", "old-evaluation-of-a-run"}

    run_maintenance(database, retention_days=7)
    assert left() == {"recent", "old-failed", "old-evaluation-of-a-run"}


def test_a_retention_of_zero_keeps_every_finished_job(database: Database, workspace_id: str) -> None:
    with database.transaction() as session:
        long_ago = utcnow() - timedelta(days=400)
        session.add(Job(id="ancient", kind="webhook.deliver", status="done", finished_at=long_ago))
    run_maintenance(database, retention_days=0)
    with database.transaction(write=False) as session:
        assert session.get(Job, "ancient") is not None


def test_maintenance_is_a_scheduled_kind_of_every_worker() -> None:
    registry = Registry(lanes={"default": 1})
    registry.add(maintenance_kind(lambda *a, **k: None, retention_days=7)).schedule(maintenance_schedule())
    assert [(s.kind, s.every_seconds) for s in registry.schedules] == [("maintenance", 600.0)]


def run_maintenance(database: Database, *, retention_days: float) -> None:
    """The maintenance job's work, run as a worker runs it (not through a scheduled tick, which the test
    server's own worker could claim first)."""
    worker = make_worker(database, Registry(lanes={"default": 1}))
    kind = maintenance_kind(worker.db, retention_days=retention_days)
    job = ClaimedJob(
        id="maintenance", token="t", kind=kind.name, attempts=1, project_id=None, workspace_id=None,
        run_id=None, evaluator_type=None, payload={},
    )  # fmt: skip
    run_async(lambda: kind.run(job))
