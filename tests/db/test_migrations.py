from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from casework.db import migrate
from casework.db.engine import Database
from casework.db.models import Base
from tests.support import postgres_database


@pytest.fixture
def empty_database(backend: str, tmp_path: Path) -> Iterator[Database]:
    if backend == "sqlite":
        database = Database.from_url(f"sqlite:///{tmp_path / 'empty.db'}")
        yield database
        database.dispose()
    else:
        with postgres_database() as url:
            database = Database.from_url(url)
            yield database
            database.dispose()


def test_migrations_build_the_schema_from_empty_and_back(empty_database: Database) -> None:
    assert migrate.current_revision(empty_database) is None
    migrate.upgrade(empty_database)
    assert migrate.is_migrated(empty_database)
    with empty_database.session(write=True) as session, session.begin():
        command.downgrade(migrate.alembic_config(session.connection()), "base")
    assert migrate.current_revision(empty_database) is None
    migrate.upgrade(empty_database)
    assert migrate.current_revision(empty_database) == migrate.head_revision()


def test_models_and_migrations_agree(migrated_database: Database) -> None:
    with migrated_database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == [], "models changed without a migration: write one in src/casework/db/migrations"


def test_upgrade_twice_is_a_no_op(migrated_database: Database) -> None:
    migrate.upgrade(migrated_database)
    assert migrate.is_migrated(migrated_database)
