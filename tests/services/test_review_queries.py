"""The queue's queries use indexes, on both databases, whatever the volume."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql, sqlite

from casework.db.engine import Database
from casework.db.models import Review
from casework.services.reviews import ReviewFilters, _filtered, _ordering

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def plan(database: Database, filters: ReviewFilters) -> str:
    with database.session(write=False) as session:
        ordering = _ordering(filters)
        query = _filtered(session, select(Review.id), filters).order_by(*ordering.columns).limit(51)
        dialect = postgresql.dialect() if database.dialect == "postgresql" else sqlite.dialect()
        sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        if database.dialect == "postgresql":
            session.execute(text("SET LOCAL enable_seqscan = off"))  # an empty table: ask what it *can* use
            return "\n".join(row[0] for row in session.execute(text("EXPLAIN " + sql)))
        return "\n".join(row[-1] for row in session.execute(text("EXPLAIN QUERY PLAN " + sql)))


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        (ReviewFilters(project_id="p", status="pending"), "ix_reviews_queue"),
        (ReviewFilters(project_id="p", status="resolved"), "ix_reviews_queue"),
        (ReviewFilters(project_id="p", status="all"), "ix_reviews_project_id_created_at"),
        (
            ReviewFilters(project_id="p", status="pending", created_after=NOW),
            "ix_reviews_project_id_created_at",
        ),
    ],
)
def test_listing_uses_an_index_and_never_sorts(
    database: Database, filters: ReviewFilters, index: str
) -> None:
    query_plan = plan(database, filters)
    assert index in query_plan, query_plan
    assert "TEMP B-TREE" not in query_plan and "Sort" not in query_plan, query_plan
