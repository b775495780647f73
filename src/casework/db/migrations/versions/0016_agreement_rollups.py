"""agreement in the kept roll-ups: the judge against people, and reviewers against each other, per day

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 17:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("judge_compared", "judge_agreed", "reviewer_pairs", "reviewer_pairs_agreed")


def upgrade() -> None:
    # Days before this migration count 0 here (no agreement shown) until `rollups.rebuild` recounts a project.
    for name in COLUMNS:
        op.add_column(
            "review_rollups", sa.Column(name, sa.Integer(), server_default=sa.text("0"), nullable=False)
        )


def downgrade() -> None:
    for name in reversed(COLUMNS):
        op.drop_column("review_rollups", name)
