"""sla: SLA policies on projects, due times on reviews, queue thresholds, and the kept daily roll-ups

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-10 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from casework.db.types import JSONType, UTCDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REVIEW_TIMES = ("due_at", "warn_at", "due_soon_sent_at", "overdue_sent_at", "paused_at")


def upgrade() -> None:
    # Plain ADD COLUMN and CREATE INDEX, never batch mode: on SQLite, batch mode copies and drops the table,
    # and dropping projects would delete every review through their ON DELETE CASCADE.
    op.add_column(
        "projects", sa.Column("sla_warning_at", sa.Float(), server_default=sa.text("0.75"), nullable=False)
    )
    op.add_column("projects", sa.Column("sla_escalation_contact", sa.String(length=300), nullable=True))
    op.add_column(
        "projects",
        sa.Column("sla_pause_when_waiting", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column(
        "projects", sa.Column("sla_overrides", JSONType, server_default=sa.text("'{}'"), nullable=False)
    )
    op.add_column("projects", sa.Column("queue_pending_threshold", sa.Integer(), nullable=True))
    op.add_column("projects", sa.Column("queue_oldest_threshold_hours", sa.Float(), nullable=True))
    op.add_column("projects", sa.Column("queue_pending_alert_at", UTCDateTime(), nullable=True))
    op.add_column("projects", sa.Column("queue_oldest_alert_at", UTCDateTime(), nullable=True))
    for name in _REVIEW_TIMES:
        op.add_column("reviews", sa.Column(name, UTCDateTime(), nullable=True))
    _backfill_due_times()
    op.create_index(
        "ix_reviews_pending_due_at",
        "reviews",
        ["project_id", "due_at", "id", "paused_at", "status"],
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_reviews_sla_warn",
        "reviews",
        ["warn_at"],
        sqlite_where=sa.text("status = 'pending' AND due_soon_sent_at IS NULL"),
        postgresql_where=sa.text("status = 'pending' AND due_soon_sent_at IS NULL"),
    )
    op.create_index(
        "ix_reviews_paused_at",
        "reviews",
        ["paused_at"],
        sqlite_where=sa.text("paused_at IS NOT NULL"),
        postgresql_where=sa.text("paused_at IS NOT NULL"),
    )
    op.create_index(
        "ix_reviews_sla_due",
        "reviews",
        ["due_at"],
        sqlite_where=sa.text("status = 'pending' AND overdue_sent_at IS NULL"),
        postgresql_where=sa.text("status = 'pending' AND overdue_sent_at IS NULL"),
    )
    op.create_table(
        "review_rollups",
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("evaluator_type", sa.String(length=200), nullable=False),
        sa.Column("reviewer", sa.String(length=300), nullable=False),
        sa.Column("evaluated", sa.Integer(), nullable=False),
        sa.Column("routed", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("resolved_human", sa.Integer(), nullable=False),
        sa.Column("resolved_memory", sa.Integer(), nullable=False),
        sa.Column("breached", sa.Integer(), nullable=False),
        sa.Column("decision_seconds", sa.Float(), nullable=False),
        sa.Column("controls_created", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_review_rollups_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "project_id", "day", "evaluator_type", "reviewer", name=op.f("pk_review_rollups")
        ),
    )
    op.create_table(
        "decision_time_buckets",
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("evaluator_type", sa.String(length=200), nullable=False),
        sa.Column("reviewer", sa.String(length=300), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_decision_time_buckets_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "project_id", "day", "evaluator_type", "reviewer", "bucket", name=op.f("pk_decision_time_buckets")
        ),
    )


def _backfill_due_times() -> None:
    """Pending reviews get the due time of the project's target (the policy every project starts with). Those
    already past their warning point or due time count as announced: the first sweep after an upgrade does not
    flood webhooks and channels with alerts about the whole backlog (the overdue lists and metrics show it)."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            "UPDATE reviews SET "
            "due_at = reviews.created_at + make_interval(secs => p.review_target_hours * 3600), "
            "warn_at = reviews.created_at + make_interval(secs => p.review_target_hours * 3600 * 0.75) "
            "FROM projects p WHERE p.id = reviews.project_id AND reviews.status = 'pending'"
        )
        now = "now()"
    else:
        # SQLAlchemy's SQLite text form, 'YYYY-MM-DD HH:MM:SS.ffffff': %f gives milliseconds, three zeros follow.
        for column, share in (("due_at", 1.0), ("warn_at", 0.75)):
            op.execute(
                f"UPDATE reviews SET {column} = strftime('%Y-%m-%d %H:%M:%f', created_at, '+' || "
                f"(SELECT review_target_hours * 3600 * {share} FROM projects WHERE projects.id = reviews.project_id)"
                " || ' seconds') || '000' WHERE status = 'pending'"
            )
        now = "strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'"
    op.execute(f"UPDATE reviews SET due_soon_sent_at = {now} WHERE status = 'pending' AND warn_at <= {now}")
    op.execute(f"UPDATE reviews SET overdue_sent_at = {now} WHERE status = 'pending' AND due_at <= {now}")


def downgrade() -> None:
    # DROP COLUMN, not batch mode (see upgrade): SQLite has had it since 3.35.
    op.drop_table("decision_time_buckets")
    op.drop_table("review_rollups")
    for index in (
        "ix_reviews_sla_due",
        "ix_reviews_paused_at",
        "ix_reviews_sla_warn",
        "ix_reviews_pending_due_at",
    ):
        op.drop_index(index, table_name="reviews")
    for name in reversed(_REVIEW_TIMES):
        op.drop_column("reviews", name)
    for name in (
        "queue_oldest_alert_at",
        "queue_oldest_threshold_hours",
        "queue_pending_alert_at",
        "queue_pending_threshold",
        "sla_overrides",
        "sla_pause_when_waiting",
        "sla_escalation_contact",
        "sla_warning_at",
    ):
        op.drop_column("projects", name)
