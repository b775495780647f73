"""Opaque keyset cursors: the sort key of the last item of a page, so the next page starts right after it."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from casework.errors import InvalidCursor


def encode_cursor(*key: Any) -> str:
    values = [value.isoformat() if isinstance(value, datetime) else value for value in key]
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *, types: tuple[type, ...]) -> tuple[Any, ...]:
    """The key in ``cursor``, each part converted to the given type; InvalidCursor when it is not one of ours."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(types):
            raise ValueError("wrong length")
        return tuple(
            datetime.fromisoformat(v) if t is datetime else t(v) for v, t in zip(raw, types, strict=True)
        )
    except (ValueError, TypeError) as exc:
        raise InvalidCursor(
            "This cursor is not valid here: pass next_cursor from the previous page unchanged.",
            details={"cursor": cursor},
        ) from exc


def to_json_time(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, as every API reply writes times."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")
