"""Engines and sessions for SQLite and PostgreSQL. Dialect-specific SQL lives in this package only."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from casework.errors import ServiceUnavailable

# Execution option carried by the "writer" engine view: on SQLite its transactions start with BEGIN IMMEDIATE.
_WRITE_OPTION = "casework_write"
# How long a writer waits for SQLite's write lock before the request is refused as overload.
SQLITE_WRITE_WAIT_SECONDS = 30.0


def make_engine(
    database_url: str, *, pool_size: int = 10, write_wait_seconds: float = SQLITE_WRITE_WAIT_SECONDS
) -> Engine:
    """Create the engine for ``database_url`` with the settings each database needs."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            # One connection is used by one thread at a time (the pool guarantees it), but not always the
            # thread that opened it.
            connect_args={"check_same_thread": False},
            pool_size=pool_size,
            max_overflow=pool_size * 2,
        )
        event.listen(engine, "connect", partial(_sqlite_on_connect, write_wait_seconds=write_wait_seconds))
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True)


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
        self._read = sessionmaker(bind=engine, expire_on_commit=False)
        self._write = sessionmaker(
            bind=engine.execution_options(**{_WRITE_OPTION: True}), expire_on_commit=False
        )

    @classmethod
    def from_url(
        cls, database_url: str, *, pool_size: int = 10, write_wait_seconds: float = SQLITE_WRITE_WAIT_SECONDS
    ) -> Database:
        """``write_wait_seconds``: on SQLite, how long a write waits for the write lock before it is refused
        (503 from the API)."""
        engine = make_engine(database_url, pool_size=pool_size, write_wait_seconds=write_wait_seconds)
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
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
            if writer is not None:
                writer.release()

    def dispose(self) -> None:
        self.engine.dispose()
