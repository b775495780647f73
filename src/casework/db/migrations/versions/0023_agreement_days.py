"""agreement days: per project, evaluator and day of the reviews' creation, the counts agreement reads, so that a
report over any dates adds up days; evaluations indexed by the review they queued (counting a day reads them)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from casework.db.types import JSONType, UTCDateTime

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agreement_days",
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("evaluator_type", sa.String(length=200), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("dirty", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("summary_version", sa.Integer(), nullable=True),
        sa.Column("summary", JSONType, nullable=True),
        sa.Column("computed_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_agreement_days_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "evaluator_type", "day", name=op.f("pk_agreement_days")),
    )
    op.create_index(
        "ix_evaluations_review_id",
        "evaluations",
        ["review_id"],
        sqlite_where=sa.text("review_id IS NOT NULL"),
        postgresql_where=sa.text("review_id IS NOT NULL"),
    )
    # Every day that already has what agreement reads (independent decisions, or a person's resolution) is
    # marked to be counted: the next refresh of the project counts it, and until then a report reads it raw.
    if op.get_bind().dialect.name == "postgresql":
        day = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    else:
        day = "substr(created_at, 1, 10)"
    op.execute(
        "INSERT INTO agreement_days (project_id, evaluator_type, day, dirty, version) "
        f"SELECT DISTINCT project_id, evaluator_type, {day}, true, 0 FROM reviews "
        "WHERE decisions_submitted > 0 OR (status = 'resolved' AND resolved_by = 'human')"
    )


def downgrade() -> None:
    op.drop_index("ix_evaluations_review_id", table_name="evaluations")
    op.drop_table("agreement_days")
