"""waiting for a decision: the SLA indexes cover reviews waiting for a lead (needs_adjudication) as well as pending;
integration links say when the tool closed their ticket

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-12 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from casework.db.types import UTCDateTime

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The predicates as they were (0014) and as they are now (casework.db.models.WAITING_PREDICATE), written out here
# so that this migration stays what it was when the models change again.
_PENDING = "status = 'pending'"
_WAITING = "(status = 'pending' OR status = 'needs_adjudication')"


def _indexes(waiting: str) -> list[tuple[str, list[str], str]]:
    """(name, columns, predicate) of the SLA indexes over the reviews ``waiting`` selects."""
    due_at = "ix_reviews_waiting_due_at" if waiting == _WAITING else "ix_reviews_pending_due_at"
    return [
        (due_at, ["project_id", "due_at", "id", "paused_at", "status"], waiting),
        ("ix_reviews_sla_warn", ["warn_at"], f"{waiting} AND due_soon_sent_at IS NULL"),
        (
            "ix_reviews_paused_at",
            ["paused_at"],
            f"paused_at IS NOT NULL AND {waiting}" if waiting == _WAITING else "paused_at IS NOT NULL",
        ),
        ("ix_reviews_sla_due", ["due_at"], f"{waiting} AND overdue_sent_at IS NULL"),
    ]


def _replace(old: str, new: str) -> None:
    # Plain DROP and CREATE INDEX, never batch mode (see 0014: batch mode copies and drops the table).
    for name, _, _ in _indexes(old):
        op.drop_index(name, table_name="reviews")
    for name, columns, where in _indexes(new):
        op.create_index(
            name, "reviews", columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where)
        )


def upgrade() -> None:
    # Reviews waiting for a lead already past their warning point or due time count as announced (as 0014 did for
    # pending ones): the first sweep after the upgrade does not flood webhooks and channels with old news.
    if op.get_bind().dialect.name == "postgresql":
        now = "now()"
    else:
        now = "strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'"
    waiting_for_a_lead = "status = 'needs_adjudication' AND paused_at IS NULL"
    op.execute(
        f"UPDATE reviews SET due_soon_sent_at = {now} "
        f"WHERE {waiting_for_a_lead} AND due_soon_sent_at IS NULL AND warn_at <= {now}"
    )
    op.execute(
        f"UPDATE reviews SET overdue_sent_at = {now} "
        f"WHERE {waiting_for_a_lead} AND overdue_sent_at IS NULL AND due_at <= {now}"
    )
    _replace(_PENDING, _WAITING)
    # Plain ADD COLUMN (see 0014). Links already there count as open: what the tool said before was not kept.
    op.add_column("integration_links", sa.Column("closed_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    op.drop_column("integration_links", "closed_at")
    _replace(_WAITING, _PENDING)
