"""control embeddings

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 21:08:22.030369
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import casework.db.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "control_embeddings",
        sa.Column("control_id", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column(
            "vector",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", casework.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["control_id"],
            ["controls.id"],
            name=op.f("fk_control_embeddings_control_id_controls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("control_id", "model", name=op.f("pk_control_embeddings")),
    )


def downgrade() -> None:

    op.drop_table("control_embeddings")
