"""Settings: one object, read from the environment (prefix ``CASEWORK_``) and passed down explicitly."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

ENV_PREFIX = "CASEWORK_"


class Settings(BaseSettings):
    """Every knob of a Casework server. Each field's description is what ``casework settings`` shows."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    home: Path = Field(
        default=Path("~/.casework"),
        description="Data folder: the SQLite database (by default) and the first admin key live here.",
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the database. Default: SQLite file casework.db in CASEWORK_HOME. "
            "postgresql://user@host:5432/name selects PostgreSQL (the scale-out store)."
        ),
    )
    host: str = Field(default="127.0.0.1", description="Address the server listens on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port the server listens on.")
    workers: int = Field(
        default=1,
        ge=1,
        description=(
            "Server processes on this machine. One Python process uses one core; set the number of cores to use "
            "them all (they share the database; /metrics adds up all of them)."
        ),
    )
    db_pool_size: int = Field(
        default=10, ge=1, description="Database connections kept open per process (PostgreSQL and SQLite)."
    )
    db_threads: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Threads per process that run database work. Default: 2 on SQLite (short CPU-bound queries), "
            "CASEWORK_DB_POOL_SIZE on PostgreSQL (queries wait on the network)."
        ),
    )
    auth_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description=(
            "How long a server process trusts a key it has checked, to skip the lookup on later requests. "
            "A revoked key stops working on other processes within this time. 0 checks every request."
        ),
    )
    embeddings_model: str | None = Field(
        default=None,
        description=(
            "A model of the OpenAI-compatible /v1/embeddings endpoint (OPENAI_API_KEY, OPENAI_BASE_URL). When set, "
            "evaluation memory ranks controls by embedding similarity combined with word overlap."
        ),
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="The largest request body accepted, in bytes; a larger one gets 413 payload_too_large.",
    )
    embedded_worker: bool = Field(
        default=True,
        description=(
            "Run an evaluation worker inside each `casework serve` process. Turn off on API-only replicas when "
            "`casework worker` processes do the evaluating."
        ),
    )
    worker_concurrency: int = Field(
        default=32, ge=1, le=1024, description="Jobs a worker runs at once (mostly waiting on the judge)."
    )
    worker_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often an idle worker looks for new jobs (new traces in the same process wake it at once).",
    )
    job_lease_seconds: float = Field(
        default=60.0,
        ge=1,
        description=(
            "How long a claimed job stays a worker's without news; a live worker renews it, so only the jobs "
            "of a worker that died wait this long before another worker takes them."
        ),
    )
    job_max_attempts: int = Field(
        default=5,
        ge=1,
        description="Attempts before a failing job is parked as `failed` with its last error.",
    )
    ingest_max_pending: int = Field(
        default=16,
        ge=1,
        description=(
            "OTLP requests one server process stores at once; more get 503 with Retry-After, which OTLP "
            "exporters honour by retrying."
        ),
    )
    log_level: str = Field(default="info", description="Server log level: debug, info, warning or error.")

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def effective_database_url(self) -> str:
        """The database URL in use, with the SQLite default filled in and ``postgresql://`` set to psycopg 3."""
        if not self.database_url:
            return f"sqlite:///{self.home / 'casework.db'}"
        url = make_url(self.database_url)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)

    def database_threads_for(self, dialect: str) -> int:
        if self.db_threads is not None:
            return self.db_threads
        return 2 if dialect == "sqlite" else self.db_pool_size

    @property
    def admin_key_path(self) -> Path:
        return self.home / "admin-key"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


def describe_settings(settings: Settings) -> list[tuple[str, str, str, str]]:
    """Rows of (environment variable, effective value, source, description), secrets masked."""
    rows = []
    for name, field in Settings.model_fields.items():
        env_name = f"{ENV_PREFIX}{name.upper()}"
        value: Any = getattr(settings, name)
        source = "environment" if env_name in os.environ else "default"
        if name == "database_url":
            value = make_url(settings.effective_database_url).render_as_string(hide_password=True)
            if source == "default":
                source = "default (SQLite in CASEWORK_HOME)"
        rows.append((env_name, str(value), source, field.description or ""))
    return rows
