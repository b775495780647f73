"""The application: the HTTP API, the reviewer web UI and (unless turned off) a background worker, composed.
Tests and ``casework serve`` call :func:`create_app` with their own parts; nothing is made at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import CapacityLimiter, to_thread
from fastapi import FastAPI

from casework import heap
from casework.api.app import create_api
from casework.config import Settings
from casework.db import migrate
from casework.db.engine import Database
from casework.evaluators.judge import LLMJudge
from casework.secrets import SecretBox, SecretKeyMismatch, check_key, load_key
from casework.web import routes as web
from casework.worker.runner import EvaluationRunner
from casework.worker.setup import Background, build_background

logger = logging.getLogger("casework")


def create_app(
    settings: Settings, *, database: Database | None = None, judge: LLMJudge | None = None
) -> FastAPI:
    """Build Casework. ``database`` defaults to one made from ``settings`` and disposed on shutdown; ``judge``
    to the OpenAI-compatible endpoint named by OPENAI_API_KEY and OPENAI_BASE_URL."""
    owns_database = database is None
    db = database or Database.from_url(
        settings.effective_database_url,
        pool_size=settings.db_pool_size,
        statement_wait_seconds=settings.database_wait_bound,
    )
    box = SecretBox(load_key(settings.secret_key, settings.home))
    # Database threads: the requests' (app.state.database_threads), and one of its own for the evaluation runner
    # and the embedded worker. On one shared limiter, a burst of background work took every thread and requests
    # queued behind it (SQLite, one reviewer deciding while memory passes ran: feedback p50 37 ms, p99 203 ms;
    # with a thread of its own, 18 and 45 ms). More than one background thread lets memory's scoring hold
    # Python's GIL against the requests (PostgreSQL, 100,000 reviews: feedback p50 101 ms and bulk of 1,000
    # 81 s with five, 22 ms and 16 s with one). More background capacity: `casework worker` processes.
    threads: list[CapacityLimiter] = []

    def limiter() -> CapacityLimiter | None:
        return threads[1] if threads else None

    runner = EvaluationRunner.from_settings(settings, db, limiter=limiter, judge=judge)
    background: Background | None = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threads.extend((CapacityLimiter(settings.database_threads_for(db.dialect)), CapacityLimiter(1)))
        app.state.database_threads = threads[0]
        app.state.secret_key_problem = None
        try:  # a process with another key fails at start, before it serves anything
            await to_thread.run_sync(_check_key_if_migrated, db, box)
            key_check = None
        except SecretKeyMismatch:
            await runner.aclose()
            if owns_database:
                db.dispose()  # its connections closed, not left to the garbage collector
            raise
        except Exception:  # the database does not answer yet: the server starts (and answers 503) meanwhile
            key_check = asyncio.get_running_loop().create_task(_check_key_when_reachable(app, db, box))
        worker_task = None

        if background is not None:
            worker_task = asyncio.get_running_loop().create_task(background.worker.run())
        yield
        if background is not None and worker_task is not None:
            await background.worker.stop()
            worker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker_task
            await background.aclose()
        if key_check is not None:
            key_check.cancel()
        await runner.aclose()

        if owns_database:
            db.dispose()

    app = create_api(settings, database=db, runner=runner, secret_box=box, lifespan=lifespan)
    if settings.embedded_worker:
        background = build_background(
            settings,
            db,
            runner,
            box,
            limiter=limiter,
            on_finished=lambda kind, outcome: app.state.metrics.jobs_finished.labels(kind, outcome).inc(),
        )
        app.state.worker = background.worker
    web.install(app)
    return app


async def _check_key_when_reachable(
    app: FastAPI, database: Database, box: SecretBox, every: float = 5.0
) -> None:
    """Every process of an installation must hold the same secret key: checked at start, or, when the database
    did not answer then, as soon as it does. A process found then to hold another key is not ready
    (``/readyz`` answers 503 ``secret_key_mismatch``, so a load balancer takes it out) and says so in its log:
    it would fail every delivery that needs a secret."""
    while True:
        try:
            await to_thread.run_sync(_check_key_if_migrated, database, box)
            return
        except SecretKeyMismatch as exc:
            logger.critical("this process's secret key is not the installation's: not ready", exc_info=True)
            app.state.secret_key_problem = str(exc)
            return
        except Exception as exc:  # the database is not reachable yet: try again
            logger.warning(
                "cannot check the secret key yet (%s); retrying in %s s", exc.__class__.__name__, every
            )
            await asyncio.sleep(every)


def _check_key_if_migrated(database: Database, box: SecretBox) -> None:
    if migrate.is_migrated(database):
        with database.transaction() as session:
            check_key(session, box)


def app_from_environment() -> FastAPI:
    """The app with settings from the environment: for ``casework serve --workers N`` and ``uvicorn --factory``."""
    app = create_app(Settings())
    heap.settle()
    return app
