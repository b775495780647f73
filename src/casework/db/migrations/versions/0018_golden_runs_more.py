"""golden sets: items' tags and metadata (CSV and JSON imports); a run's error when it failed, and the price
table its cost estimate was made with

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from casework.db.types import JSONType

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("golden_items", sa.Column("tags", JSONType, nullable=True))
    op.add_column("golden_items", sa.Column("metadata", JSONType, nullable=True))
    op.add_column("golden_runs", sa.Column("error", sa.Text(), nullable=True))
    op.add_column("golden_runs", sa.Column("prices", JSONType, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("golden_runs") as batch:
        batch.drop_column("prices")
        batch.drop_column("error")
    with op.batch_alter_table("golden_items") as batch:
        batch.drop_column("metadata")
        batch.drop_column("tags")
