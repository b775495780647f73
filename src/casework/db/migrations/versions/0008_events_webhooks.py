"""the event log (grown from the audit trail), subscriber positions, webhooks, job dedupe keys

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from casework.db.types import JSONType, UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", BigId, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=True),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=True),
        sa.Column("type", sa.String(length=60), nullable=False),
        sa.Column("actor", sa.String(length=300), nullable=False),
        sa.Column("object_type", sa.String(length=30), nullable=False),
        sa.Column("object_id", sa.String(length=40), nullable=False),
        sa.Column("data", JSONType, nullable=False),
        sa.Column("before", JSONType, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_events_project_id_projects"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_events_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_events")),
        sa.UniqueConstraint("id", name=op.f("uq_events_id")),
    )
    with op.batch_alter_table("events") as batch:
        batch.create_index("uq_events_position", ["position"], unique=True)
        batch.create_index("ix_events_project_id_position", ["project_id", "position"])
        batch.create_index("ix_events_workspace_id_position", ["workspace_id", "position"])
        batch.create_index("ix_events_project_id_seq", ["project_id", "seq"])
        batch.create_index("ix_events_object_id", ["object_id"])
        batch.create_index(
            "ix_events_unsequenced",
            ["seq"],
            sqlite_where=sa.text("position IS NULL"),
            postgresql_where=sa.text("position IS NULL"),
        )

    # The audit trail so far becomes the start of the log, in its order.
    bind = op.get_bind()
    event_id = (
        "'evt_' || lpad(a.id::text, 26, '0')"
        if bind.dialect.name == "postgresql"
        else "'evt_' || printf('%026d', a.id)"
    )
    op.execute(
        "INSERT INTO events (seq, id, position, workspace_id, project_id, type, actor, object_type, object_id, "
        f"data, before, created_at) SELECT a.id, {event_id}, a.id, p.workspace_id, a.project_id, a.action, a.actor, "
        "a.object_type, a.object_id, COALESCE(a.after, a.before), a.before, a.created_at "
        "FROM audit_events a JOIN projects p ON p.id = a.project_id ORDER BY a.id"
    )
    if bind.dialect.name == "postgresql":
        op.execute(
            "SELECT setval(pg_get_serial_sequence('events', 'seq'), COALESCE(MAX(seq), 0) + 1, false) FROM events"
        )
    op.drop_table("audit_events")

    op.create_table(
        "subscriber_positions",
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("retry_at", UTCDateTime(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_subscriber_positions")),
    )
    # The built-in subscribers start where the log now ends: what happened before was handled already.
    op.execute(
        "INSERT INTO subscriber_positions (name, position, failures, updated_at) "
        "SELECT name, COALESCE((SELECT MAX(position) FROM events), 0), 0, CURRENT_TIMESTAMP "
        "FROM (SELECT 'memory_pass' AS name UNION ALL SELECT 'webhooks') AS builtin"
    )
    op.create_table(
        "instance_settings",
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_instance_settings")),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", JSONType, nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("previous_secret", sa.Text(), nullable=True),
        sa.Column("previous_secret_expires_at", UTCDateTime(), nullable=True),
        sa.Column("failed_in_a_row", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=300), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_webhook_endpoints_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_webhook_endpoints_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.create_index("ix_webhook_endpoints_workspace_id", ["workspace_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("endpoint_id", sa.String(length=40), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("event_position", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("event_type", sa.String(length=60), nullable=False),
        sa.Column("ordering_key", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_seq"],
            ["events.seq"],
            name=op.f("fk_webhook_deliveries_event_seq_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("endpoint_id", "event_seq", name="uq_webhook_deliveries_endpoint_id_event_seq"),
    )
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.create_index(
            "ix_webhook_deliveries_chain", ["endpoint_id", "ordering_key", "status", "event_position"]
        )
        batch.create_index("ix_webhook_deliveries_endpoint_id_created_at", ["endpoint_id", "created_at"])
    op.create_table(
        "webhook_attempts",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.String(length=40), nullable=False),
        sa.Column("attempted_at", UTCDateTime(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("response_excerpt", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_webhook_attempts_delivery_id_webhook_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    with op.batch_alter_table("webhook_attempts") as batch:
        batch.create_index("ix_webhook_attempts_delivery_id", ["delivery_id"])

    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("kind", existing_type=sa.String(length=20), type_=sa.String(length=40))
        batch.alter_column("project_id", existing_type=sa.String(length=40), nullable=True)
        batch.add_column(sa.Column("dedupe_key", sa.String(length=200), nullable=True))
        batch.create_index("uq_jobs_dedupe_key", ["dedupe_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("uq_jobs_dedupe_key")
        batch.drop_column("dedupe_key")
    op.execute("DELETE FROM jobs WHERE project_id IS NULL")
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("project_id", existing_type=sa.String(length=40), nullable=False)
        batch.alter_column("kind", existing_type=sa.String(length=40), type_=sa.String(length=20))
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
    op.drop_table("instance_settings")
    op.drop_table("subscriber_positions")
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=300), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("object_type", sa.String(length=30), nullable=False),
        sa.Column("object_id", sa.String(length=40), nullable=False),
        sa.Column("before", JSONType, nullable=True),
        sa.Column("after", JSONType, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_audit_events_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events") as batch:
        batch.create_index("ix_audit_events_project_id_id", ["project_id", "id"])
        batch.create_index("ix_audit_events_object_id", ["object_id"])
    op.execute(
        "INSERT INTO audit_events (id, project_id, actor, action, object_type, object_id, before, after, "
        "created_at) SELECT seq, project_id, actor, type, object_type, object_id, before, data, created_at "
        "FROM events WHERE project_id IS NOT NULL ORDER BY seq"
    )
    op.drop_table("events")
