"""evaluators, evaluations, full-text search over controls

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 20:33:44.106521
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import casework.db.types
from casework.db import search

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "evaluators",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.Column(
            "options",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("evaluation_system_prompt", sa.Text(), nullable=False),
        sa.Column("evaluation_human_prompt", sa.Text(), nullable=False),
        sa.Column("reeval_system_prompt", sa.Text(), nullable=False),
        sa.Column("reeval_human_prompt", sa.Text(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("ambiguity_threshold", sa.Float(), nullable=False),
        sa.Column("reeval", sa.String(length=20), nullable=False),
        sa.Column("created_at", casework.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_evaluators_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluators")),
        sa.UniqueConstraint("project_id", "name", "version", name="uq_evaluators_project_id_name_version"),
    )
    op.create_table(
        "evaluations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=True),
        sa.Column("evaluator_id", sa.String(length=40), nullable=False),
        sa.Column("evaluator_type", sa.String(length=200), nullable=False),
        sa.Column("evaluator_version", sa.Integer(), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("context", sa.Text(), nullable=True),
        sa.Column("trace_id", sa.String(length=64), nullable=True),
        sa.Column("span_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("classification", sa.String(length=200), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("explanation", sa.Text(), nullable=True),
        sa.Column("ambiguous", sa.Boolean(), nullable=False),
        sa.Column("reevaluated", sa.Boolean(), nullable=False),
        sa.Column("initial_classification", sa.String(length=200), nullable=True),
        sa.Column("initial_confidence", sa.Float(), nullable=True),
        sa.Column("initial_explanation", sa.Text(), nullable=True),
        sa.Column(
            "memory_control_ids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("review_id", sa.String(length=40), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", casework.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["evaluator_id"],
            ["evaluators.id"],
            name=op.f("fk_evaluations_evaluator_id_evaluators"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_evaluations_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_evaluations_run_id_runs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluations")),
    )
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_evaluations_project_id_created_at", ["project_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_evaluations_project_id_evaluator_type_created_at",
            ["project_id", "evaluator_type", "created_at"],
            unique=False,
        )

    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reviews_queue"))
        batch_op.create_index(
            "ix_reviews_queue",
            ["project_id", "status", sa.literal_column("priority DESC"), "created_at", "id"],
            unique=False,
        )

    for statement in (
        search.V1_POSTGRESQL_SCHEMA if op.get_bind().dialect.name == "postgresql" else search.SQLITE_SCHEMA
    ):
        op.execute(statement)


def downgrade() -> None:
    for statement in (
        search.V1_POSTGRESQL_DROP if op.get_bind().dialect.name == "postgresql" else search.SQLITE_DROP
    ):
        op.execute(statement)
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_index("ix_reviews_queue")
        batch_op.create_index(
            batch_op.f("ix_reviews_queue"),
            ["project_id", "status", "priority", "created_at", "id"],
            unique=False,
        )

    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_index("ix_evaluations_project_id_evaluator_type_created_at")
        batch_op.drop_index("ix_evaluations_project_id_created_at")

    op.drop_table("evaluations")
    op.drop_table("evaluators")
