"""Reading the review queue: filters, orders served by indexes, keyset pages, the review record, exports."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, select, tuple_
from sqlalchemy.orm import Session

from casework.db.dialect import json_array_contains
from casework.db.models import Review
from casework.db.review_json import review_json
from casework.db.types import utcnow
from casework.services.auth import Principal
from casework.services.pagination import decode_cursor, encode_cursor, to_json_time
from casework.services.projects import get_project

_RECORD_COLUMNS = [
    column for column in Review.__table__.columns if column.key not in ("dedupe_key", "created_by")
]


def review_record(review: Review, *, now: datetime | None = None) -> dict[str, Any]:
    """A review as the API and every export write it."""
    return record_from_columns({c.key: getattr(review, _attribute(c.key)) for c in _RECORD_COLUMNS}, now=now)


def _attribute(column: str) -> str:
    return "attributes" if column == "metadata" else column


def record_from_columns(
    values: Mapping[str, Any] | RowMapping, *, now: datetime | None = None
) -> dict[str, Any]:
    """The review record from its column values (an ORM object's, or a result row's ``_mapping``)."""
    created_at: datetime = values["created_at"]
    resolved_at: datetime | None = values["resolved_at"]
    age = ((resolved_at or now or utcnow()) - created_at).total_seconds()
    resolution = None
    if values["status"] == "resolved":
        resolution = {
            "classification": values["resolution_classification"],
            "reasoning": values["resolution_reasoning"],
            "reviewer": values["resolution_reviewer"],
            "tags": values["resolution_tags"] or [],
            "control_id": values["control_id"],
            "resolved_by": values["resolved_by"],
            "resolved_at": to_json_time(resolved_at),
            "submitted_by": values["resolution_submitted_by"],
        }
    return {
        "id": values["id"],
        "project_id": values["project_id"],
        "run_id": values["run_id"],
        "evaluator_type": values["evaluator_type"],
        "query": values["query"],
        "response": values["response"],
        "context": values["context"],
        "classification": values["classification"],
        "confidence": values["confidence"],
        "explanation": values["explanation"],
        "options": values["options"],
        "status": values["status"],
        "priority": values["priority"],
        "created_at": to_json_time(created_at),
        "age_seconds": round(max(age, 0.0), 3),
        "trace_id": values["trace_id"],
        "span_id": values["span_id"],
        "metadata": values["metadata"],
        "resolution": resolution,
    }


@dataclass
class ReviewFilters:
    project_id: str
    status: str = "pending"
    evaluator_type: str | None = None
    tag: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def _filtered(session: Session, query: Any, filters: ReviewFilters) -> Any:
    query = query.where(Review.project_id == filters.project_id)
    if filters.status != "all":
        query = query.where(Review.status == filters.status)
    if filters.evaluator_type:
        query = query.where(Review.evaluator_type == filters.evaluator_type)
    if filters.tag:
        query = query.where(json_array_contains(session, Review.resolution_tags, filters.tag))
    if filters.created_after:
        query = query.where(Review.created_at > filters.created_after)
    if filters.created_before:
        query = query.where(Review.created_at < filters.created_before)
    return query


Fetch = Callable[[Any], list[Any]]


@dataclass(frozen=True)
class _Ordering:
    """A sort order and its keyset pagination: the cursor is the sort key of the last row of a page, and
    the next page is read with index range seeks only, so page 1,000 costs what page 1 does."""

    columns: tuple[Any, ...]
    key_types: tuple[type, ...]
    key: Callable[[Any], tuple[Any, ...]]
    page: Callable[[Fetch, Any, tuple[Any, ...] | None, int], list[Any]]


def _queue_page(fetch: Fetch, query: Any, key: tuple[Any, ...] | None, limit: int) -> list[Any]:
    # Priority descends while time ascends, so no single row-value comparison continues the order. Two do:
    # the rest of this priority, then every lower one; each is a seek on ix_reviews_queue.
    if key is None:
        return fetch(query.order_by(*_QUEUE_COLUMNS).limit(limit))
    priority, created_at, review_id = key
    rows = fetch(
        query.where(
            Review.priority == priority, tuple_(Review.created_at, Review.id) > tuple_(created_at, review_id)
        )
        .order_by(Review.created_at, Review.id)
        .limit(limit)
    )
    if len(rows) < limit:
        rows += fetch(
            query.where(Review.priority < priority).order_by(*_QUEUE_COLUMNS).limit(limit - len(rows))
        )
    return rows


def _creation_page(fetch: Fetch, query: Any, key: tuple[Any, ...] | None, limit: int) -> list[Any]:
    # A row-value comparison, not "a > x OR (a = x AND b > y)": SQLite seeks the former and scans the latter.
    if key is not None:
        query = query.where(tuple_(Review.created_at, Review.id) > tuple_(*key))
    return fetch(query.order_by(Review.created_at, Review.id).limit(limit))


_QUEUE_COLUMNS = (Review.priority.desc(), Review.created_at, Review.id)
# With a status: the reviewer's order, highest priority first, then oldest (ix_reviews_queue).
_QUEUE_ORDER = _Ordering(
    columns=_QUEUE_COLUMNS,
    key_types=(int, datetime, str),
    key=lambda row: (row.priority, row.created_at, row.id),
    page=_queue_page,
)
# status=all mixes queues, and created_after asks what arrived since: creation order (ix_reviews_project_id_created_at).
_CREATION_ORDER = _Ordering(
    columns=(Review.created_at, Review.id),
    key_types=(datetime, str),
    key=lambda row: (row.created_at, row.id),
    page=_creation_page,
)


def _ordering(filters: ReviewFilters) -> _Ordering:
    return _CREATION_ORDER if filters.status == "all" or filters.created_after is not None else _QUEUE_ORDER


@dataclass
class ReviewPage:
    reviews: list[Review]
    next_cursor: str | None


def list_reviews(
    session: Session,
    *,
    principal: Principal,
    filters: ReviewFilters,
    limit: int = 50,
    cursor: str | None = None,
) -> ReviewPage:
    """With a status, highest priority first, then oldest first: the order a reviewer should work in. With
    status=all or created_after (polling for what is new), oldest first: the order they arrived in."""
    get_project(session, workspace_id=principal.workspace_id, project_id=filters.project_id)
    ordering = _ordering(filters)
    key = decode_cursor(cursor, types=ordering.key_types) if cursor else None

    def fetch(statement: Any) -> list[Any]:
        return list(session.execute(statement).scalars())

    rows = ordering.page(fetch, _filtered(session, select(Review), filters), key, limit + 1)
    next_cursor = encode_cursor(*ordering.key(rows[limit - 1])) if len(rows) > limit else None
    return ReviewPage(reviews=rows[:limit], next_cursor=next_cursor)


def export_reviews(
    session: Session, *, principal: Principal, filters: ReviewFilters, batch_size: int = 2000
) -> Iterator[list[dict[str, Any]]]:
    """Every matching review in list order, a batch of records at a time: memory stays flat however many match.

    The project is checked now, before any batch is read: a caller can still answer with an error.
    """
    get_project(session, workspace_id=principal.workspace_id, project_id=filters.project_id)
    now = utcnow()
    return (
        [record_from_columns(row._mapping, now=now) for row in rows]
        for rows in _export_batches(session, filters, list(_RECORD_COLUMNS), batch_size)
    )


def export_review_json(
    session: Session, *, principal: Principal, filters: ReviewFilters, batch_size: int = 5000
) -> Iterator[list[str]]:
    """Like :func:`export_reviews`, but each record already encoded as JSON by the database (about three times
    the throughput: bench/review_queue.py)."""
    get_project(session, workspace_id=principal.workspace_id, project_id=filters.project_id)
    document = review_json(session.get_bind().dialect.name, now=utcnow()).label("document")
    columns = [document, Review.__table__.c.priority, Review.__table__.c.created_at, Review.__table__.c.id]
    return ([row.document for row in rows] for rows in _export_batches(session, filters, columns, batch_size))


def _export_batches(
    session: Session, filters: ReviewFilters, columns: list[Any], batch_size: int
) -> Iterator[Any]:
    """Keyset batches in list order; ``columns`` must include the ordering's key columns."""
    ordering = _ordering(filters)
    base = _filtered(session, select(*columns), filters)
    key: tuple[Any, ...] | None = None

    def fetch(statement: Any) -> list[Any]:
        return list(session.execute(statement).all())

    while True:
        rows = ordering.page(fetch, base, key, batch_size)
        if rows:
            yield rows
        if len(rows) < batch_size:
            return
        key = ordering.key(rows[-1])
