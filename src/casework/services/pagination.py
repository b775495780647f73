"""Opaque keyset cursors: the sort key of the last item of a page, so the next page starts right after it."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Select, tuple_
from sqlalchemy.orm import Session

from casework.errors import InvalidCursor
from casework.text import text_problem

# The parts of a key: ids are short strings, counters fit a database's 64-bit INTEGER.
_MAX_ID_LENGTH = 200
_MAX_INTEGER = 2**63 - 1


def encode_cursor(*key: Any) -> str:
    values = [value.isoformat() if isinstance(value, datetime) else value for value in key]
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *, types: tuple[type, ...]) -> tuple[Any, ...]:
    """The key in ``cursor``, each part of the given type (datetime, str or int) exactly as :func:`encode_cursor`
    writes it; InvalidCursor when it is not one of ours. A cursor is client input like any other: each part is
    checked, never converted into something the database would choke on."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(types):
            raise ValueError("wrong length")
        return tuple(_part(value, kind) for value, kind in zip(raw, types, strict=True))
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise InvalidCursor(
            "This cursor is not valid here: pass next_cursor from the previous page unchanged.",
            details={"cursor": cursor if text_problem(cursor) is None else None},
        ) from exc


def _part(value: Any, kind: type) -> Any:
    if kind is datetime:
        if not isinstance(value, str):
            raise TypeError("a time is written as text")
        when = datetime.fromisoformat(value)
        if when.tzinfo is None:
            raise ValueError("a time without a zone")
        return when.astimezone(timezone.utc)  # OverflowError past year 9999 or before year 1
    if kind is str:
        if not isinstance(value, str) or len(value) > _MAX_ID_LENGTH or text_problem(value):
            raise ValueError("not an id")
        return value
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool) or abs(value) > _MAX_INTEGER:
            raise ValueError("not a whole number")
        return value
    raise TypeError(f"no cursor part of type {kind.__name__}")


def to_json_time(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, as every API reply writes times."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def newest_first(
    session: Session, query: Select[Any], columns: tuple[Any, Any], *, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """One page of ``query``'s rows, newest first by ``columns`` (a time column, then a string id to break
    ties), and the cursor of the next page."""
    time_column, id_column = columns
    if cursor:
        when, last_id = decode_cursor(cursor, types=(datetime, str))
        query = query.where(tuple_(time_column, id_column) < tuple_(when, last_id))
    rows = list(
        session.execute(query.order_by(time_column.desc(), id_column.desc()).limit(limit + 1)).scalars()
    )
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor(getattr(last, time_column.key), getattr(last, id_column.key))
