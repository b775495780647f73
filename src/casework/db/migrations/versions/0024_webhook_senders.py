"""webhook senders: one job per endpoint sends its pending deliveries in batches (the endpoint names it), and
an index on each endpoint's pending deliveries in log order, what that job reads

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.add_column(sa.Column("sender_job_id", sa.String(length=40), nullable=True))
    op.create_index(
        "ix_webhook_deliveries_pending",
        "webhook_deliveries",
        ["endpoint_id", "event_position"],
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    )
    # Deliveries queued before this version each have a job of their own ({"delivery_id": ...}): the sender
    # takes such a job as a wake-up for its delivery's endpoint, so nothing queued is lost in the upgrade.


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_pending", table_name="webhook_deliveries")
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.drop_column("sender_job_id")
