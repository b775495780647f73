"""The worker: one home for background work. It moves event subscribers along the log, queues the ticks of
scheduled jobs, and claims and runs jobs of every registered kind, each lane up to its own number of slots.

It renews the leases of the jobs it holds; if it dies, its jobs become claimable again once their leases run
out. Runs inside ``casework serve`` and alone as ``casework worker``: any number of either share one
PostgreSQL. Commits that queue work in this process wake it at once (Database.on_new_work); work queued by
other processes is found within ``poll_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from typing import Any, TypeVar

from anyio import CapacityLimiter, to_thread

from casework.db import outbox
from casework.db.engine import Database
from casework.db.types import utcnow
from casework.services import jobs as job_service
from casework.subscribers import Subscriber
from casework.worker import dispatch
from casework.worker.kinds import GiveUp, Registry, Retry

logger = logging.getLogger("casework.worker")
T = TypeVar("T")

# Events that arrive together are handed to subscribers together: a short pause after a wake-up lets a burst
# (a bulk feedback of 1,000 items) become one dispatch instead of hundreds.
DISPATCH_COALESCE_SECONDS = 0.01
CLAIM_COALESCE_SECONDS = 0.01
SEQUENCE_BATCH = 5000


class Worker:
    def __init__(
        self,
        registry: Registry,
        database: Database,
        *,
        limiter: Callable[[], CapacityLimiter | None],
        subscribers: list[Subscriber] | None = None,
        lease_seconds: float = 60.0,
        max_attempts: int = 5,
        poll_seconds: float = 1.0,
        name: str | None = None,
        on_finished: Callable[[str, str], None] | None = None,
    ) -> None:
        self.registry = registry
        self.database = database
        self.subscribers = subscribers if subscribers is not None else []
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.poll_seconds = poll_seconds
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._limiter = limiter
        self._on_finished = on_finished or (lambda kind, outcome: None)
        self._running: dict[str, tuple[job_service.ClaimedJob, asyncio.Task[None], str]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._events = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._stopping = False
        self._claiming = False
        self._dispatching = False
        self._ticks_queued: dict[str, float] = {}

    @property
    def _attempts(self) -> dict[str, int]:
        return {name: kind.max_attempts(self.max_attempts) for name, kind in self.registry.kinds.items()}

    @property
    def concurrency(self) -> int:
        return sum(self.registry.lanes.values())

    @property
    def busy(self) -> bool:
        """Jobs in hand, or a claim or a dispatch in progress."""
        return bool(self._running) or self._claiming or self._dispatching

    def wake(self) -> None:
        """New work was committed: look now rather than at the next poll. Safe from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._woken)

    def _woken(self) -> None:
        self._wake.set()
        self._events.set()

    async def db(self, function: Callable[..., T], /, *, write: bool, **kwargs: Any) -> T:
        def work() -> T:
            with self.database.transaction(write=write) as session:
                return function(session, **kwargs)

        return await to_thread.run_sync(work, limiter=self._limiter())

    # --- the loop ----------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Claim and run jobs, and serve subscribers, until :meth:`stop` (or cancellation)."""
        self._loop = asyncio.get_running_loop()
        stop_listening = self.database.on_new_work(self.wake)
        heartbeat = self._loop.create_task(self._renew_leases())
        dispatcher = self._loop.create_task(self._dispatch_forever())
        try:
            while not self._stopping:
                # Cleared before claiming: new work or a slot freed while the claim runs is seen after it.
                self._wake.clear()
                self._slot_free.clear()
                await self._queue_ticks()
                started = await self._claim_and_start()
                if started:
                    continue
                if all(self._free(lane) == 0 for lane in self.registry.lanes):
                    await self._slot_free.wait()  # full: wait for a slot (or a few)
                    await asyncio.sleep(CLAIM_COALESCE_SECONDS)
                    continue
                # New work, or a slot freed in a lane that was full (its queue may hold more: a thousand
                # deliveries queued at once were otherwise taken sixteen per wake-up or poll).
                await self._wait_any((self._wake, self._slot_free), self.poll_seconds)
                # Then a short pause, so that what arrives together is claimed together: every commit of an
                # event wakes the worker, and every job that ends frees a slot; a claim round for each (a
                # read of what is due, then a claim) was a tenth of the server's time under steady load.
                await asyncio.sleep(CLAIM_COALESCE_SECONDS)
        finally:
            stop_listening()
            for task in (heartbeat, dispatcher):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def run_once(self) -> int:
        """One round, for tests and tools: serve subscribers, queue due ticks, then claim every due job and run
        it to the end. Returns how many jobs ran."""
        self._loop = asyncio.get_running_loop()
        await self._dispatch_all()
        await self._queue_ticks()
        ran = 0
        while True:
            started = await self._claim_and_start()
            if not started:
                return ran
            ran += started
            await asyncio.gather(*(task for _, task, _ in list(self._running.values())))

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming; give the jobs in hand ``timeout`` seconds, then abandon them to their leases."""
        self._stopping = True
        self._wake.set()
        self._events.set()
        self._slot_free.set()
        tasks = [task for _, task, _ in self._running.values()]
        if tasks:
            _, unfinished = await asyncio.wait(tasks, timeout=timeout)
            for task in unfinished:
                task.cancel()

    @staticmethod
    async def _wait(event: asyncio.Event, timeout: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    @staticmethod
    async def _wait_any(events: tuple[asyncio.Event, ...], timeout: float) -> None:
        waiters = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _free(self, lane: str) -> int:
        return self.registry.lanes[lane] - sum(1 for _, _, held in self._running.values() if held == lane)

    # --- claiming ----------------------------------------------------------------------------------------------

    async def _claim_and_start(self) -> int:
        self._claiming = True
        try:
            lanes = {lane: self._free(lane) for lane in self.registry.lanes}
            if not any(lanes.values()):
                return 0
            # Idle: a read, so no write transaction (on SQLite, no write lock and no fsync) per poll.
            due = await self.db(job_service.due_kinds, write=False)
            started = 0
            for lane, free in lanes.items():
                kinds = [kind for kind in self.registry.kinds_in(lane) if kind in due]
                if free == 0 or not kinds:
                    continue
                claimed = await self.db(
                    job_service.claim_jobs,
                    write=True,
                    worker=self.name,
                    kinds=kinds,
                    limit=free,
                    lease_seconds=self.lease_seconds,
                    max_attempts=self._attempts,
                )
                for job in claimed:
                    task = asyncio.get_running_loop().create_task(self._process(job))
                    self._running[job.id] = (job, task, lane)
                started += len(claimed)
            return started
        except Exception:
            logger.exception("claiming jobs failed; retrying in %s s", self.poll_seconds)
            await asyncio.sleep(self.poll_seconds)
            return 0
        finally:
            self._claiming = False

    async def _process(self, job: job_service.ClaimedJob) -> None:
        kind = self.registry.kinds.get(job.kind)
        try:
            if kind is None:
                await self._fail(job, f"unknown job kind {job.kind!r}", retry_after=None)
                return
            await kind.run(job)
            if not kind.finishes_itself:
                await self.db(job_service.finish_job, write=True, claimed=job)
            self._on_finished(job.kind, "done")
        except asyncio.CancelledError:
            raise
        except GiveUp as exc:
            await self._fail(job, str(exc), retry_after=None)
        except Retry as exc:
            await self._retry(job, str(exc), after=exc.after)
        except Exception as exc:  # a bug or a database outage: retried, and visible on the job
            logger.exception("job %s (%s) failed", job.id, job.kind)
            await self._retry(job, f"{type(exc).__name__}: {exc}", after=None)
        finally:
            self._running.pop(job.id, None)
            self._slot_free.set()

    async def _retry(self, job: job_service.ClaimedJob, error: str, *, after: float | None) -> None:
        kind = self.registry.kinds[job.kind]
        if job.attempts >= self._attempts[job.kind]:
            await self._fail(job, error, retry_after=None)
        else:
            await self._fail(
                job, error, retry_after=after if after is not None else kind.delay_before(job.attempts)
            )

    async def _fail(self, job: job_service.ClaimedJob, error: str, *, retry_after: float | None) -> None:
        try:
            outcome = await self.db(
                job_service.fail_job, write=True, claimed=job, error=error, retry_after=retry_after
            )
            if outcome is not None:
                self._on_finished(job.kind, "retry" if outcome == "queued" else "failed")
        except Exception:  # the lease will run out and another attempt will be made
            logger.exception("recording the failure of job %s failed", job.id)

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            held = [(job.id, job.token) for job, _, _ in self._running.values()]
            if not held:
                continue
            try:
                await self.db(
                    job_service.extend_leases, write=True, jobs=held, lease_seconds=self.lease_seconds
                )
            except Exception:
                logger.exception("renewing leases failed")

    # --- scheduled jobs ----------------------------------------------------------------------------------------

    async def _queue_ticks(self) -> None:
        """Queue the current tick of every schedule, once per tick per process (the job's unique key makes it
        once per tick across all processes)."""
        now = utcnow().timestamp()  # the services' clock, which tests may move on
        for schedule in self.registry.schedules:
            tick = now - now % schedule.every_seconds
            if self._ticks_queued.get(schedule.kind) == tick:
                continue
            try:
                await self.db(job_service.queue_tick, write=True, kind=schedule.kind, tick=tick)
                self._ticks_queued[schedule.kind] = tick
            except Exception:
                logger.exception("queueing the tick of %s failed", schedule.kind)

    # --- subscribers -------------------------------------------------------------------------------------------

    async def _dispatch_forever(self) -> None:
        while not self._stopping:
            self._events.clear()
            await self._dispatch_all()
            await self._wait(self._events, self.poll_seconds)
            await asyncio.sleep(DISPATCH_COALESCE_SECONDS)

    async def _dispatch_all(self) -> None:
        if not self.subscribers:
            return
        self._dispatching = True
        try:
            while await self.db(outbox.unsequenced, write=False):
                if await self.db(outbox.sequence, write=True) < SEQUENCE_BATCH:
                    break
            names = [s.name for s in self.subscribers]
            due = await self.db(dispatch.behind, write=False, names=names)
            while due and not self._stopping:
                serving = [s for s in self.subscribers if s.name in due]
                if await self.db(dispatch.dispatch, write=True, subscribers=serving) < dispatch.BATCH:
                    break
        except Exception:
            logger.exception("serving subscribers failed; retrying in %s s", self.poll_seconds)
        finally:
            self._dispatching = False
