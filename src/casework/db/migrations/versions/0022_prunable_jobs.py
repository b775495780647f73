"""Jobs: an index of the finished operational jobs, which maintenance deletes after CASEWORK_JOB_RETENTION_DAYS

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PRUNABLE = "status = 'done' AND span_id IS NULL AND run_id IS NULL"


def upgrade() -> None:
    op.create_index(
        "ix_jobs_prunable",
        "jobs",
        ["finished_at"],
        sqlite_where=sa.text(PRUNABLE),
        postgresql_where=sa.text(PRUNABLE),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_prunable", table_name="jobs")
