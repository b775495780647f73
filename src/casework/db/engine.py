"""Engines and sessions for SQLite and PostgreSQL. Dialect-specific SQL lives in this package only."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

# Execution option carried by the "writer" engine view: on SQLite its transactions start with BEGIN IMMEDIATE.
_WRITE_OPTION = "casework_write"


def make_engine(database_url: str, *, pool_size: int = 10) -> Engine:
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
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
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
    # Writers queue for up to 30 s instead of failing at once with "database is locked".
    cursor.execute("PRAGMA busy_timeout=30000")
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

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._read = sessionmaker(bind=engine, expire_on_commit=False)
        self._write = sessionmaker(
            bind=engine.execution_options(**{_WRITE_OPTION: True}), expire_on_commit=False
        )

    @classmethod
    def from_url(cls, database_url: str, *, pool_size: int = 10) -> Database:
        return cls(make_engine(database_url, pool_size=pool_size))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self, *, write: bool) -> Session:
        return (self._write if write else self._read)()

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """One unit of work: committed when the block ends normally, rolled back when it raises."""
        session = self.session(write=write)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
