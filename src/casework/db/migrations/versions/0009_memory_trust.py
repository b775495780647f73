"""memory that is right when it decides alone: decisions history, claims, suggestions, spot checks,
evidence, memory's own word statistics, evaluator memory settings

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 07:00:00
"""

from collections import Counter
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from casework.db import search
from casework.db.types import JSONType, UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("reviews") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=20), server_default="review", nullable=False))
        batch.add_column(
            sa.Column("reason", sa.String(length=20), server_default="ambiguous", nullable=False)
        )
        batch.add_column(sa.Column("subject_id", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("suggestion", JSONType, nullable=True))
        batch.add_column(sa.Column("claimed_by", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("claim_expires_at", UTCDateTime(), nullable=True))
    op.execute(
        "UPDATE reviews SET reason = 'manual' WHERE metadata IS NULL OR metadata::text NOT LIKE '%evaluation_id%'"
        if op.get_bind().dialect.name == "postgresql"
        else "UPDATE reviews SET reason = 'manual' WHERE metadata IS NULL OR metadata NOT LIKE '%evaluation_id%'"
    )

    with op.batch_alter_table("controls") as batch:
        batch.add_column(sa.Column("attention", JSONType, server_default="[]", nullable=False))

    with op.batch_alter_table("evaluators") as batch:
        batch.add_column(
            sa.Column("memory_mode", sa.String(length=10), server_default="resolve", nullable=False)
        )
        batch.add_column(
            sa.Column("memory_precision_target", sa.Float(), server_default=sa.text("0.97"), nullable=False)
        )
        batch.add_column(sa.Column("memory_k", sa.Integer(), server_default=sa.text("5"), nullable=False))
        batch.add_column(
            sa.Column("memory_min_score", sa.Float(), server_default=sa.text("0.1"), nullable=False)
        )
        batch.add_column(
            sa.Column("memory_candidates", sa.Integer(), server_default=sa.text("2000"), nullable=False)
        )
        batch.add_column(sa.Column("spot_check_rate", sa.Float(), nullable=True))
        batch.add_column(sa.Column("judge_spot_check_rate", sa.Float(), nullable=True))
        batch.add_column(
            sa.Column("ambiguity_mode", sa.String(length=10), server_default="fixed", nullable=False)
        )
        batch.add_column(sa.Column("target_agreement", sa.Float(), nullable=True))

    with op.batch_alter_table("evaluations") as batch:
        batch.add_column(sa.Column("superseded_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("superseded_reason", sa.Text(), nullable=True))

    op.create_table(
        "decisions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("review_id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("by", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("classification", sa.String(length=200), nullable=False),
        sa.Column("reasoning", sa.Text(), nullable=False),
        sa.Column("reviewer", sa.String(length=300), nullable=False),
        sa.Column("tags", JSONType, nullable=False),
        sa.Column("submitted_by", sa.String(length=300), nullable=False),
        sa.Column("control_id", sa.String(length=40), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("votes", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("ended_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_decisions_project_id_projects"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["review_id"], ["reviews.id"], name=op.f("fk_decisions_review_id_reviews"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
    )
    with op.batch_alter_table("decisions") as batch:
        batch.create_index("ix_decisions_review_id_created_at", ["review_id", "created_at"])
    op.create_table(
        "decision_controls",
        sa.Column("decision_id", sa.String(length=40), nullable=False),
        sa.Column("control_id", sa.String(length=40), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["decisions.id"],
            name=op.f("fk_decision_controls_decision_id_decisions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("decision_id", "control_id", name=op.f("pk_decision_controls")),
    )
    with op.batch_alter_table("decision_controls") as batch:
        batch.create_index("ix_decision_controls_control_id", ["control_id"])
    op.create_table(
        "evaluation_controls",
        sa.Column("evaluation_id", sa.String(length=40), nullable=False),
        sa.Column("control_id", sa.String(length=40), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["evaluation_id"],
            ["evaluations.id"],
            name=op.f("fk_evaluation_controls_evaluation_id_evaluations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("evaluation_id", "control_id", name=op.f("pk_evaluation_controls")),
    )
    with op.batch_alter_table("evaluation_controls") as batch:
        batch.create_index("ix_evaluation_controls_control_id", ["control_id"])
    op.create_table(
        "memory_terms",
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("evaluator_type", sa.String(length=200), nullable=False),
        sa.Column("term", sa.String(length=100), nullable=False),
        sa.Column("df", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_memory_terms_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "evaluator_type", "term", name=op.f("pk_memory_terms")),
    )
    op.create_table(
        "memory_evidence",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("evaluator_type", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.String(length=10), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("review_id", sa.String(length=40), nullable=False),
        sa.Column("method", sa.String(length=80), nullable=False),
        sa.Column("predicted", sa.String(length=200), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("human", sa.String(length=200), nullable=False),
        sa.Column("correct", sa.Boolean(), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_memory_evidence_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memory_evidence")),
        sa.UniqueConstraint("subject", "source", "review_id", "method", name="uq_memory_evidence_sample"),
    )
    with op.batch_alter_table("memory_evidence") as batch:
        batch.create_index(
            "ix_memory_evidence_scope", ["project_id", "evaluator_type", "subject", "method", "decided_at"]
        )

    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for statement in search.V1_POSTGRESQL_DROP + search.POSTGRESQL_SCHEMA:
            op.execute(statement)

    # The new subscribers start where the log now ends.
    op.execute(
        "INSERT INTO subscriber_positions (name, position, failures, updated_at) "
        "SELECT name, COALESCE((SELECT MAX(position) FROM events), 0), 0, CURRENT_TIMESTAMP "
        "FROM (SELECT 'evidence' AS name UNION ALL SELECT 'provenance') AS builtin"
    )
    # The history so far: each resolved review's resolution is its (current) decision.
    op.execute(
        "INSERT INTO decisions (id, review_id, project_id, by, status, classification, reasoning, reviewer, tags, "
        "submitted_by, control_id, confidence, votes, created_at) "
        "SELECT 'dec_' || id, id, project_id, resolved_by, 'current', resolution_classification, "
        "COALESCE(resolution_reasoning, ''), COALESCE(resolution_reviewer, ''), "
        + (
            "COALESCE(resolution_tags, '[]'::jsonb), "
            if bind.dialect.name == "postgresql"
            else "COALESCE(resolution_tags, '[]'), "
        )
        + "COALESCE(resolution_submitted_by, ''), control_id, NULL, "
        + ("'[]'::jsonb, " if bind.dialect.name == "postgresql" else "'[]', ")
        + "resolved_at FROM reviews WHERE status = 'resolved'"
    )
    # Memory's word statistics for the controls already there.
    from casework.memory.similarity import control_terms

    counts: Counter[tuple[str, str, str]] = Counter()
    rows = bind.execute(
        sa.text(
            "SELECT project_id, evaluator_type, query, response, reasoning, tags FROM controls WHERE status = 'active'"
        )
    )
    for project_id, evaluator_type, query, response, reasoning, tags in rows:
        if isinstance(tags, str):
            import json

            tags = json.loads(tags)
        for term in control_terms(query, response, reasoning, tags or []):
            counts[(project_id, evaluator_type, term)] += 1
    if counts:
        table = sa.table(
            "memory_terms",
            sa.column("project_id"),
            sa.column("evaluator_type"),
            sa.column("term"),
            sa.column("df"),
        )
        op.bulk_insert(
            table,
            [{"project_id": p, "evaluator_type": e, "term": t, "df": n} for (p, e, t), n in counts.items()],
        )


def downgrade() -> None:
    op.execute("DELETE FROM subscriber_positions WHERE name IN ('evidence', 'provenance')")
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for statement in search.POSTGRESQL_DROP + search.V1_POSTGRESQL_SCHEMA:
            op.execute(statement)
    op.drop_table("memory_evidence")
    op.drop_table("memory_terms")
    op.drop_table("evaluation_controls")
    op.drop_table("decision_controls")
    op.drop_table("decisions")
    with op.batch_alter_table("evaluations") as batch:
        batch.drop_column("superseded_reason")
        batch.drop_column("superseded_at")
    with op.batch_alter_table("evaluators") as batch:
        for column in (
            "target_agreement",
            "ambiguity_mode",
            "judge_spot_check_rate",
            "spot_check_rate",
            "memory_candidates",
            "memory_min_score",
            "memory_k",
            "memory_precision_target",
            "memory_mode",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("controls") as batch:
        batch.drop_column("attention")
    with op.batch_alter_table("reviews") as batch:
        for column in ("claim_expires_at", "claimed_by", "suggestion", "subject_id", "reason", "kind"):
            batch.drop_column(column)
