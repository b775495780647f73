"""A review's JSON record built by the database itself, for exports.

Building a million records in Python costs about three times what fetching them does; the database's own JSON
functions (SQLite ``json_object``, PostgreSQL ``json_build_object``) do it in C. The shape must stay that of
``casework.services.reviews.record_from_columns``: ``tests/services/test_review_export.py`` compares the two.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, Numeric, String, case, cast, func, literal, literal_column
from sqlalchemy.sql.elements import ColumnElement

from casework.db.models import Review

_ZERO_TIME = "1970-01-01 00:00:00.000000"


def review_json(dialect: str, *, now: datetime) -> ColumnElement[str]:
    """One text column: the review's record as JSON, with ``age_seconds`` counted up to ``now``."""
    return _postgresql(now) if dialect == "postgresql" else _sqlite(now)


def _fields(time: Any, age: Any, json_value: Any) -> tuple[list[Any], list[Any]]:
    t = Review.__table__.c
    record = [
        "id",
        t.id,
        "project_id",
        t.project_id,
        "run_id",
        t.run_id,
        "evaluator_type",
        t.evaluator_type,
        "query",
        t.query,
        "response",
        t.response,
        "context",
        t.context,
        "classification",
        t.classification,
        "confidence",
        t.confidence,
        "explanation",
        t.explanation,
        "options",
        json_value(t.options),
        "status",
        t.status,
        "priority",
        t.priority,
        "created_at",
        time(t.created_at),
        "age_seconds",
        age,
        "trace_id",
        t.trace_id,
        "span_id",
        t.span_id,
        "metadata",
        json_value(t.metadata),
        "kind",
        t.kind,
        "reason",
        t.reason,
        "subject_id",
        t.subject_id,
        "tier",
        t.tier,
        "suggestion",
        json_value(t.suggestion),
        "claimed_by",
        t.claimed_by,
        "claim_expires_at",
        time(t.claim_expires_at),
        "due_at",
        time(t.due_at),
        "paused_at",
        time(t.paused_at),
        "reviewers_required",
        t.reviewers_required,
        "decisions_submitted",
        t.decisions_submitted,
        "assignee",
        t.assignee,
    ]
    resolution = [
        "classification", t.resolution_classification, "reasoning", t.resolution_reasoning,
        "reviewer", t.resolution_reviewer, "tags", json_value(t.resolution_tags), "control_id", t.control_id,
        "resolved_by", t.resolved_by, "resolved_at", time(t.resolved_at), "submitted_by", t.resolution_submitted_by,
    ]  # fmt: skip
    return record, resolution


def _sqlite(now: datetime) -> ColumnElement[str]:
    t = Review.__table__.c
    now_text = literal(now.strftime("%Y-%m-%d %H:%M:%S.%f"), String)

    # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC here): make it ISO 8601 with Z.
    def time(column: Any) -> Any:
        return func.replace(column, " ", "T").concat("Z")

    age = func.round(
        (func.julianday(func.coalesce(t.resolved_at, now_text)) - func.julianday(t.created_at)) * 86400.0, 3
    )
    record, resolution = _fields(time, age, func.json)
    resolution_json = case((t.status == "resolved", func.json_object(*_literals(resolution))), else_=None)
    return func.json_object(*_literals(record), literal("resolution"), resolution_json)


def _postgresql(now: datetime) -> ColumnElement[str]:
    t = Review.__table__.c

    def time(column: Any) -> Any:
        return func.to_char(
            column.op("AT TIME ZONE")(literal_column("'UTC'")), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
        )

    elapsed = func.extract("epoch", func.coalesce(t.resolved_at, literal(now)) - t.created_at)
    age = cast(func.round(cast(elapsed, Numeric), 3), Float)
    record, resolution = _fields(time, age, lambda column: column)
    resolution_json = case(
        (t.status == "resolved", func.json_build_object(*_literals(resolution))), else_=None
    )
    return cast(func.json_build_object(*_literals(record), literal("resolution"), resolution_json), String)


def _literals(pairs: list[Any]) -> list[Any]:
    return [literal(item) if isinstance(item, str) else item for item in pairs]
