"""The application factory. Nothing is created at import time: tests and ``casework serve`` pass their parts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from casework import __version__
from casework.api.deps import KeyCache
from casework.api.errors import install_error_handlers
from casework.api.metrics import Metrics, MetricsMiddleware
from casework.api.routers import health
from casework.api.routers.v1 import controls, projects, reviews
from casework.config import Settings
from casework.db.engine import Database


def create_app(settings: Settings, *, database: Database | None = None) -> FastAPI:
    """Build the Casework API. ``database`` defaults to one made from ``settings`` and disposed on shutdown."""
    owns_database = database is None
    db = database or Database.from_url(settings.effective_database_url, pool_size=settings.db_pool_size)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
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
    app.state.database_thread_count = settings.database_threads_for(db.dialect)

    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)

    app.include_router(health.router)
    app.include_router(projects.router)
    app.include_router(reviews.router)
    app.include_router(controls.router)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/docs")

    return app
