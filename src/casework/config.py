"""Settings: one object, read from the environment (prefix ``CASEWORK_``) and passed down explicitly."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
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
    db_wait_seconds: float = Field(
        default=60.0,
        ge=0,
        description=(
            "PostgreSQL: how long a process waits for the database to answer one statement (or one batch of a "
            "streamed export, or a commit) before it drops the connection: a stalled server or network then "
            "gets 503 with Retry-After, and the request's transaction is rolled back. 0: wait for ever. "
            "Migrations are not bound."
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
    golden_concurrency: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Judge calls a worker process makes at once for golden-set runs (apart from its evaluation slots).",
    )
    model_prices: str = Field(
        default="",
        description=(
            'Prices of judge models for golden-set runs\' cost estimates, as JSON: {"model": {"prompt": 0.15, '
            '"completion": 0.6}}, US dollars per million tokens (a run may add its own). A model not listed '
            "has no cost estimate (null); nothing is looked up on the network."
        ),
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
    secret_key: str | None = Field(
        default=None,
        description=(
            "The key that encrypts secrets at rest (webhook signing secrets, integration tokens). Default: the "
            "file secret-key in CASEWORK_HOME, made on first start. Processes that share a database need the same."
        ),
    )
    metrics_token: str | None = Field(
        default=None,
        description=(
            "When set, GET /metrics answers only a request with the header Authorization: Bearer <this token> "
            "(Prometheus: the scrape config's authorization.credentials). The metrics name every project."
        ),
    )
    spot_check_rate: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description=(
            "Share of automatic decisions (memory resolutions, and confident judge verdicts) sent to a person to "
            "check, as spot-check reviews, unless the evaluator sets its own rate. Their outcome is evidence."
        ),
    )
    evaluation_event_sample: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description=(
            "Share of routine evaluations (confident, not re-evaluated) that write an evaluation.completed event; "
            "ambiguous, re-evaluated and failed ones always do. 1 records every evaluation."
        ),
    )
    webhooks_allow_private: bool = Field(
        default=False,
        description=(
            "Allow webhook URLs on private, loopback and link-local addresses (refused by default, so a webhook "
            "cannot reach into the server's own network)."
        ),
    )
    webhook_retry_schedule: str = Field(
        default="5,300,1800,7200,18000,36000,36000",
        description=(
            "Seconds to wait before each retry of a failed webhook delivery (comma-separated; about a day in all "
            "by default). Each wait gets up to a fifth more at random, so retries do not arrive together."
        ),
    )
    webhook_disable_after: int = Field(
        default=5,
        ge=1,
        description="Deliveries in a row that fail every retry before an endpoint is disabled.",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long a webhook receiver has to answer one delivery."
    )
    webhook_concurrency: int = Field(
        default=16,
        ge=1,
        description="Webhook endpoints one worker sends to at once, and requests in flight to each (apart from its evaluation slots).",
    )
    digest_every_seconds: float = Field(
        default=86400.0,
        ge=60,
        description="How often Slack and Teams integrations post their digest (pending, oldest, overdue).",
    )
    job_retention_days: float = Field(
        default=7.0,
        ge=0,
        description="Days a finished background job (a delivery, a scheduled tick, a memory pass) is kept before "
        "maintenance deletes it; evaluation jobs stay with their spans and runs, failed jobs stay. 0 keeps them all.",
    )
    sla_sweep_seconds: float = Field(
        default=60.0,
        ge=1,
        description="How often the SLA sweep runs: due-soon and overdue alerts, paused clocks, queue thresholds.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Server log level: debug, info, warning or error."
    )
    public_url: str | None = Field(
        default=None,
        description=(
            "The address people and integrations reach this server at (https://casework.example.com), for "
            "the links it prints and puts in Slack, Teams, Jira, ServiceNow and Zendesk, and the inbound URLs "
            "those tools are given. Default: http://CASEWORK_HOST:CASEWORK_PORT, with 127.0.0.1 for 0.0.0.0."
        ),
    )

    @field_validator("public_url", mode="after")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("it must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        try:
            delays = [float(part) for part in value.split(",") if part.strip()]
        except ValueError as exc:
            raise ValueError("must be seconds separated by commas, e.g. 5,300,1800") from exc
        if any(delay < 0 for delay in delays):
            raise ValueError("waits must not be negative")
        return value

    @field_validator("model_prices")
    @classmethod
    def _check_prices(cls, value: str) -> str:
        from casework.errors import CaseworkError
        from casework.services.golden_metrics import validate_prices

        if not value.strip():
            return ""
        try:
            validate_prices(json.loads(value), field="CASEWORK_MODEL_PRICES")
        except json.JSONDecodeError as exc:
            raise ValueError(f"must be JSON ({exc.msg})") from exc
        except CaseworkError as exc:
            raise ValueError(exc.message) from exc
        return value

    @property
    def model_price_table(self) -> dict[str, dict[str, float]]:
        """CASEWORK_MODEL_PRICES read: model to US dollars per million prompt and completion tokens."""
        from casework.services.golden_metrics import validate_prices

        return validate_prices(json.loads(self.model_prices)) if self.model_prices.strip() else {}

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        return tuple(float(part) for part in self.webhook_retry_schedule.split(",") if part.strip())

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

    @property
    def database_wait_bound(self) -> float | None:
        """CASEWORK_DB_WAIT_SECONDS as the engine takes it: None for no bound."""
        return self.db_wait_seconds or None

    def database_threads_for(self, dialect: str) -> int:
        if self.db_threads is not None:
            return self.db_threads
        return 2 if dialect == "sqlite" else self.db_pool_size

    @property
    def admin_key_path(self) -> Path:
        return self.home / "admin-key"

    @property
    def base_url(self) -> str:
        """Where links point: CASEWORK_PUBLIC_URL, or this machine's listening address (a wildcard address
        is not one a browser can open, so 0.0.0.0 and :: become the loopback address)."""
        if self.public_url:
            return self.public_url
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(self.host, self.host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def effective_public_url(self) -> str:
        """The base of links that leave this server (in messages to other tools)."""
        return self.base_url.rstrip("/")


def environment_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def settings_problem(error: ValidationError) -> str:
    """One line per invalid setting, naming the variable, the value given and what is allowed."""
    lines = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else ""
        name = environment_name(field) if field in Settings.model_fields else field
        given = os.environ.get(name, item.get("input"))
        message = str(item["msg"]).removeprefix("Value error, ")
        allowed = _allowed(field)
        lines.append(f"{name}={given!s} is not valid: {message}{f' ({allowed})' if allowed else ''}.")
    return "\n".join(lines)


def _allowed(field: str) -> str:
    info = Settings.model_fields.get(field)
    if info is None:
        return ""
    low = next((m.ge for m in info.metadata if hasattr(m, "ge")), None)
    high = next((m.le for m in info.metadata if hasattr(m, "le")), None)
    if info.annotation is int and low is not None and high is not None:
        return f"a whole number from {low} to {high}"
    if info.annotation is int and low is not None:
        return f"a whole number, at least {low}"
    return ""


@dataclass(frozen=True)
class JudgeSettings:
    """The judge's configuration, read as the ``openai`` client reads it (OPENAI_API_KEY, OPENAI_BASE_URL)."""

    base_url: str
    base_url_source: str
    api_key_set: bool
    default_model: str

    @classmethod
    def from_environment(cls) -> JudgeSettings:
        from casework.definitions import DEFAULT_MODEL

        base_url = os.environ.get("OPENAI_BASE_URL")
        return cls(
            base_url=base_url or "https://api.openai.com/v1",
            base_url_source="environment" if base_url else "default (the openai client's)",
            api_key_set=bool(os.environ.get("OPENAI_API_KEY")),
            default_model=DEFAULT_MODEL,
        )

    @property
    def summary(self) -> str:
        if not self.api_key_set:
            return (
                "no judge model: OPENAI_API_KEY is not set, so LLM evaluators record an error "
                "(the precedent evaluator still works)"
            )
        return f"{self.base_url}, default model {self.default_model}"


def describe_settings(settings: Settings) -> list[tuple[str, str, str, str]]:
    """Rows of (environment variable, effective value, source, description), secrets masked."""
    rows = []
    for name, field in Settings.model_fields.items():
        env_name = environment_name(name)
        value: Any = getattr(settings, name)
        source = "environment" if env_name in os.environ else "default"
        if name == "database_url":
            value = make_url(settings.effective_database_url).render_as_string(hide_password=True)
            if source == "default":
                source = "default (SQLite in CASEWORK_HOME)"
        if name == "secret_key":
            value = "(set, hidden)" if value else f"(the file {settings.home / 'secret-key'})"
        rows.append((env_name, str(value), source, field.description or ""))
    return rows
