"""The few statements that differ between SQLite and PostgreSQL, behind one portable function each."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import timezone
from typing import Any

from sqlalchemy import JSON, ColumnElement, Table, TextClause, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from casework.db.types import UTCDateTime


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


def upsert_adding(session: Session, model: Any, *, keys: Sequence[str], columns: Sequence[str]) -> Any:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE SET c = c + excluded.c`` for each of ``columns``: counters
    that rows add to. Execute it with the rows. Built once per table (building it, ``excluded`` among it, was
    a fifth of a decision's time: four counter tables are bumped by each)."""
    return _upsert_adding(session.get_bind().dialect.name, model.__table__, tuple(keys), tuple(columns))


@functools.lru_cache(maxsize=64)
def _upsert_adding(dialect: str, table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_={name: table.c[name] + statement.excluded[name] for name in columns}
    )


def least(session: Session, a: Any, b: Any) -> ColumnElement[Any]:
    """The smaller of two values (SQLite's two-argument ``min``, PostgreSQL's ``least``)."""
    return func.least(a, b) if _is_postgresql(session) else func.min(a, b)


def greatest(session: Session, a: Any, b: Any) -> ColumnElement[Any]:
    return func.greatest(a, b) if _is_postgresql(session) else func.max(a, b)


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def fast_insert(
    session: Session, table: Any, rows: list[dict[str, Any]], *, skip_conflicts: bool = False
) -> None:
    """A many-row INSERT handed straight to the driver's ``executemany``, for ingestion's hot path.

    SQLAlchemy's per-value bind processing was a third of ingestion's CPU (bench/ingest.py); here each column
    is converted once per row by a plain function: JSON to text, UTC datetimes to what each driver expects.
    ``skip_conflicts`` adds ``ON CONFLICT DO NOTHING``.
    """
    if not rows:
        return
    postgresql_ = _is_postgresql(session)
    columns = [column for column in table.columns if column.name in rows[0]]
    converters = [_converter(column, postgresql_) for column in columns]
    names = ", ".join(f'"{column.name}"' for column in columns)
    if postgresql_:
        marks = ", ".join("%s::jsonb" if _is_json(c) else "%s" for c in columns)
    else:
        marks = ", ".join("?" for _ in columns)
    sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})'
    if skip_conflicts:
        sql += " ON CONFLICT DO NOTHING"
    keys = [column.name for column in columns]
    values = [tuple(convert(row[key]) for key, convert in zip(keys, converters, strict=True)) for row in rows]
    session.connection().exec_driver_sql(sql, values)


def _is_json(column: Any) -> bool:
    return isinstance(column.type, JSON) or isinstance(getattr(column.type, "impl", None), JSON)


def _converter(column: Any, postgresql_: bool) -> Any:
    if _is_json(column):
        return lambda value: None if value is None else json.dumps(value)
    if isinstance(column.type, UTCDateTime):
        if postgresql_:
            return lambda value: value
        # SQLAlchemy's SQLite storage format, so these rows read back like every other.
        return lambda value: (
            None if value is None else value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        )
    return lambda value: value


def milliseconds_between(session: Session, start: Any, end: Any) -> ColumnElement[Any]:
    """``end - start`` in milliseconds, for two UTC datetime columns."""
    if _is_postgresql(session):
        return func.extract("epoch", end - start) * 1000.0
    # SQLite keeps datetimes as ISO text: julianday() reads them, in days.
    return (func.julianday(end) - func.julianday(start)) * 86_400_000.0


def contains_text(session: Session, column: Any, word: str) -> ColumnElement[bool]:
    """``column`` contains ``word``, ignoring case (ASCII case on SQLite), with ``%`` and ``_`` taken
    literally."""
    pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    if _is_postgresql(session):
        return column.ilike(pattern, escape="\\")  # type: ignore[no-any-return]
    # SQLite's LIKE already ignores ASCII case; ilike() would add lower() of every text it reads.
    return column.like(pattern, escape="\\")  # type: ignore[no-any-return]


def utc_day(session: Session, column: Any) -> ColumnElement[Any]:
    """A UTC datetime column's day, as ``YYYY-MM-DD`` text."""
    if _is_postgresql(session):
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    # SQLite keeps UTC datetimes as ISO text: the day is its first ten characters.
    return func.substr(column, 1, 10)
