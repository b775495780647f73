"""The few statements that differ between SQLite and PostgreSQL, behind one portable function each."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignoring_conflict(
    session: Session, model: Any, values: dict[str, Any], *, conflict_columns: list[str]
) -> bool:
    """``INSERT ... ON CONFLICT DO NOTHING``: True when the row was inserted, False when one already existed.

    The race-free half of get-or-create: concurrent callers never see an IntegrityError.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=conflict_columns)
        .returning(*model.__table__.primary_key.columns)
    )
    # RETURNING yields a row only when the insert happened (rowcount is not reliable for INSERT on every driver).
    return session.execute(statement).first() is not None
