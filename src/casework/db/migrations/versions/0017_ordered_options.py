"""evaluators may declare their options ordered (agreement is then ordinal)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "evaluators",
        sa.Column("ordered", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("evaluators") as batch:
        batch.drop_column("ordered")
