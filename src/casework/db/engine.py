"""Engines and sessions for SQLite and PostgreSQL. Dialect-specific SQL lives in this package only."""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from casework.db import notify
from casework.errors import ServiceUnavailable

# Execution option carried by the "writer" engine view: on SQLite its transactions start with BEGIN IMMEDIATE.
_WRITE_OPTION = "casework_write"
# How long a writer waits for SQLite's write lock before the request is refused as overload.
SQLITE_WRITE_WAIT_SECONDS = 30.0
# How long a request waits for a free pooled connection before it is refused as overload.
POOL_WAIT_SECONDS = 30.0
# How long connecting to PostgreSQL may take: a host that does not answer is an outage, not a long wait.
POSTGRESQL_CONNECT_SECONDS = 10
# How long one round trip to PostgreSQL (a statement, a batch of a streamed export, a commit) may take before
# the connection is taken for lost (CASEWORK_DB_WAIT_SECONDS).
POSTGRESQL_WAIT_SECONDS = 60.0
# The kernel's own watch on PostgreSQL's connections, for the network failures a process cannot see: TCP
# keepalives find a peer that vanished while the connection was idle in the pool (probe after 30 s idle, every
# 10 s, gone after 3 unanswered), and tcp_user_timeout drops a connection whose sent data has gone
# unacknowledged for 30 s (a cable pulled mid-request), instead of the kernel's ~15 minutes of retransmits.
# Neither sees a server that is stalled but whose host still acknowledges (a stopped process, a stopped
# proxy): that is what the wait bound above is for.
_POSTGRESQL_TCP = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}
# Set on a session whose transaction queued work (events, jobs): once it commits, the listeners are told.
_WAKE = "casework_wake"


def mark_for_wake(session: Session) -> None:
    """Tell this process's worker about the transaction's new work once (and only if) it commits."""
    session.info[_WAKE] = True


def make_engine(
    database_url: str,
    *,
    pool_size: int = 10,
    write_wait_seconds: float = SQLITE_WRITE_WAIT_SECONDS,
    pool_wait_seconds: float = POOL_WAIT_SECONDS,
    statement_wait_seconds: float | None = POSTGRESQL_WAIT_SECONDS,
) -> Engine:
    """Create the engine for ``database_url`` with the settings each database needs. ``statement_wait_seconds``:
    on PostgreSQL, the bound on each round trip (None: none), see :class:`BoundedConnection`."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            # One connection is used by one thread at a time (the pool guarantees it), but not always the
            # thread that opened it.
            connect_args={"check_same_thread": False},
            pool_size=pool_size,
            max_overflow=pool_size * 2,
            pool_timeout=pool_wait_seconds,
        )
        event.listen(engine, "connect", partial(_sqlite_on_connect, write_wait_seconds=write_wait_seconds))
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_timeout=pool_wait_seconds,
        pool_pre_ping=True,
        connect_args={"connect_timeout": POSTGRESQL_CONNECT_SECONDS, **_POSTGRESQL_TCP},
    )
    event.listen(engine, "do_connect", partial(_bounded_connect, wait_seconds=statement_wait_seconds))
    return engine


class StatementTimedOut(psycopg.OperationalError):
    """PostgreSQL did not answer one round trip within the bound: the connection was closed, and with it its
    transaction, which the server rolls back; nothing of it was committed. The request gets 503."""


class CommitOutcomeUnknown(psycopg.OperationalError):
    """PostgreSQL did not answer a COMMIT within the bound. It may have committed: not "unavailable, try again"
    (a blind retry could do the work twice), but 503 ``outcome_unknown``: check before sending it again."""


class BoundedConnection(psycopg.Connection[Any]):
    """A psycopg connection whose every wait on the server (psycopg's one ``wait``: statements, fetches,
    commits, rollbacks, pings) ends after ``wait_seconds``. A server that stalls with a pooled connection open
    (a stopped process or proxy: the host still acknowledges, so TCP sees nothing wrong) would otherwise hold the
    request, and its thread, for ever. A timed-out connection is closed (its protocol state is unknown), which
    SQLAlchemy takes for a disconnect: the pool drops it, and the API answers 503 with Retry-After."""

    wait_seconds: float | None = None
    _committing = False

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        if timeout is None:
            timeout = self.wait_seconds
        try:
            return super().wait(gen, interval, timeout)
        except psycopg.errors._WaitTimeout:  # psycopg's own, raised only for the timeout we passed
            self.pgconn.finish()
            if self._committing:
                raise CommitOutcomeUnknown(
                    f"PostgreSQL did not answer a COMMIT within {timeout} s; it may or may not have committed"
                ) from None
            raise StatementTimedOut(f"PostgreSQL did not answer within {timeout} s") from None

    def commit(self) -> None:
        self._committing = True
        try:
            super().commit()
        finally:
            self._committing = False


def _bounded_connect(
    dialect: Any, _record: Any, cargs: Any, cparams: Any, *, wait_seconds: float | None
) -> BoundedConnection:
    connection = BoundedConnection.connect(*cargs, **cparams)
    connection.wait_seconds = wait_seconds
    return connection


# PostgreSQL error classes that mean "not now" (SQLSTATE's first two characters): connection exceptions,
# insufficient resources (too many connections, disk full), operator intervention (shutting down, starting up,
# statement timeout), and transaction rollback (serialization failure, deadlock), which a retry resolves.
_RETRY_CLASSES = ("08", "53", "57", "40")
# ... and single codes: read-only transaction (a failover left us on a standby), lock not available.
_RETRY_CODES = ("25006", "55P03")


def database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot serve right now (unreachable, restarting, out of connections,
    locked by another writer, its pool exhausted), so the caller should retry, rather than a bug. PostgreSQL
    reports its SQLSTATE; an error without one came from the driver's connection (refused, lost)."""
    if isinstance(error, PoolTimeout):
        return True
    if not isinstance(error, DBAPIError) or isinstance(error.orig, CommitOutcomeUnknown):
        return False
    if error.connection_invalidated:
        return True
    original = error.orig
    if isinstance(original, psycopg.Error):
        code = original.sqlstate
        if code is None:
            return isinstance(original, psycopg.OperationalError)
        return code[:2] in _RETRY_CLASSES or code in _RETRY_CODES
    if isinstance(original, sqlite3.OperationalError):
        message = str(original)
        return "database is locked" in message or "unable to open database file" in message
    return False


def _sqlite_on_connect(dbapi_connection: Any, _record: Any, *, write_wait_seconds: float) -> None:
    # pysqlite's implicit BEGIN is deferred and skips SELECTs, so a transaction that reads then writes can
    # fail with SQLITE_BUSY when another writer got in between. We issue BEGIN ourselves (see _sqlite_on_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer and the writer never blocks readers.
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk before we answer "accepted", even across a power cut.
    cursor.execute("PRAGMA synchronous=FULL")
    # SQLite leaves foreign keys off unless asked, per connection.
    cursor.execute("PRAGMA foreign_keys=ON")
    # Writers queue (30 s by default) instead of failing at once with "database is locked".
    cursor.execute(f"PRAGMA busy_timeout={int(write_wait_seconds * 1000)}")
    # Up to 32 MiB of page cache per connection (the default is 2 MiB), taken only as used: index pages stay
    # in memory at volume (bench/ingest.py: random trace ids touch the whole spans index).
    cursor.execute("PRAGMA cache_size=-32768")
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    # Writers take the write lock up front (IMMEDIATE), so they queue on busy_timeout instead of failing
    # mid-transaction; readers take none (deferred BEGIN) and read a consistent WAL snapshot.
    if connection.get_execution_options().get(_WRITE_OPTION):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")


def read_only(connection: Connection) -> Connection:
    """The connection, set to begin read transactions (deferred BEGIN on SQLite, whatever engine it came from)."""
    return connection.execution_options(**{_WRITE_OPTION: False})


class Database:
    """The engine and two session factories: readers and writers (they differ on SQLite only)."""

    def __init__(self, engine: Engine, *, write_wait_seconds: float = SQLITE_WRITE_WAIT_SECONDS) -> None:
        self.engine = engine
        self.write_wait_seconds = write_wait_seconds
        # SQLite lets one connection write at a time. The threads of one process queue for it on this lock,
        # each going the moment the last is done, instead of in SQLite's busy handler, which sleeps 1, 2, 5,
        # 10, 15... ms between tries: with a worker's claims and the group commit both writing, those sleeps
        # were a sixth of a job's time (bench/ingest.py, worker: 114 -> 125 evaluations/s). Other processes
        # on the same file still queue in the busy handler.
        self._sqlite_writer = threading.RLock() if engine.dialect.name == "sqlite" else None
        self._commit_listeners: list[Callable[[], None]] = []
        self._listener: notify.Listener | None = None
        self._origin = secrets.token_hex(8)  # names this Database's notifications, which it need not hear
        self._read = sessionmaker(bind=engine, expire_on_commit=False)
        self._write = sessionmaker(
            bind=engine.execution_options(**{_WRITE_OPTION: True}), expire_on_commit=False
        )

    @contextmanager
    def migration_connection(self) -> Iterator[Connection]:
        """One write transaction for migrations. On SQLite, foreign keys are off while it runs: Alembic's batch
        mode changes a table by copying it and dropping the old one, and with them on, the drop would cascade
        into every table that refers to it (dropping ``projects`` emptied ``reviews``). They are checked before
        the commit instead, and on again after."""
        with self.engine.execution_options(**{_WRITE_OPTION: True}).connect() as connection:
            driver = connection.connection.driver_connection
            if isinstance(driver, BoundedConnection):  # a migration may rebuild a big table: no bound
                bound, driver.wait_seconds = driver.wait_seconds, None
            sqlite = self.dialect == "sqlite"
            if sqlite:  # before BEGIN: inside a transaction this pragma does nothing
                connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
            try:
                with connection.begin():
                    yield connection
                    if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                        raise RuntimeError("a migration left rows whose foreign keys point nowhere")
            finally:
                if sqlite:
                    connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
                if isinstance(driver, BoundedConnection):
                    driver.wait_seconds = bound

    @classmethod
    def from_url(
        cls,
        database_url: str,
        *,
        pool_size: int = 10,
        write_wait_seconds: float = SQLITE_WRITE_WAIT_SECONDS,
        pool_wait_seconds: float = POOL_WAIT_SECONDS,
        statement_wait_seconds: float | None = POSTGRESQL_WAIT_SECONDS,
    ) -> Database:
        """``write_wait_seconds``: on SQLite, how long a write waits for the write lock before it is refused;
        ``pool_wait_seconds``: how long any work waits for a pooled connection; ``statement_wait_seconds``: on
        PostgreSQL, how long one round trip may take (all three 503 from the API)."""
        engine = make_engine(
            database_url,
            pool_size=pool_size,
            write_wait_seconds=write_wait_seconds,
            pool_wait_seconds=pool_wait_seconds,
            statement_wait_seconds=statement_wait_seconds,
        )
        return cls(engine, write_wait_seconds=write_wait_seconds)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self, *, write: bool) -> Session:
        return (self._write if write else self._read)()

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """One unit of work: committed when the block ends normally, rolled back when it raises."""
        writer = self._sqlite_writer if write else None
        if writer is not None and not writer.acquire(timeout=self.write_wait_seconds):
            raise ServiceUnavailable("The database is busy with other writes; try again.", retry_after=1)
        session = self.session(write=write)
        try:
            yield session
            if session.info.get(_WAKE) and self.dialect == "postgresql":
                notify.notify_new_work(session, origin=self._origin)  # other processes' workers, at commit
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            woken = session.info.pop(_WAKE, False)
            session.close()
            if writer is not None:
                writer.release()
        if woken:
            self._committed_new_work()

    def on_new_work(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` after each commit that queued events or jobs: this process's (from the committing
        thread) and, on PostgreSQL, any process's (from a listening thread, casework.db.notify); returns a
        function that removes it. This is how a worker hears of work without polling: the one place."""
        self._commit_listeners.append(listener)
        if self.dialect == "postgresql" and self._listener is None:
            self._listener = notify.Listener(
                notify.conninfo_of(self.engine.url),
                {"connect_timeout": POSTGRESQL_CONNECT_SECONDS, **_POSTGRESQL_TCP},
                self._committed_new_work,
                origin=self._origin,
            )

        def remove() -> None:
            self._commit_listeners.remove(listener)
            if not self._commit_listeners:
                self._stop_listening()

        return remove

    @property
    def listener(self) -> notify.Listener | None:
        """On PostgreSQL, while a worker listens: the thread holding the LISTEN connection."""
        return self._listener

    def _stop_listening(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()

    def _committed_new_work(self) -> None:
        for listener in list(self._commit_listeners):
            listener()

    def dispose(self) -> None:
        self._stop_listening()
        self.engine.dispose()
