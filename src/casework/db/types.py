"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in, timezone-aware UTC datetimes out.

    SQLite has no time zone type and hands back naive values; this restores UTC so that code and JSON never
    see a naive datetime.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)  # type: ignore[no-any-return]
        return value.astimezone(timezone.utc)  # type: ignore[no-any-return]


# JSONB on PostgreSQL (indexable, compact); JSON text on SQLite.
JSONType = JSON().with_variant(JSONB(), "postgresql")


def _system_clock() -> datetime:
    return datetime.now(timezone.utc)


_clock: Callable[[], datetime] = _system_clock


def utcnow() -> datetime:
    """The current time, as every service reads it: from the system clock, or from the clock a test set."""
    return _clock()


def set_clock(clock: Callable[[], datetime] | None) -> None:
    """Make :func:`utcnow` read ``clock`` (None: the system clock again). For tests that move time on instead of
    sleeping (SLA due times, sweeps); it must return timezone-aware UTC datetimes."""
    global _clock
    _clock = clock or _system_clock
