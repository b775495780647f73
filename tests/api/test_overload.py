"""SQLite has one writer at a time. A write that cannot get the lock in time is overload: 503 with Retry-After,
in the error shape, and nothing written. (PostgreSQL has no database-wide write lock, so this is SQLite's.)"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from casework.api.app import create_app
from casework.config import Settings
from casework.db import migrate
from casework.db.engine import Database
from casework.evaluators.judge import LLMJudge
from tests.support import LiveServer, make_tenant


@dataclass
class Served:
    path: Path
    database: Database
    client: httpx.Client


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A server on its own SQLite file, whose writes give up waiting for the lock after 0.3 s."""
    path = tmp_path / "casework.db"
    database = Database.from_url(f"sqlite:///{path}", write_wait_seconds=0.3)
    migrate.upgrade(database)
    settings = Settings(home=tmp_path / "home", database_url=f"sqlite:///{path}", auth_cache_seconds=0)
    with LiveServer(create_app(settings, database=database, judge=LLMJudge(None))) as server:
        key = make_tenant(database, server.base_url).keys["admin"]
        with httpx.Client(base_url=server.base_url, headers={"x-api-key": key}) as client:
            yield Served(path, database, client)
    database.dispose()


def assert_busy(response: httpx.Response) -> None:
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["code"] == "service_unavailable"


def test_a_write_that_waits_too_long_for_another_programs_lock_is_503(served: Served) -> None:
    other_program = sqlite3.connect(served.path, isolation_level=None)
    other_program.execute("BEGIN IMMEDIATE")  # holds the write lock
    try:
        assert_busy(served.client.post("/api/v1/projects", json={"name": "p"}))
    finally:
        other_program.execute("ROLLBACK")
        other_program.close()
    assert served.client.get("/api/v1/projects").json()["projects"] == []
    assert served.client.post("/api/v1/projects", json={"name": "p"}).status_code == 201


def test_a_write_queued_behind_a_long_one_in_the_same_process_is_503_too(served: Served) -> None:
    with served.database.transaction():  # a long write in the server's process
        assert_busy(served.client.post("/api/v1/projects", json={"name": "p"}))
    assert served.client.post("/api/v1/projects", json={"name": "p"}).status_code == 201
