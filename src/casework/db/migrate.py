"""Alembic, driven from code: ``casework serve`` and ``casework db upgrade`` both call :func:`upgrade`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from casework.db.engine import Database

_SCRIPT_LOCATION = Path(__file__).parent / "migrations"
# Any fixed number: replicas starting together on PostgreSQL take turns migrating instead of racing.
_MIGRATION_LOCK_ID = 7_336_401


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPT_LOCATION))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


def current_revision(database: Database) -> str | None:
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(database: Database, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` in one transaction (DDL is transactional on both databases)."""
    with database.migration_connection() as connection:
        if database.dialect == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        command.upgrade(alembic_config(connection), revision)


def is_migrated(database: Database) -> bool:
    return current_revision(database) == head_revision()
