"""golden sets: versioned items with the human answer, regression runs and their results; evaluator rollbacks

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from casework.db.types import JSONType, UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Plain ADD COLUMN: batch mode could re-create evaluators on SQLite, and dropping the old table would cascade.
    op.add_column("evaluators", sa.Column("restored_from", sa.Integer(), nullable=True))
    op.create_table(
        "golden_sets",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("thresholds", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=300), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_golden_sets_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_golden_sets")),
        sa.UniqueConstraint("project_id", "name", name="uq_golden_sets_project_id_name"),
    )
    op.create_table(
        "golden_set_versions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("golden_set_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("source", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["golden_set_id"],
            ["golden_sets.id"],
            name=op.f("fk_golden_set_versions_golden_set_id_golden_sets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_golden_set_versions")),
        sa.UniqueConstraint("golden_set_id", "version", name="uq_golden_set_versions_golden_set_id_version"),
    )
    op.create_table(
        "golden_items",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("golden_set_id", sa.String(length=40), nullable=False),
        sa.Column("first_version", sa.Integer(), nullable=False),
        sa.Column("last_version", sa.Integer(), nullable=True),
        sa.Column("evaluator_type", sa.String(length=200), nullable=True),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("context", sa.Text(), nullable=True),
        sa.Column("expected", sa.String(length=200), nullable=False),
        sa.Column("source_review_id", sa.String(length=40), nullable=True),
        sa.Column("source_control_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["golden_set_id"],
            ["golden_sets.id"],
            name=op.f("fk_golden_items_golden_set_id_golden_sets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_golden_items")),
    )
    with op.batch_alter_table("golden_items") as batch:
        batch.create_index("ix_golden_items_golden_set_id_id", ["golden_set_id", "id"])
    op.create_table(
        "golden_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("golden_set_id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("memory", sa.Boolean(), nullable=False),
        sa.Column("evaluators", JSONType, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("metrics", JSONType, nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=300), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["golden_set_id"],
            ["golden_sets.id"],
            name=op.f("fk_golden_runs_golden_set_id_golden_sets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_golden_runs_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_golden_runs")),
    )
    with op.batch_alter_table("golden_runs") as batch:
        batch.create_index("ix_golden_runs_golden_set_id_created_at", ["golden_set_id", "created_at"])
    op.create_table(
        "golden_results",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("item_id", sa.String(length=40), nullable=False),
        sa.Column("evaluator_id", sa.String(length=40), nullable=False),
        sa.Column("expected", sa.String(length=200), nullable=False),
        sa.Column("classification", sa.String(length=200), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("ambiguous", sa.Boolean(), nullable=False),
        sa.Column("reevaluated", sa.Boolean(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["golden_runs.id"],
            name=op.f("fk_golden_results_run_id_golden_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_golden_results")),
        sa.UniqueConstraint(
            "run_id", "item_id", "evaluator_id", name="uq_golden_results_run_id_item_id_evaluator_id"
        ),
    )


def downgrade() -> None:
    op.execute("DELETE FROM jobs WHERE kind = 'golden.run'")
    op.drop_table("golden_results")
    op.drop_table("golden_runs")
    op.drop_table("golden_items")
    op.drop_table("golden_set_versions")
    op.drop_table("golden_sets")
    op.drop_column("evaluators", "restored_from")
