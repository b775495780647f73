"""Reading the review queue: filters, orders served by indexes, keyset pages, the review record, exports."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, and_, exists, or_, select, text, tuple_
from sqlalchemy.orm import Session

from casework.db.dialect import contains_text, json_array_contains
from casework.db.models import Decision, Review
from casework.db.review_json import review_json
from casework.db.types import utcnow
from casework.services import sla
from casework.services.auth import Principal
from casework.services.pagination import decode_cursor, encode_cursor, to_json_time
from casework.services.projects import get_project

_PENDING = text("reviews.status = 'pending'")
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
        "kind": values["kind"],
        "reason": values["reason"],
        "subject_id": values["subject_id"],
        "tier": values["tier"],
        "suggestion": values["suggestion"],
        "claimed_by": values["claimed_by"],
        "claim_expires_at": to_json_time(values["claim_expires_at"]),
        "due_at": to_json_time(values["due_at"]),
        "paused_at": to_json_time(values["paused_at"]),
        "reviewers_required": values["reviewers_required"],
        "decisions_submitted": values["decisions_submitted"],
        "assignee": values["assignee"],
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
    resolved_by: str | None = None  # "human" | "memory"
    q: str | None = None  # words that must all appear in the query, response or explanation
    due_before: datetime | None = None  # pending reviews whose decision is due before this time
    # Reviews waiting for a decision past their due time (casework.services.sla.overdue_now: a paused clock is not
    # overdue), soonest due first; with status "all", both pending and needs_adjudication.
    overdue: bool = False
    sort: str = "queue"  # "queue" (priority, then oldest) or "due" (soonest due first)
    assigned_to: str | None = None  # the assignee's name ("me" is resolved by the caller first)
    needs_my_decision: bool = False  # pending reviews the caller has not given a decision on
    # Set from needs_my_decision by for_caller: the caller's (name, key identity).
    needs_decision_of: tuple[str, str] | None = None


ME = "me"


def for_caller(filters: ReviewFilters, principal: Principal) -> ReviewFilters:
    """``assigned_to=me`` and ``needs_my_decision`` name the caller: their key's label (the web sign-in's
    name), and for decisions also the key that sent them."""
    if filters.assigned_to == ME:
        filters = replace(filters, assigned_to=principal.label)
    if filters.needs_my_decision:
        filters = replace(filters, needs_decision_of=(principal.label, principal.identity))
    return filters


# A search is a scan of the filtered queue in its order, stopping at a page of matches: bounded words keep
# each row's test cheap (and SQLite's LIKE patterns small).
SEARCH_MAX_WORDS = 8
SEARCH_MAX_WORD_LENGTH = 60


def search_words(q: str | None) -> list[str]:
    words = [w[:SEARCH_MAX_WORD_LENGTH] for w in (q or "").split()]
    return list(dict.fromkeys(words))[:SEARCH_MAX_WORDS]


def _filtered(session: Session, query: Any, filters: ReviewFilters) -> Any:
    query = query.where(Review.project_id == filters.project_id)
    if filters.status == "pending":
        query = query.where(_PENDING)  # a literal: SQLite then may use the partial indexes on pending reviews
    elif filters.status != "all":
        query = query.where(Review.status == filters.status)
    if filters.evaluator_type:
        query = query.where(Review.evaluator_type == filters.evaluator_type)
    if filters.tag:
        query = query.where(json_array_contains(session, Review.resolution_tags, filters.tag))
    if filters.created_after:
        query = query.where(Review.created_at > filters.created_after)
    if filters.created_before:
        query = query.where(Review.created_at < filters.created_before)
    if filters.resolved_by:
        query = query.where(Review.resolved_by == filters.resolved_by)
    if filters.due_before is not None:
        query = query.where(Review.due_at < filters.due_before)
    if filters.overdue:
        query = query.where(*sla.overdue_now(utcnow()))
    if filters.sort == "due":
        query = query.where(Review.due_at.is_not(None))
    if filters.assigned_to:
        query = query.where(Review.assignee == filters.assigned_to)
    if filters.needs_decision_of:
        name, identity = filters.needs_decision_of
        mine = exists().where(
            and_(
                Decision.review_id == Review.id,
                Decision.status == "submitted",
                or_(Decision.reviewer == name, Decision.submitted_by == identity),
            )
        )
        query = query.where(Review.status == "pending", ~mine)
    for word in search_words(filters.q):
        query = query.where(
            or_(
                contains_text(session, Review.query, word),
                contains_text(session, Review.response, word),
                contains_text(session, Review.explanation, word),
            )
        )
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


# sort=due: soonest due first (ix_reviews_waiting_due_at); reviews without a due time are left out.
_DUE_ORDER = _Ordering(
    columns=(Review.due_at, Review.id),
    key_types=(datetime, str),
    key=lambda row: (row.due_at, row.id),
    page=lambda fetch, query, key, limit: fetch(
        (query if key is None else query.where(tuple_(Review.due_at, Review.id) > tuple_(*key)))
        .order_by(Review.due_at, Review.id)
        .limit(limit)
    ),
)


def _ordering(filters: ReviewFilters) -> _Ordering:
    # What is overdue, in one queue or both (pending, needs_adjudication), is listed by due time: read from the
    # index of the reviews waiting for a decision, never walking the project's resolved ones, never sorting.
    if filters.sort == "due" or filters.overdue:
        return _DUE_ORDER
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
    filters = for_caller(filters, principal)
    ordering = _ordering(filters)
    key = decode_cursor(cursor, types=ordering.key_types) if cursor else None

    def fetch(statement: Any) -> list[Any]:
        return list(session.execute(statement).scalars())

    rows = ordering.page(fetch, _filtered(session, select(Review), filters), key, limit + 1)
    next_cursor = encode_cursor(*ordering.key(rows[limit - 1])) if len(rows) > limit else None
    return ReviewPage(reviews=rows[:limit], next_cursor=next_cursor)


# Rows per batch of an export: memory stays flat however many match. Read when an export starts (tests set them
# small, so that a few reviews cross many batches).
EXPORT_BATCH_ROWS = 2000
EXPORT_JSON_BATCH_ROWS = 5000


def export_reviews(
    session: Session, *, principal: Principal, filters: ReviewFilters, batch_size: int | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Every matching review in list order, a batch of records at a time: memory stays flat however many match.

    The project is checked now, before any batch is read: a caller can still answer with an error.
    """
    get_project(session, workspace_id=principal.workspace_id, project_id=filters.project_id)
    filters = for_caller(filters, principal)
    now = utcnow()
    return (
        [record_from_columns(row._mapping, now=now) for row in rows]
        for rows in _export_batches(session, filters, list(_RECORD_COLUMNS), batch_size or EXPORT_BATCH_ROWS)
    )


def export_review_json(
    session: Session, *, principal: Principal, filters: ReviewFilters, batch_size: int | None = None
) -> Iterator[list[str]]:
    """Like :func:`export_reviews`, but each record already encoded as JSON by the database (about three times
    the throughput: bench/review_queue.py)."""
    get_project(session, workspace_id=principal.workspace_id, project_id=filters.project_id)
    filters = for_caller(filters, principal)
    document = review_json(session.get_bind().dialect.name, now=utcnow()).label("document")
    table = Review.__table__.c
    columns = [document, table.priority, table.created_at, table.due_at, table.id]
    batches = _export_batches(session, filters, columns, batch_size or EXPORT_JSON_BATCH_ROWS)
    return ([row.document for row in rows] for rows in batches)


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
