"""The evaluation worker: claims jobs from the database queue and runs them with the evaluation runner.

One worker runs up to ``concurrency`` jobs at once (each mostly waits on the judge). It renews the leases of
the jobs it holds; if it dies, its jobs become claimable again once their leases run out. Runs inside
``casework serve`` and alone as ``casework worker``: any number of either share one PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable

from anyio import CapacityLimiter

from casework.config import Settings
from casework.db.engine import Database
from casework.errors import EvaluatorNotFound
from casework.evaluators.runner import EvaluationRunner
from casework.services import jobs as job_service
from casework.services.auth import Principal, Role
from casework.services.evaluations import store_job_evaluation

logger = logging.getLogger("casework.worker")


class JobFailed(Exception):
    """A job that did not succeed this time (the judge failed); it is retried with backoff."""


class Worker:
    def __init__(
        self,
        runner: EvaluationRunner,
        *,
        concurrency: int = 32,
        lease_seconds: float = 60.0,
        max_attempts: int = 5,
        poll_seconds: float = 1.0,
        name: str | None = None,
        on_finished: Callable[[str, str], None] | None = None,
    ) -> None:
        self.runner = runner
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.poll_seconds = poll_seconds
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._wake = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._running: dict[str, tuple[job_service.ClaimedJob, asyncio.Task[None]]] = {}
        self._stopping = False
        self._claiming = False
        self._on_finished = on_finished or (lambda kind, outcome: None)

    @classmethod
    def from_settings(
        cls,
        runner: EvaluationRunner,
        settings: Settings,
        *,
        on_finished: Callable[[str, str], None] | None = None,
    ) -> Worker:
        return cls(
            runner,
            concurrency=settings.worker_concurrency,
            lease_seconds=settings.job_lease_seconds,
            max_attempts=settings.job_max_attempts,
            poll_seconds=settings.worker_poll_seconds,
            on_finished=on_finished,
        )

    def wake(self) -> None:
        """New work was queued in this process: look now rather than at the next poll."""
        self._wake.set()

    @property
    def busy(self) -> bool:
        """Jobs in hand, or a claim in progress."""
        return bool(self._running) or self._claiming

    async def run(self) -> None:
        """Claim and run jobs until :meth:`stop` (or cancellation)."""
        heartbeat = asyncio.get_running_loop().create_task(self._renew_leases())
        try:
            while not self._stopping:
                free = self.concurrency - len(self._running)
                if free == 0:
                    # Full: wait for a slot. Cleared only now, with no await since counting, so a slot freed
                    # during the last claim is not missed (that lost wake-up idled slots ~100 ms a job).
                    self._slot_free.clear()
                    await self._slot_free.wait()
                    continue
                self._wake.clear()
                claimed = await self._claim(free)
                for job in claimed:
                    task = asyncio.get_running_loop().create_task(self._process(job))
                    self._running[job.id] = (job, task)
                if not claimed:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming; give the jobs in hand ``timeout`` seconds, then abandon them to their leases."""
        self._stopping = True
        self._wake.set()
        self._slot_free.set()
        tasks = [task for _, task in self._running.values()]
        if tasks:
            _, unfinished = await asyncio.wait(tasks, timeout=timeout)
            for task in unfinished:
                task.cancel()

    async def _claim(self, limit: int) -> list[job_service.ClaimedJob]:
        self._claiming = True
        try:
            if not self._running and not await self.runner.db(job_service.any_due, write=False):
                return []  # idle: no write transaction (on SQLite, no write lock and no fsync) per poll
            return await self.runner.db(
                job_service.claim_jobs,
                write=True,
                worker=self.name,
                limit=limit,
                lease_seconds=self.lease_seconds,
                max_attempts=self.max_attempts,
            )
        except Exception:
            logger.exception("claiming jobs failed; retrying in %s s", self.poll_seconds)
            await asyncio.sleep(self.poll_seconds)
            return []
        finally:
            self._claiming = False

    async def _process(self, job: job_service.ClaimedJob) -> None:
        try:
            if job.kind == "evaluate":
                await self._evaluate(job)
            elif job.kind == "memory_pass":
                await self.runner.memory_pass(job.payload.get("control_ids", []))
                await self.runner.db(job_service.finish_job, write=True, claimed=job)
                self._on_finished(job.kind, "done")
            else:
                await self._fail(job, f"unknown job kind {job.kind!r}", retryable=False)
        except asyncio.CancelledError:
            raise
        except EvaluatorNotFound as exc:
            await self._fail(job, str(exc), retryable=False)
        except JobFailed as exc:
            await self._fail(job, str(exc), retryable=True)
        except Exception as exc:  # a bug or a database outage: retried, and visible on the job
            logger.exception("job %s failed", job.id)
            await self._fail(job, f"{type(exc).__name__}: {exc}", retryable=True)
        finally:
            self._running.pop(job.id, None)
            self._slot_free.set()

    async def _evaluate(self, job: job_service.ClaimedJob) -> None:
        if job.interaction is None or job.evaluator_type is None:
            await self._fail(job, "the span holds no interaction to evaluate", retryable=False)
            return
        principal = Principal(
            key_id="worker", workspace_id=job.workspace_id, role=Role.admin, label="casework-worker"
        )
        [evaluator] = await self.runner.current_evaluators(principal, job.project_id, [job.evaluator_type])
        draft = await self.runner.run_one(evaluator, job.interaction)
        if draft.error is not None:
            raise JobFailed(draft.error)
        await self.runner.writes.write(store_job_evaluation, claimed=job, draft=draft, principal=principal)
        self._on_finished(job.kind, "done")

    async def _fail(self, job: job_service.ClaimedJob, error: str, *, retryable: bool) -> None:
        try:
            outcome = await self.runner.db(
                job_service.fail_job,
                write=True,
                claimed=job,
                error=error,
                max_attempts=self.max_attempts,
                retryable=retryable,
            )
            if outcome is not None:
                self._on_finished(job.kind, "retry" if outcome == "queued" else "failed")
        except Exception:  # the lease will run out and another attempt will be made
            logger.exception("recording the failure of job %s failed", job.id)

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            held = [(job.id, job.token) for job, _ in self._running.values()]
            if not held:
                continue
            try:
                await self.runner.db(
                    job_service.extend_leases, write=True, jobs=held, lease_seconds=self.lease_seconds
                )
            except Exception:
                logger.exception("renewing leases failed")


async def run_worker_process(
    settings: Settings, database: Database, *, announce: Callable[[str], None]
) -> None:
    """``casework worker``: a worker and nothing else, until SIGTERM or SIGINT; then the jobs in hand get a
    few seconds to finish, and the rest are left to their leases."""
    limiter = CapacityLimiter(settings.database_threads_for(database.dialect))
    runner = EvaluationRunner.from_settings(settings, database, limiter=lambda: limiter)
    worker = Worker.from_settings(runner, settings)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    task = loop.create_task(worker.run())
    announce(f"Worker {worker.name} is taking jobs ({worker.concurrency} at a time). Ctrl+C stops it.")
    try:
        await stopping.wait()
    finally:
        await worker.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await runner.aclose()
