"""Fixtures. Every test that touches storage runs twice: on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from casework.app import create_app
from casework.config import Settings
from casework.db import migrate
from casework.db.engine import Database
from casework.evaluators.judge import LLMJudge, judge_client
from casework.secrets import load_key
from tests.judge_server import JudgeServer
from tests.support import Clock, LiveServer, Tenant, free_port, make_tenant, postgres_database, settle, wipe
from tests.webhook_receiver import WebhookReceiver


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# PostgreSQL's tests take longer than SQLite's (about 430 s against 330 s of one process's time): these modules'
# PostgreSQL tests run in the SQLite tests' process, so that the two finish together.
_WITH_SQLITE = frozenset({"test_cli.py"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With pytest-xdist (make test runs two processes), the tests of one database run in the same process, so
    each process sets up one database, server and browser, not two (bar the few modules of ``_WITH_SQLITE``,
    moved for balance); the tests that need no database go to whichever process is free. A test marked
    ``only_backend("postgresql")`` is not collected for SQLite at all (rather than skipped there), and one marked
    ``any_backend`` (it needs a live server but reads nothing stored) runs on SQLite only."""
    kept, dropped = [], []
    for item in items:
        backend = getattr(item, "callspec", None) and item.callspec.params.get("backend")
        only = item.get_closest_marker("only_backend")
        if backend and only is not None and backend not in only.args:
            dropped.append(item)
            continue
        if backend == "postgresql" and item.get_closest_marker("any_backend") is not None:
            dropped.append(item)
            continue
        if backend:
            balanced = backend == "postgresql" and item.path.name in _WITH_SQLITE
            item.add_marker(pytest.mark.xdist_group("sqlite" if balanced else backend))
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'casework.db'}"
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # Keys are checked on every request here, so tests that revoke a key see the effect at once.
    return Settings(
        home=tmp_path_factory.mktemp("home"),
        database_url=database_url,
        auth_cache_seconds=0,
        max_body_bytes=1024 * 1024,
        worker_poll_seconds=0.05,
        job_max_attempts=2,  # one retry (after 2 s), so the retry-then-park path runs in a test
        evaluation_event_sample=1.0,
        spot_check_rate=0.0,  # tests that want spot checks set the evaluator's rate
        # Webhook receivers run on 127.0.0.1 here; retries come quickly so tests see them happen.
        webhooks_allow_private=True,
        webhook_retry_schedule="0.2,0.4,0.6",
        webhook_timeout_seconds=1.0,
        webhook_disable_after=2,
        job_retention_days=0,  # the test server's maintenance deletes no job a test made (tests/worker prunes)
    )


@pytest.fixture(scope="session")
def migrated_database(settings: Settings) -> Iterator[Database]:
    database = Database.from_url(settings.effective_database_url, pool_size=5)
    migrate.upgrade(database)
    yield database
    database.dispose()


@pytest.fixture
def database(migrated_database: Database) -> Iterator[Database]:
    """The backend's migrated database, emptied after each test."""
    yield migrated_database
    wipe(migrated_database)


@pytest.fixture(scope="session")
def judge_server() -> Iterator[JudgeServer]:
    """The LLM judge: a local OpenAI-compatible server, reached over real HTTP."""
    judge = JudgeServer()
    with LiveServer(judge.app) as server:
        judge.base_url = server.base_url
        yield judge


@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A webhook receiver over real HTTP that verifies signatures with the standardwebhooks library."""
    receiver = WebhookReceiver()
    with LiveServer(receiver.app) as server:
        receiver.base_url = server.base_url
        yield receiver


@pytest.fixture(autouse=True)
def _fresh_peers(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "judge_server" in request.fixturenames:
        request.getfixturevalue("judge_server").reset()
    if "webhook_receiver" in request.fixturenames:
        request.getfixturevalue("webhook_receiver").reset()


@pytest.fixture(scope="session")
def live_server(
    settings: Settings, migrated_database: Database, judge_server: JudgeServer
) -> Iterator[LiveServer]:
    # Few retries with short waits: the tests still see retrying happen, without waiting long for it.
    client = judge_client(
        api_key="test-key", base_url=f"{judge_server.base_url}/v1", max_retries=2, timeout=10
    )
    app = create_app(settings, database=migrated_database, judge=LLMJudge(client))
    with LiveServer(app) as server:
        yield server


@pytest.fixture
def base_url(live_server: LiveServer, database: Database) -> Iterator[str]:
    yield live_server.base_url
    # The background jobs of this test (evaluations, memory passes) finish before its rows are wiped.
    settle(live_server.app.state.worker, database)


@pytest.fixture
def tenant(database: Database, base_url: str) -> Tenant:
    return make_tenant(database, base_url)


@pytest.fixture
def other_tenant(database: Database, base_url: str) -> Tenant:
    return make_tenant(database, base_url)


@pytest.fixture
def admin(tenant: Tenant) -> Iterator[httpx.Client]:
    with tenant.client("admin") as client:
        yield client


@pytest.fixture
def anonymous(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture
def env(tmp_path: Path, database_url: str, database: Database, settings: Settings) -> dict[str, str]:
    """The environment of another process of the test installation: its own home, the same database, and so
    the same secret key (a process holding another key does not start)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CASEWORK_", "OPENAI_"))}
    return {
        **clean,
        "CASEWORK_HOME": str(tmp_path / "home"),
        "CASEWORK_DATABASE_URL": database_url,
        "CASEWORK_SECRET_KEY": load_key(settings.secret_key, settings.home),
        "CASEWORK_PORT": str(free_port()),
        "CASEWORK_SPOT_CHECK_RATE": "0",
        "COLUMNS": "200",
    }


@pytest.fixture
def settled(live_server: LiveServer, database: Database) -> Callable[[], None]:
    """Call to wait until the server's background work (subscribers, jobs) has caught up."""
    return lambda: settle(live_server.app.state.worker, database)


@pytest.fixture
def runner(live_server: LiveServer) -> Any:
    """The live server's evaluation runner (to forget cached evidence after a test records some)."""
    return live_server.app.state.runner


@pytest.fixture
def clock() -> Iterator[Clock]:
    """The services' clock, to move on (``clock.advance(hours=25)``) instead of sleeping; reset afterwards."""
    from casework.db.types import set_clock

    moved = Clock()
    set_clock(moved.now)
    try:
        yield moved
    finally:
        set_clock(None)
