"""The application factory. Nothing is created at import time: tests and ``casework serve`` pass their parts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import CapacityLimiter
from fastapi import FastAPI

from casework import __version__, heap
from casework.api.deps import KeyCache
from casework.api.errors import RejectLargeBodies, install_error_handlers
from casework.api.metrics import Metrics, MetricsMiddleware
from casework.api.routers import health
from casework.api.routers.v1 import controls, evaluators, projects, reviews, traces
from casework.config import Settings
from casework.db.engine import Database
from casework.evaluators.judge import LLMJudge
from casework.evaluators.runner import EvaluationRunner
from casework.evaluators.worker import Worker
from casework.web import routes as web


def create_app(
    settings: Settings, *, database: Database | None = None, judge: LLMJudge | None = None
) -> FastAPI:
    """Build the Casework API. ``database`` defaults to one made from ``settings`` and disposed on shutdown;
    ``judge`` to the OpenAI-compatible endpoint named by OPENAI_API_KEY and OPENAI_BASE_URL."""
    owns_database = database is None
    db = database or Database.from_url(settings.effective_database_url, pool_size=settings.db_pool_size)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.database_threads = CapacityLimiter(settings.database_threads_for(db.dialect))
        worker_task = None
        if app.state.worker is not None:
            worker_task = asyncio.get_running_loop().create_task(app.state.worker.run())
        yield
        if worker_task is not None:
            await app.state.worker.stop()
            worker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker_task
        await app.state.runner.aclose()
        if owns_database:
            db.dispose()

    app = FastAPI(
        title="Casework",
        version=__version__,
        summary="Human-in-the-loop LLM evaluation with evaluation memory.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.database = db
    app.state.metrics = Metrics()
    app.state.key_cache = KeyCache(settings.auth_cache_seconds)
    app.state.runner = EvaluationRunner.from_settings(
        settings, db, limiter=lambda: app.state.database_threads, judge=judge
    )
    app.state.worker = (
        Worker.from_settings(
            app.state.runner,
            settings,
            on_finished=lambda kind, outcome: app.state.metrics.jobs_finished.labels(kind, outcome).inc(),
        )
        if settings.embedded_worker
        else None
    )
    app.state.ingest_pending = 0

    install_error_handlers(app)
    app.add_middleware(RejectLargeBodies, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)

    app.include_router(health.router)
    app.include_router(traces.otlp)
    app.include_router(traces.router)
    app.include_router(projects.router)
    app.include_router(reviews.router)
    # before controls: /controls/search must not be taken for a control id
    app.include_router(evaluators.router)
    app.include_router(controls.router)

    web.install(app)
    return app


def app_from_environment() -> FastAPI:
    """The app with settings from the environment: for ``casework serve --workers N`` and ``uvicorn --factory``."""
    app = create_app(Settings())
    heap.settle()
    return app
