"""Shared field types and base classes."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated

from fastapi import Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

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


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _assume_utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


# Query parameters every list endpoint shares.
Limit = Annotated[int, Query(ge=1, le=500, description="Items per page, at most 500.")]
Cursor = Annotated[str | None, Query(description="next_cursor from the previous page.")]
# A time filter: ISO 8601, read as UTC when it names no zone.
TimeFilter = Annotated[
    datetime | None, Query(description="ISO 8601; UTC when no zone is given."), AfterValidator(_assume_utc)
]
