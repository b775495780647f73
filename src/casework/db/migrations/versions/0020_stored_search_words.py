"""PostgreSQL: the controls' search document as a stored column, so a search never tokenises a control again

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 08:45:00
"""

from collections.abc import Sequence

from alembic import op

from casework.db import search

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":  # SQLite's FTS5 index stores its terms already
        for statement in search.POSTGRESQL_STORED_SCHEMA:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in search.POSTGRESQL_STORED_DROP:
            op.execute(statement)
