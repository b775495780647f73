"""Assembling a worker from settings: its lanes, every job kind, the scheduled ones, and the subscribers.
``casework serve`` (the embedded worker) and ``casework worker`` both build theirs here."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from dataclasses import dataclass

from anyio import CapacityLimiter

from casework.config import Settings
from casework.db.engine import Database
from casework.secrets import SecretBox, check_key, load_key
from casework.services.integration_deliveries import DIGEST
from casework.subscribers import builtin_subscribers
from casework.subscribers.integrations import IntegrationSender
from casework.subscribers.webhooks import WebhookSender
from casework.worker.agreement import agreement_kind
from casework.worker.evaluation import evaluation_kinds
from casework.worker.golden import LANE as GOLDEN_LANE
from casework.worker.golden import golden_kinds
from casework.worker.kinds import Registry, Schedule
from casework.worker.loop import Worker
from casework.worker.maintenance import maintenance_kind, maintenance_schedule
from casework.worker.runner import EvaluationRunner
from casework.worker.sla import sla_kind, sla_schedule


def secret_box(settings: Settings, database: Database) -> SecretBox:
    """The installation's key, checked against the database (SecretKeyMismatch when it is not the same)."""
    box = SecretBox(load_key(settings.secret_key, settings.home))
    with database.transaction() as session:
        check_key(session, box)
    return box


@dataclass
class Background:
    """What a process needs for background work: the worker and what it holds open."""

    worker: Worker
    webhooks: WebhookSender
    integrations: IntegrationSender

    async def aclose(self) -> None:
        await self.webhooks.aclose()
        await self.integrations.aclose()


def build_background(
    settings: Settings,
    database: Database,
    runner: EvaluationRunner,
    box: SecretBox,
    *,
    limiter: Callable[[], CapacityLimiter | None],
    on_finished: Callable[[str, str], None] | None = None,
) -> Background:
    registry = Registry(
        lanes={
            "evaluate": settings.worker_concurrency,
            "deliver": settings.webhook_concurrency,
            "default": 4,
            # Many chunks held at once (they mostly wait for a judge slot): the judge slots stay full, with no
            # pause between one chunk's last verdict and the next chunk's claim.
            GOLDEN_LANE: 32,
        }
    )
    worker = Worker(
        registry,
        database,
        limiter=limiter,
        subscribers=builtin_subscribers(),
        lease_seconds=settings.job_lease_seconds,
        max_attempts=settings.job_max_attempts,
        poll_seconds=settings.worker_poll_seconds,
        on_finished=on_finished,
    )
    sender = WebhookSender(
        worker.db,
        box,
        retry_delays=settings.webhook_retry_delays,
        disable_after=settings.webhook_disable_after,
        timeout_seconds=settings.webhook_timeout_seconds,
        allow_private=settings.webhooks_allow_private,
        concurrency=settings.webhook_concurrency,
    )

    integrations = IntegrationSender(
        worker.db,
        box,
        public_url=settings.effective_public_url,
        retry_delays=settings.webhook_retry_delays,
        timeout_seconds=settings.webhook_timeout_seconds,
    )

    registry.add(
        *evaluation_kinds(runner),
        *golden_kinds(
            runner, concurrency=settings.golden_concurrency, max_attempts=settings.job_max_attempts
        ),
        sender.kind(),
        *integrations.job_kinds(),
        maintenance_kind(worker.db, retention_days=settings.job_retention_days),
        sla_kind(worker.db),
        agreement_kind(worker.db),
    )
    registry.schedule(
        maintenance_schedule(),
        Schedule(DIGEST, every_seconds=settings.digest_every_seconds),
        sla_schedule(settings.sla_sweep_seconds),
    )
    return Background(worker=worker, webhooks=sender, integrations=integrations)


async def run_worker_process(
    settings: Settings, database: Database, *, announce: Callable[[str], None]
) -> None:
    """``casework worker``: a worker and nothing else, until SIGTERM or SIGINT; then the jobs in hand get a
    few seconds to finish, and the rest are left to their leases."""
    limiter = CapacityLimiter(settings.database_threads_for(database.dialect))
    runner = EvaluationRunner.from_settings(settings, database, limiter=lambda: limiter)
    background = build_background(
        settings, database, runner, secret_box(settings, database), limiter=lambda: limiter
    )
    worker = background.worker
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
        await background.aclose()
        await runner.aclose()
