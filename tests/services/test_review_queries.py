"""The queue's queries use index seeks, on both databases, for the first page and every page after it."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql, sqlite

from casework.db.engine import Database
from casework.db.models import Review
from casework.services.auth import Principal, Role
from casework.services.projects import get_or_create_project
from casework.services.review_queries import ReviewFilters, _filtered, _ordering, list_reviews
from tests.support import make_reviews, make_tenant

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def plans(database: Database, filters: ReviewFilters, key: tuple[Any, ...] | None) -> list[str]:
    """The plan of every statement one page runs (a continued queue page runs two)."""
    ordering = _ordering(filters)
    statements: list[Any] = []
    with database.session(write=False) as session:
        ordering.page(
            lambda s: statements.append(s) or [], _filtered(session, select(Review.id), filters), key, 51
        )
        dialect = postgresql.dialect() if database.dialect == "postgresql" else sqlite.dialect()
        found = []
        for statement in statements:
            sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
            if database.dialect == "postgresql":
                # An empty table whose statistics depend on the tests before it: ask what the indexes *can*
                # serve (no sequential scan, no sort when an index gives the order), not what today's
                # statistics make cheapest (they once chose the queue index plus a sort for a 1-row table).
                session.execute(text("SET LOCAL enable_seqscan = off"))
                session.execute(text("SET LOCAL enable_sort = off"))
                found.append("\n".join(row[0] for row in session.execute(text("EXPLAIN " + sql))))
            else:
                found.append("\n".join(row[-1] for row in session.execute(text("EXPLAIN QUERY PLAN " + sql))))
        return found


QUEUE_KEY = (3, NOW, "rev_x")
CREATION_KEY = (NOW, "rev_x")


@pytest.mark.parametrize(
    ("filters", "key", "index"),
    [
        (ReviewFilters(project_id="p", status="pending"), None, "ix_reviews_queue"),
        (ReviewFilters(project_id="p", status="pending"), QUEUE_KEY, "ix_reviews_queue"),
        (ReviewFilters(project_id="p", status="resolved"), QUEUE_KEY, "ix_reviews_queue"),
        (ReviewFilters(project_id="p", status="all"), None, "ix_reviews_project_id_created_at"),
        # What is overdue in both queues (pending, needs_adjudication): by due time, off the waiting reviews' index.
        (ReviewFilters(project_id="p", status="all", overdue=True), None, "ix_reviews_waiting_due_at"),
        # ... and in one queue: by due time too (the queue order would sort every overdue review first).
        (ReviewFilters(project_id="p", status="pending", overdue=True), None, "ix_reviews_waiting_due_at"),
        (ReviewFilters(project_id="p", status="all"), CREATION_KEY, "ix_reviews_project_id_created_at"),
        (
            ReviewFilters(project_id="p", status="pending", created_after=NOW),
            CREATION_KEY,
            "ix_reviews_project_id_created_at",
        ),
    ],
)
def test_every_page_is_an_index_seek_and_never_sorts(
    database: Database, filters: ReviewFilters, key: tuple[Any, ...] | None, index: str
) -> None:
    found = plans(database, filters, key)
    assert len(found) == (2 if key is not None and len(key) == 3 else 1)
    for plan in found:
        assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan
        if database.dialect == "sqlite":
            assert index in plan, plan
            if key is not None:  # a seek past the cursor, not a scan of the project from its start
                assert "created_at" in plan or "priority<" in plan, plan
        else:
            # PostgreSQL picks between equally good indexes by statistics; what matters is that the cursor is
            # part of the index condition, so the scan starts there.
            assert "Index" in plan, plan
            if key is not None:
                condition = plan.split("Index Cond:")[1].split("\n")[0]
                assert "ROW(created_at" in condition or "priority <" in condition, plan


@pytest.mark.storage
def test_search_matches_every_word_in_any_case_and_takes_wildcards_literally(database: Database) -> None:
    tenant = make_tenant(database, "http://unused")
    with database.transaction() as session:
        project, _ = get_or_create_project(session, workspace_id=tenant.workspace_id, name="search")
        project_id = project.id
    make_reviews(database, tenant, project_id, 3)  # "query 0", "query 1", "query 2"
    principal = Principal(key_id="k", workspace_id=tenant.workspace_id, role=Role.viewer, label="t")

    def found(q: str) -> list[str]:
        with database.transaction(write=False) as session:
            filters = ReviewFilters(project_id=project_id, q=q)
            return sorted(
                r.query for r in list_reviews(session, principal=principal, filters=filters).reviews
            )

    assert found("QUERY 1") == ["query 1"]
    assert found("response query") == ["query 0", "query 1", "query 2"]
    assert found("query_1") == [] and found("%") == []
