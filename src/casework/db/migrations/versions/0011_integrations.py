"""integrations: Slack, Teams, Jira, ServiceNow, Zendesk; their deliveries, attempts and links to reviews

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-09 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from casework.db.types import JSONType, UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "integrations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("events", JSONType, nullable=False),
        sa.Column("config", JSONType, nullable=False),
        sa.Column("secrets", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=300), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_integrations_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_integrations_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integrations")),
    )
    with op.batch_alter_table("integrations") as batch:
        batch.create_index("ix_integrations_workspace_id", ["workspace_id"])
    op.create_table(
        "integration_deliveries",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("integration_id", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("review_id", sa.String(length=40), nullable=True),
        sa.Column("event_id", sa.String(length=40), nullable=True),
        sa.Column("ordering_key", sa.String(length=80), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_integration_deliveries_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_deliveries")),
        sa.UniqueConstraint("integration_id", "dedupe_key", name="uq_integration_deliveries_integration_id"),
    )
    with op.batch_alter_table("integration_deliveries") as batch:
        batch.create_index(
            "ix_integration_deliveries_chain", ["integration_id", "ordering_key", "status", "position"]
        )
        batch.create_index(
            "ix_integration_deliveries_integration_id_created_at", ["integration_id", "created_at"]
        )
    op.create_table(
        "integration_attempts",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.String(length=40), nullable=False),
        sa.Column("attempted_at", UTCDateTime(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("response_excerpt", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["integration_deliveries.id"],
            name=op.f("fk_integration_attempts_delivery_id_integration_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_attempts")),
    )
    with op.batch_alter_table("integration_attempts") as batch:
        batch.create_index("ix_integration_attempts_delivery_id", ["delivery_id"])
    op.create_table(
        "integration_links",
        sa.Column("integration_id", sa.String(length=40), nullable=False),
        sa.Column("review_id", sa.String(length=40), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("data", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_integration_links_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["review_id"],
            ["reviews.id"],
            name=op.f("fk_integration_links_review_id_reviews"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("integration_id", "review_id", name=op.f("pk_integration_links")),
    )
    with op.batch_alter_table("integration_links") as batch:
        batch.create_index(
            "ix_integration_links_integration_id_external_id", ["integration_id", "external_id"]
        )
    # The integrations subscriber starts where the log now ends, as the built-in ones did.
    op.execute(
        "INSERT INTO subscriber_positions (name, position, failures, updated_at) "
        "SELECT 'integrations', COALESCE((SELECT MAX(position) FROM events), 0), 0, CURRENT_TIMESTAMP"
    )


def downgrade() -> None:
    op.execute("DELETE FROM subscriber_positions WHERE name = 'integrations'")
    op.execute("DELETE FROM jobs WHERE kind LIKE 'integration.%'")
    op.drop_table("integration_links")
    op.drop_table("integration_attempts")
    op.drop_table("integration_deliveries")
    op.drop_table("integrations")
