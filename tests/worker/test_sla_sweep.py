"""The SLA sweep as a scheduled job: three workers trying the same tick run it once, and announce once."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from anyio import CapacityLimiter
from sqlalchemy import select

from casework.db.engine import Database
from casework.db.models import Event, Job
from casework.events import EventType
from casework.worker.kinds import Registry
from casework.worker.loop import Worker
from casework.worker.sla import sla_kind, sla_schedule
from tests.support import Clock, enqueue, make_project, run_async, wait_for

pytestmark = pytest.mark.storage

# An odd period, so that this test's tick is not the server's own (every 60 s) tick of the same kind.
PERIOD = 3601.0


def make_worker(database: Database, name: str) -> Worker:
    limiter = CapacityLimiter(4)
    registry = Registry(lanes={"default": 2})
    worker = Worker(registry, database, limiter=lambda: limiter, name=name)
    registry.add(sla_kind(worker.db)).schedule(sla_schedule(PERIOD))
    return worker


def test_three_workers_sweep_a_tick_once(admin: httpx.Client, database: Database, clock: Clock) -> None:
    project_id = make_project(admin)
    admin.put(f"/api/v1/projects/{project_id}/sla", json={"target_hours": 1}).raise_for_status()
    review = enqueue(admin, project_id)
    clock.advance(hours=2)
    workers = [make_worker(database, f"w{i}") for i in range(3)]

    async def together() -> list[int]:
        return list(await asyncio.gather(*(w.run_once() for w in workers)))

    run_async(together)
    now = clock.now().timestamp()
    key = f"tick:sla.sweep:{int(now - now % PERIOD)}"

    def swept() -> list[Job]:
        with database.transaction(write=False) as session:
            return list(session.execute(select(Job).where(Job.dedupe_key == key)).scalars())

    jobs = wait_for(lambda: [j for j in swept() if j.status == "done"] or None)
    assert len(jobs) == len(swept()) == 1
    with database.transaction(write=False) as session:
        overdue = list(
            session.execute(
                select(Event.object_id).where(
                    Event.project_id == project_id, Event.type == EventType.review_overdue.value
                )
            ).scalars()
        )
    assert overdue == [review["id"]]
