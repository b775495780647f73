"""Workers in other processes hear of new work at once on PostgreSQL (LISTEN/NOTIFY), not at their next poll.

Two Database objects on one database stand for two processes: each has its own engine and connections, and the
notification crosses between them only through PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from anyio import CapacityLimiter
from sqlalchemy import text

from casework.db.engine import Database, mark_for_wake
from casework.services.jobs import ClaimedJob, queue_job
from casework.worker.kinds import JobKind, Registry
from casework.worker.loop import Worker
from tests.support import wait_for

pytestmark = [pytest.mark.storage, pytest.mark.only_backend("postgresql")]

# Far longer than any wait below: only a notification can make the work happen in time.
POLL_SECONDS = 600.0


@pytest.fixture
def elsewhere(database_url: str, database: Database) -> Iterator[Database]:
    """The same database, opened as another process would."""
    other = Database.from_url(database_url)
    try:
        yield other
    finally:
        other.dispose()


def test_a_commit_that_queues_work_wakes_a_listener_in_another_process_and_survives_a_lost_connection(
    database: Database, elsewhere: Database
) -> None:
    heard: list[int] = []
    remove = elsewhere.on_new_work(lambda: heard.append(1))
    try:
        listener = elsewhere.listener
        assert listener is not None
        wait_for(listener.listening.is_set, message="the listener never connected")

        def commit_new_work() -> None:
            with database.transaction() as session:
                mark_for_wake(session)

        before = len(heard)
        commit_new_work()
        wait_for(lambda: len(heard) > before, timeout=10, message="the other process was not told")
        # Its own commits it hears from the committing thread only, once each (not again through PostgreSQL).
        mine: list[int] = []
        stop_mine = database.on_new_work(lambda: mine.append(1))
        assert database.listener is not None
        wait_for(database.listener.listening.is_set)
        commit_new_work()
        wait_for(lambda: len(heard) > before + 1, timeout=10, message="the other process was not told again")
        stop_mine()
        assert mine == [1]

        # Its connection is cut (a restart, a failover, a proxy's idle timeout): it listens again by itself.
        with database.transaction() as session:
            cut = session.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = :name"
                ),
                {"name": listener.application_name},
            ).all()
        assert len(cut) == 1
        wait_for(lambda: not listener.listening.is_set(), timeout=10, message="the cut went unnoticed")
        before = len(heard)
        wait_for(listener.listening.is_set, timeout=15, message="the listener did not come back")
        # Back, it looks once for what was committed meanwhile.
        wait_for(lambda: len(heard) > before, timeout=10, message="no look after reconnecting")
        before = len(heard)
        commit_new_work()
        wait_for(lambda: len(heard) > before, timeout=10, message="not told after reconnecting")
    finally:
        remove()
    assert elsewhere.listener is None  # the last listener gone, the connection is closed


def test_a_worker_in_another_process_runs_a_job_at_once_not_at_its_next_poll(
    database: Database, elsewhere: Database
) -> None:
    ran = threading.Event()

    async def ping(_job: ClaimedJob) -> None:
        ran.set()

    limiter = CapacityLimiter(2)
    registry = Registry(lanes={"default": 1}).add(JobKind("test.ping", ping))
    worker = Worker(registry, elsewhere, limiter=lambda: limiter, poll_seconds=POLL_SECONDS, name="far")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(),), daemon=True)
    thread.start()
    try:
        wait_for(lambda: elsewhere.listener is not None and elsewhere.listener.listening.is_set())
        wait_for(lambda: not worker.busy)  # its first look is over: it now waits for a wake-up or its poll
        with database.transaction() as session:
            assert queue_job(session, kind="test.ping", dedupe_key="ping")
        wait_for(ran.is_set, timeout=10, message="the job waited for the worker's poll")
    finally:
        asyncio.run_coroutine_threadsafe(worker.stop(), loop).result(timeout=30)
        thread.join(timeout=30)
        loop.close()
