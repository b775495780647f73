"""risk tiers: a policy per project; the tier on reviews and evaluations; metadata sent with an evaluation

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from casework.db.types import JSONType, UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "risk_policies",
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("document", JSONType, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_risk_policies_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_risk_policies")),
    )
    # Plain ADD COLUMN on both databases: batch mode could re-create the table on SQLite, and with foreign keys
    # on, dropping the old one would cascade into every table that refers to it.
    op.add_column("reviews", sa.Column("tier", sa.String(length=40), nullable=True))
    op.add_column("evaluations", sa.Column("tier", sa.String(length=40), nullable=True))
    op.add_column("evaluations", sa.Column("attributes", JSONType, nullable=True))


def downgrade() -> None:
    op.drop_column("evaluations", "attributes")  # SQLite 3.35+ drops a column in place
    op.drop_column("evaluations", "tier")
    op.drop_column("reviews", "tier")
    op.drop_table("risk_policies")
