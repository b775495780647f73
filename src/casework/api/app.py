"""The HTTP API: routers, error handlers, middleware. ``casework.app.create_app`` composes it with the web UI
and the background worker; nothing is created at import time."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import Depends, FastAPI

from casework import __version__
from casework.api.deps import KeyCache, storable_text
from casework.api.errors import RejectLargeBodies, install_error_handlers
from casework.api.metrics import Metrics, MetricsMiddleware
from casework.api.openapi import install_openapi
from casework.api.routers import health
from casework.api.routers.v1 import (
    agreement,
    controls,
    evaluators,
    events,
    golden_sets,
    integrations,
    projects,
    reviews,
    risk_tiers,
    sla,
    traces,
    webhooks,
)
from casework.config import Settings
from casework.db.engine import Database
from casework.secrets import SecretBox
from casework.worker.runner import EvaluationRunner


def create_api(
    settings: Settings,
    *,
    database: Database,
    runner: EvaluationRunner,
    secret_box: SecretBox,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    app = FastAPI(
        title="Casework",
        version=__version__,
        summary="Human-in-the-loop LLM evaluation with evaluation memory.",
        lifespan=lifespan,
        # /docs is served by the web UI from the package's own copy of Swagger UI (it works offline, and
        # under the pages' script policy); FastAPI's pages load it from a CDN.
        docs_url=None,
        redoc_url=None,
        # Path and query text: one rule (casework.text) for every route.
        dependencies=[Depends(storable_text)],
    )
    app.state.settings = settings
    app.state.database = database
    app.state.metrics = Metrics()
    app.state.key_cache = KeyCache(settings.auth_cache_seconds)
    app.state.runner = runner
    app.state.secret_box = secret_box
    app.state.worker = None
    app.state.ingest_pending = 0

    install_error_handlers(app)
    app.add_middleware(RejectLargeBodies, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)

    app.include_router(health.router)
    app.include_router(traces.otlp)
    app.include_router(traces.router)
    app.include_router(projects.router)
    app.include_router(reviews.router)
    app.include_router(sla.router)
    # before controls: /controls/search must not be taken for a control id
    app.include_router(evaluators.router)
    app.include_router(golden_sets.router)
    app.include_router(controls.router)
    app.include_router(events.router)
    app.include_router(webhooks.router)
    app.include_router(integrations.router)
    app.include_router(risk_tiers.router)
    app.include_router(agreement.router)
    install_openapi(app)
    return app
