"""The few statements that differ between SQLite and PostgreSQL, behind one portable function each."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, TextClause, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignoring_conflict(
    session: Session,
    model: Any,
    values: dict[str, Any],
    *,
    conflict_columns: list[str],
    conflict_where: ColumnElement[bool] | TextClause | None = None,
) -> bool:
    """``INSERT ... ON CONFLICT DO NOTHING``: True when the row was inserted, False when one already existed.

    The race-free half of get-or-create: concurrent callers never see an IntegrityError. ``conflict_where`` names
    a partial unique index by its predicate.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=conflict_columns, index_where=conflict_where)
        .returning(*model.__table__.primary_key.columns)
    )
    # RETURNING yields a row only when the insert happened (rowcount is not reliable for INSERT on every driver).
    return session.execute(statement).first() is not None


def json_array_contains(session: Session, column: Any, value: str) -> ColumnElement[bool]:
    """True where the JSON array in ``column`` holds the string ``value``."""
    if session.get_bind().dialect.name == "postgresql":
        return column.op("@>")(func.jsonb_build_array(value))  # type: ignore[no-any-return]
    element = func.json_each(column).table_valued("value")
    return exists(select(1).select_from(element).where(element.c.value == value))


def insert_statement(session: Session, model: Any) -> Any:
    """The dialect's ``INSERT``, which has ``on_conflict_do_nothing`` and ``on_conflict_do_update``."""
    return postgresql.insert(model) if _is_postgresql(session) else sqlite.insert(model)


def least(session: Session, a: Any, b: Any) -> ColumnElement[Any]:
    """The smaller of two values (SQLite's two-argument ``min``, PostgreSQL's ``least``)."""
    return func.least(a, b) if _is_postgresql(session) else func.min(a, b)


def greatest(session: Session, a: Any, b: Any) -> ColumnElement[Any]:
    return func.greatest(a, b) if _is_postgresql(session) else func.max(a, b)


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"
