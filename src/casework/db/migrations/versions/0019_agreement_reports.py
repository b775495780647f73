"""agreement reports kept per project and scope, refreshed in the background after the project's events

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 18:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from casework.db.types import JSONType, UTCDateTime

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agreement_reports",
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("scope_key", sa.String(length=64), nullable=False),
        sa.Column("scope", JSONType, nullable=False),
        sa.Column("report", JSONType, nullable=False),
        sa.Column("as_of", UTCDateTime(), nullable=False),
        sa.Column("event_position", sa.BigInteger(), nullable=True),
        sa.Column("computed_seconds", sa.Float(), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_agreement_reports_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "scope_key", name=op.f("pk_agreement_reports")),
    )
    # The subscriber that queues the refreshes starts where the log now ends, as the built-in ones did.
    op.execute(
        "INSERT INTO subscriber_positions (name, position, failures, updated_at) "
        "SELECT 'agreement_reports', COALESCE((SELECT MAX(position) FROM events), 0), 0, CURRENT_TIMESTAMP"
    )


def downgrade() -> None:
    op.execute("DELETE FROM subscriber_positions WHERE name = 'agreement_reports'")
    op.execute("DELETE FROM jobs WHERE kind = 'agreement.refresh'")
    op.drop_table("agreement_reports")
