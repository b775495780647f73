"""reviewer calibration: reviewers required per evaluator and per review, decisions counted, an assignee

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 14:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN (no batch): a batch would rebuild reviews on SQLite and recreate
    # ix_reviews_queue without its DESC column, and the queue would sort instead of seek.
    op.add_column(
        "evaluators",
        sa.Column("reviewers_required", sa.Integer(), server_default=sa.text("1"), nullable=False),
    )
    op.add_column(
        "reviews", sa.Column("reviewers_required", sa.Integer(), server_default=sa.text("1"), nullable=False)
    )
    op.add_column(
        "reviews", sa.Column("decisions_submitted", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )
    op.add_column("reviews", sa.Column("assignee", sa.String(length=300), nullable=True))
    # One submitted decision per reviewer on a review: the database refuses a second, whatever races.
    op.create_index(
        "uq_decisions_submitted_reviewer",
        "decisions",
        ["review_id", "reviewer"],
        unique=True,
        sqlite_where=sa.text("status = 'submitted'"),
        postgresql_where=sa.text("status = 'submitted'"),
    )


def downgrade() -> None:
    op.drop_index("uq_decisions_submitted_reviewer", table_name="decisions")
    with op.batch_alter_table("reviews") as batch:
        batch.drop_column("assignee")
        batch.drop_column("decisions_submitted")
        batch.drop_column("reviewers_required")
    # A batch rebuild of reviews (SQLite) loses the DESC of the queue index: put it back as it was.
    op.drop_index("ix_reviews_queue", table_name="reviews")
    op.create_index(
        "ix_reviews_queue", "reviews", ["project_id", "status", sa.text("priority DESC"), "created_at", "id"]
    )
    with op.batch_alter_table("evaluators") as batch:
        batch.drop_column("reviewers_required")
