"""A database that cannot serve right now is a 503 with Retry-After, in the error shape, and nothing written:
SQLite's write lock held too long, a database that cannot be reached, a connection pool with none to spare.
Clients retry a 503 (OTLP exporters do, and drop their spans on a 500)."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from casework.api.errors import install_error_handlers
from casework.app import create_app
from casework.config import Settings
from casework.db import migrate
from casework.db.engine import CommitOutcomeUnknown, Database, StatementTimedOut, database_unavailable
from casework.evaluators.judge import LLMJudge
from tests.support import LiveServer, Tenant, free_port, make_tenant


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


def test_a_database_that_cannot_be_reached_is_503_not_500(backend: str, tmp_path: Path) -> None:
    """PostgreSQL on a port where nothing listens; SQLite in a folder that does not exist."""
    if backend == "postgresql":
        url = f"postgresql://postgres@127.0.0.1:{free_port()}/casework"
    else:
        url = f"sqlite:///{tmp_path / 'missing' / 'casework.db'}"
    settings = Settings(home=tmp_path, database_url=url, auth_cache_seconds=0, embedded_worker=False)
    with LiveServer(create_app(settings, judge=LLMJudge(None))) as server:
        key = {"x-api-key": "cw_sk_anything"}
        protobuf = {**key, "content-type": "application/x-protobuf"}
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            assert_busy(client.get("/api/v1/projects", headers=key))
            assert_busy(client.post("/api/v1/projects", json={"name": "p"}, headers=key))
            assert_busy(client.post("/v1/traces", content=b"", headers=protobuf))
        page = httpx.get(
            f"{server.base_url}/", headers={"accept": "text/html"}, cookies={"casework_session": "x"}
        )
        assert page.status_code == 503
        assert "text/html" in page.headers["content-type"]
        assert page.headers["retry-after"] == "1"  # a browser's page says when to retry, as the JSON does
        ready = httpx.get(f"{server.base_url}/readyz")
        assert (ready.status_code, ready.json()["error"]["code"]) == (503, "database_unreachable")


def test_an_exhausted_connection_pool_is_503_not_500(
    database_url: str, tenant: Tenant, settings: Settings
) -> None:
    """One pooled connection and two in overflow, all held: the next request gives up after 0.2 s. (A second
    process of the same installation: the same home, so the same secret key.)"""
    database = Database.from_url(database_url, pool_size=1, pool_wait_seconds=0.2)
    settings = settings.model_copy(update={"embedded_worker": False})
    app = create_app(settings, database=database, judge=LLMJudge(None))
    try:
        with (
            LiveServer(app) as server,
            httpx.Client(base_url=server.base_url, headers={"x-api-key": tenant.keys["admin"]}) as client,
        ):
            assert client.get("/api/v1/projects").status_code == 200
            held = [database.engine.connect() for _ in range(3)]
            try:
                assert_busy(client.get("/api/v1/projects"))
                assert_busy(client.post("/api/v1/projects", json={"name": "p"}))
            finally:
                for connection in held:
                    connection.close()
            assert client.post("/api/v1/projects", json={"name": "p"}).status_code == 201
    finally:
        database.dispose()


@pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnhandledThreadExceptionWarning"
)  # uvicorn exits its thread
def test_a_server_holding_another_secret_key_does_not_start(
    base_url: str, database_url: str, tmp_path: Path
) -> None:
    """The live server registered the installation's key; a process with its own (another home) must not serve:
    it could not open the integrations' and webhooks' secrets."""
    stranger = Settings(home=tmp_path, database_url=database_url, embedded_worker=False)
    with (
        pytest.raises(RuntimeError, match="did not start"),
        LiveServer(create_app(stranger, judge=LLMJudge(None))),
    ):
        pass


class PausableProxy:
    """A TCP proxy to PostgreSQL that can stop forwarding, as a stalled server or network does: connections stay
    open and their bytes are taken (the kernel acknowledges them), but nothing gets through either way, and new
    connections are accepted but never reach the server. ``forwarding`` is set while bytes flow."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.forwarding = threading.Event()
        self.forwarding.set()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.sockets.append(client)
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        self.forwarding.wait()
        if self.stopped:
            return
        upstream = socket.create_connection(self.target)
        self.sockets.append(upstream)
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                self.forwarding.wait()
                if self.stopped:
                    return
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.stopped = True
        self.forwarding.set()
        self.listener.close()
        for end in self.sockets:
            with contextlib.suppress(OSError):
                end.close()


@pytest.mark.only_backend("postgresql")
def test_a_stalled_postgresql_is_503_for_requests_holding_a_pooled_connection(
    backend: str, settings: Settings, migrated_database: Database, tenant: Tenant
) -> None:
    """PostgreSQL stops answering (a stopped server process or proxy: TCP still looks fine) while the server
    holds pooled connections to it: each request gives up after CASEWORK_DB_WAIT_SECONDS with 503 and
    Retry-After, as requests needing a new connection do after the connect timeout, and what a refused write
    did is not committed. (SQLite has no server to stall.)"""
    direct = make_url(settings.effective_database_url)
    proxy = PausableProxy((direct.host or "127.0.0.1", direct.port or 5432))
    proxied = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = settings.model_copy(
        update={"database_url": proxied, "embedded_worker": False, "db_wait_seconds": 1.0}
    )
    database = Database.from_url(
        settings.effective_database_url, pool_size=4, statement_wait_seconds=settings.database_wait_bound
    )
    app = create_app(settings, database=database, judge=LLMJudge(None))
    headers = {"x-api-key": tenant.keys["admin"]}
    try:
        with (
            LiveServer(app) as server,
            httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as client,
        ):
            with ThreadPoolExecutor(max_workers=8) as pool:
                # Fill the pool with open connections, as a server that has been serving has.
                warm = list(pool.map(lambda _: client.get("/api/v1/projects").status_code, range(8)))
                assert warm == [200] * 8
                assert database.engine.pool.checkedin() >= 1  # type: ignore[attr-defined]
                proxy.forwarding.clear()
                reads = [pool.submit(client.get, "/api/v1/projects") for _ in range(6)]
                write = pool.submit(client.post, "/api/v1/projects", json={"name": "during-the-stall"})
                for reply in [future.result() for future in reads] + [write.result()]:
                    assert_busy(reply)
            proxy.forwarding.set()
            # Back: the server serves again, and the refused write left nothing.
            reply = client.get("/api/v1/projects")
            assert reply.status_code == 200, reply.text
            assert "during-the-stall" not in [p["name"] for p in reply.json()["projects"]]
    finally:
        proxy.forwarding.set()
        database.dispose()
        proxy.close()


def test_a_commit_left_unanswered_is_not_taken_for_an_outage() -> None:
    """A statement that timed out committed nothing (its connection, and so its transaction, is gone): 503, try
    again. A COMMIT that timed out may have committed: a blind retry could do the work twice, so it is not
    "unavailable" but its own 503, outcome_unknown (the API's handler; documented in docs/reference.md)."""
    lost = StatementTimedOut("PostgreSQL did not answer within 1 s")
    unknown = CommitOutcomeUnknown("PostgreSQL did not answer a COMMIT within 1 s")
    assert database_unavailable(OperationalError("SELECT 1", {}, lost, connection_invalidated=True))
    assert not database_unavailable(OperationalError("COMMIT", {}, unknown, connection_invalidated=True))

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/commit")
    def commit() -> None:
        raise OperationalError("COMMIT", {}, unknown, connection_invalidated=True)

    with TestClient(app) as client:
        answer = client.get("/commit")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert answer.json()["error"]["code"] == "outcome_unknown"
