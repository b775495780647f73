"""Shared field types and base classes."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from casework.text import MAX_JSON_DEPTH, json_problem

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(max_length=1_000_000)]
NonEmptyText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100_000)]
Reviewer = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]

_TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
MAX_TAGS = 20


def _tags(values: list[str]) -> list[str]:
    cleaned: list[str] = []
    for value in values:
        tag = value.strip().lower()
        if not _TAG.match(tag):
            raise ValueError(
                f"tag {value!r} is not a short slug: lowercase letters, digits, '-' and '_', at most 40 characters"
            )
        if tag not in cleaned:
            cleaned.append(tag)
    return cleaned


Tags = Annotated[list[str], Field(max_length=MAX_TAGS), AfterValidator(_tags)]


MAX_FREE_FORM_BYTES = 64 * 1024


def _bounded(value: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(value, ensure_ascii=False).encode())
    if size > MAX_FREE_FORM_BYTES:
        raise ValueError(f"at most {MAX_FREE_FORM_BYTES} bytes of JSON, not {size}")
    return value


# Free-form JSON a client attaches (a review's metadata): an object of at most 64 KiB, nested at most
# MAX_JSON_DEPTH levels (Strict checks the depth, and the text rule, of every field).
FreeForm = Annotated[
    dict[str, Any],
    AfterValidator(_bounded),
    Field(description=f"Any JSON object: at most {MAX_FREE_FORM_BYTES} bytes, {MAX_JSON_DEPTH} levels deep."),
]


class Strict(BaseModel):
    """A request body: unknown fields are refused, and every field obeys casework.text's rule (no NUL, no lone
    surrogate, finite numbers, at most MAX_JSON_DEPTH levels), so whatever is accepted can be stored on either
    database and written back in a reply."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        problem = json_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="Stable: match on it, not on the message (docs/reference.md lists them).")
    message: str
    details: dict[str, Any]


class ErrorBody(BaseModel):
    """The one shape of every error reply."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


class Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _in_utc(value: datetime | None) -> datetime | None:
    """The time in UTC (read as UTC when it names no zone); an error when UTC cannot hold it."""
    if value is None:
        return None
    try:
        return value.replace(tzinfo=value.tzinfo or timezone.utc).astimezone(timezone.utc)
    except OverflowError as exc:  # 0001-01-01T00:00+14:00 is in year 0 in UTC
        raise ValueError("the time is out of range once in UTC (years 1 to 9999)") from exc


# Query parameters every list endpoint shares.
Limit = Annotated[int, Query(ge=1, le=500, description="Items per page, at most 500.")]
Cursor = Annotated[
    str | None, Query(max_length=1000, description="next_cursor from the previous page, unchanged.")
]
# A time filter: ISO 8601, read as UTC when it names no zone.
TimeFilter = Annotated[
    datetime | None, Query(description="ISO 8601; UTC when no zone is given."), AfterValidator(_in_utc)
]
# Words to look for: a bounded number of characters (SQLite refuses LIKE patterns over 50,000 bytes).
SearchWords = Annotated[
    str | None,
    Query(max_length=1000, description="Words that must all appear in the reasoning, query or response."),
]
