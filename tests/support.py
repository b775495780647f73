"""Test helpers: a real HTTP server for an app, PostgreSQL databases, and small factories."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from casework.db import outbox
from casework.db.engine import Database
from casework.db.models import Base, Job
from casework.db.types import utcnow
from casework.services import auth
from casework.services.workspaces import get_or_create_workspace
from casework.worker import dispatch

POSTGRES_ADMIN_URL = os.environ.get(
    "CASEWORK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiveServer:
    """An ASGI app served by uvicorn on a free loopback port, in a background thread."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.app = app
        self.base_url = f"http://127.0.0.1:{config.port}"
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop, and wait until the app has shut down (its worker stopped, its connections returned): a
        database dropped under a server still running leaves its connections to be collected as garbage."""
        self.server.should_exit = True
        self._thread.join(timeout=60)
        if self._thread.is_alive():
            raise RuntimeError("test server did not stop within 60 s")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this run, dropped afterwards. Yields its URL."""
    admin_url = make_url(POSTGRES_ADMIN_URL)
    name = f"casework_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL is not reachable at {admin_url.render_as_string(hide_password=True)} ({exc.__class__.__name__}). "
            "The storage tests run on SQLite and PostgreSQL alike. Start a server with trust auth on 127.0.0.1:5432 "
            "(Debian: `pg_ctlcluster 15 main start`), or point CASEWORK_TEST_POSTGRES_URL at one.",
            pytrace=False,
        )
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# How long ``serving`` waits for a server to answer /readyz: generous for a loaded machine (a start takes a few
# seconds), yet with the 30 s stop that follows a failed start well inside pytest's own timeout (pyproject.toml,
# 120 s), so that the failure, which shows what the server printed, is the one reported; pytest-timeout's would
# show only where the test was waiting.
SERVER_READY_SECONDS = 60.0


@contextmanager
def serving(
    env: dict[str, str], ready_within: float = SERVER_READY_SECONDS
) -> Iterator[tuple[str, list[str]]]:
    """Start ``casework serve``; yield its URL and its output lines (complete once it has stopped).

    The output is read as it comes: a server whose output nobody reads blocks once the pipe is full (its
    access log alone fills it while a slow start is polled). If it is not ready within ``ready_within``
    seconds (the wait ends as soon as it answers), the failure shows what it printed."""
    url = f"http://127.0.0.1:{env['CASEWORK_PORT']}"
    process = subprocess.Popen(
        [sys.executable, "-m", "casework", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(
        target=lambda: output.extend(line.rstrip("\n") for line in process.stdout), daemon=True
    )  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + ready_within
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            printed = "\n".join(output)
            assert process.poll() is None, f"casework serve exited ({process.returncode}):\n{printed}"
            assert time.monotonic() < deadline, f"casework serve not ready in {ready_within} s:\n{printed}"
            time.sleep(0.05)
        yield url, output
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=10)
        process.stdout.close()


def settle(worker: Any, database: Database, timeout: float = 30) -> None:
    """Wait until every subscriber has read the whole event log, no job is due or running, and the worker
    holds none. A job retrying soon (a transient error on its first try) counts as due: its work is not done.
    Jobs waiting out a longer backoff may remain."""
    deadline = time.monotonic() + timeout
    names = [subscriber.name for subscriber in worker.subscribers]
    while time.monotonic() < deadline:
        with database.transaction(write=False) as session:
            soon = utcnow() + timedelta(seconds=1)
            # The log first, then the jobs. On PostgreSQL each statement sees what was committed when it began:
            # read jobs first, and a dispatch committing in between looks done (its subscriber caught up) while
            # the job it queued was not seen (the memory tests' flakes on PostgreSQL). Read in this order, a
            # subscriber seen caught up means the jobs it queued are committed, and the next read sees them.
            unsequenced = outbox.unsequenced(session)
            # A subscriber that failed and retries within seconds has not handled its events yet (one aborted
            # by the previous test's wipe retries 2 s later, say).
            behind = dispatch.behind(session, names, retrying_before=soon + timedelta(seconds=4))
            unread = bool(behind) or unsequenced
            due = session.execute(
                select(func.count()).where(
                    Job.status.in_(("queued", "running")),
                    (Job.available_at <= soon)
                    | ((Job.attempts > 0) & (Job.available_at <= soon + timedelta(seconds=4))),
                )
            ).scalar_one()
        if not due and not unread and not worker.busy:
            return
        time.sleep(0.02)
    raise AssertionError(f"background work did not settle in {timeout} s")


# Where each subscriber has read to: reset, not deleted, as a fresh database has them. And the installation's
# settings (its secret key's check value): they belong to the installation, which outlives every test.
_KEPT = ("subscriber_positions", "instance_settings")


def wipe(database: Database) -> None:
    """Delete every row, keeping the schema: the next test starts from an empty, migrated database. DELETE, not
    TRUNCATE: on a test's few rows PostgreSQL's TRUNCATE costs 0.12 s (new files for every table), DELETE
    0.01 s, over 388 tests. The live server's worker keeps polling meanwhile; should PostgreSQL find the two
    deadlocked and abort the wipe, it is simply done again."""
    for attempt in range(5):
        try:
            _wipe(database)
            return
        except OperationalError as exc:
            if "deadlock" not in str(exc) or attempt == 4:
                raise


def _wipe(database: Database) -> None:
    tables = [table for table in Base.metadata.sorted_tables if table.name not in _KEPT]
    with database.transaction() as session:
        for table in reversed(tables):  # those that refer to others first
            session.execute(table.delete())
        session.execute(
            text(
                "UPDATE subscriber_positions SET position = 0, failures = 0, retry_at = NULL, last_error = NULL"
            )
        )


@dataclass
class Tenant:
    """A workspace with one key per role, and clients that send them."""

    workspace_id: str
    name: str
    keys: dict[str, str]
    base_url: str

    def client(self, role: str = "admin", **kwargs: Any) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers={"x-api-key": self.keys[role]}, timeout=30, **kwargs
        )


def make_tenant(database: Database, base_url: str, name: str | None = None) -> Tenant:
    name = name or f"ws-{uuid.uuid4().hex[:8]}"
    with database.transaction() as session:
        workspace, _ = get_or_create_workspace(session, name=name)
        keys = {
            role.value: auth.create_key(
                session, workspace_id=workspace.id, role=role, label=f"{role.value}@{name}"
            ).secret
            for role in auth.Role
        }
        workspace_id = workspace.id
    return Tenant(workspace_id=workspace_id, name=name, keys=keys, base_url=base_url)


def table_counts(database: Database) -> dict[str, int]:
    """Rows per table: 'nothing changed' is this dict before and after. Jobs count those of a project: a
    scheduled tick (no project) comes with the clock, whatever a test does."""
    with database.transaction(write=False) as session:
        return {
            table.name: session.execute(
                text(
                    f'SELECT COUNT(*) FROM "{table.name}"'
                    + (" WHERE project_id IS NOT NULL" if table.name == "jobs" else "")
                )
            ).scalar_one()
            for table in Base.metadata.sorted_tables
        }


POLICY_OPTIONS = ["compliant", "non_compliant"]


def enqueue(client: httpx.Client, project_id: str, **fields: Any) -> dict[str, Any]:
    """Queue a review through the API, with tutorial-like defaults."""
    body = {
        "project_id": project_id,
        "evaluator_type": "policy-adherence",
        "query": "Can I get a higher credit limit? I've been a customer for 15 years.",
        "response": "I appreciate your loyalty! I can certainly look into that for you.",
        "options": POLICY_OPTIONS,
        "confidence": 0.42,
        **fields,
    }
    response = client.post("/api/v1/hitl/reviews", json=body)
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


def make_project(client: httpx.Client, name: str = "hitl-demo") -> str:
    project_id: str = client.post("/api/v1/projects", json={"name": name}).json()["id"]
    return project_id


def make_reviews(database: Database, tenant: Tenant, project_id: str, count: int, **fields: Any) -> list[str]:
    """Queue ``count`` reviews in one transaction, through the service (fast, for volume tests)."""
    from casework.services.auth import Principal, Role
    from casework.services.reviews import enqueue_review

    principal = Principal(
        key_id="key_factory", workspace_id=tenant.workspace_id, role=Role.admin, label="factory"
    )
    ids = []
    with database.transaction() as session:
        for i in range(count):
            review, _ = enqueue_review(
                session,
                principal=principal,
                project_id=project_id,
                evaluator_type=fields.get("evaluator_type", "e"),
                query=f"query {i}",
                response="response",
                options=fields.get("options", ["a", "b"]),
            )
            ids.append(review.id)
    return ids


POLICY_EVALUATOR = {
    "name": "policy-adherence",
    "options": ["compliant", "non_compliant"],
    "evaluation_system_prompt": (
        "You are a financial services compliance auditor evaluating whether agent responses adhere to company "
        "policy.\n\nIf the response is clearly compliant or clearly non-compliant, classify it. If it is "
        "borderline or you are uncertain, classify as ambiguous.\n\nOptions: {evaluation_options}"
    ),
    "evaluation_human_prompt": (
        "Customer message: {query}\nAgent response: {response}\n\nClassify the agent's policy adherence. "
        "Choose from: {evaluation_options}"
    ),
    "reeval_system_prompt": (
        "You are a senior compliance auditor performing a second review of an ambiguous policy adherence "
        "evaluation. You have access to feedback from prior expert reviews of similar cases.\n\n"
        "Options: {evaluation_options}"
    ),
    "reeval_human_prompt": (
        "Customer message: {query}\nAgent response: {response}\n\nContext from prior expert reviews:\n"
        "{memories}\n\nBased on the interaction and expert review context, classify the agent's policy "
        "adherence. Choose from: compliant or non_compliant."
    ),
}


def wait_for(condition: Any, timeout: float = 20, message: str = "timed out waiting") -> Any:
    """Poll ``condition`` until it returns something true (and return that), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(message)


def run_async(make: Any) -> Any:
    """Run the coroutine ``make()`` to the end on a fresh event loop in a thread of its own (the browser tests
    keep an event loop running in the main thread, where ``asyncio.run`` would refuse)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def give_evidence(
    database: Database,
    project_id: str,
    evaluator_type: str,
    classification: str,
    count: int,
    *,
    score: float = 0.95,
    wrong: int = 0,
    subject: str = "memory",
) -> None:
    """Record ``count`` past decisions where memory (or the judge) said ``classification`` at ``score`` and a
    person agreed (the last ``wrong`` of them, disagreed): as if that many replays had run."""
    from casework.services import evidence
    from casework.services.memory_pass import definition_for

    with database.transaction() as session:
        definition, _ = definition_for(
            session, project_id=project_id, evaluator_type=evaluator_type, options=[classification, "other"]
        )
        method = (
            evidence.memory_method(definition) if subject == "memory" else evidence.judge_method(definition)
        )
        for i in range(count):
            evidence.record(
                session,
                project_id=project_id,
                evaluator_type=evaluator_type,
                subject=subject,
                source="replay",
                review_id=f"rev_seeded_{uuid.uuid4().hex[:12]}",
                method=method,
                predicted=classification,
                score=score,
                human=classification if i < count - wrong else f"not-{classification}",
                decided_at=utcnow(),
            )


class Clock:
    """The services' clock in a test: real time moved on by ``advance`` (casework.db.types.set_clock), so that
    due times pass without sleeping and the server's own background work keeps running."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def advance(self, **delta: float) -> datetime:
        self.offset += timedelta(**delta)
        return self.now()
