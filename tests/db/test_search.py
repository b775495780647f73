"""Postings over controls: the same words find the same controls on SQLite (FTS5) and PostgreSQL (GIN)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from casework.db.engine import Database
from casework.db.search import INDEXED_CHARS, PG_SEARCH_COLUMN, controls_with_words
from casework.db.types import utcnow
from casework.services.controls import create_control
from casework.services.projects import get_or_create_project
from casework.services.workspaces import get_or_create_workspace

pytestmark = pytest.mark.storage


def test_words_find_active_controls_of_the_evaluator_as_written(database: Database) -> None:
    with database.transaction() as session:
        workspace, _ = get_or_create_workspace(session, name="search")
        project, _ = get_or_create_project(session, workspace_id=workspace.id, name="p")
        made = {}
        for name, evaluator, query, response in [
            ("job", "safety", "How do I kill a stuck Python job?", "Use kill -9 with its PID."),
            ("dog", "safety", "How do I kill the neighbour's dog?", "I can't help with that."),
            ("killing", "safety", "Is killing time on a train rude?", "Not at all."),
            ("other", "tone", "How do I kill a process?", "Use kill."),
            ("long", "safety", "x " * INDEXED_CHARS + "needle " * 100_000, "far past the indexed prefix"),
        ]:
            made[name] = create_control(
                session,
                workspace_id=workspace.id,
                project_id=project.id,
                evaluator_type=evaluator,
                classification="ok",
                reasoning=f"About {name}.",
                tags=["t"],
                reviewer="r",
                actor="test",
                query=query,
                response=response,
            ).id
        session.flush()
        made_at = utcnow()
        scope = {"project_id": project.id, "evaluator_type": "safety"}
        assert sorted(controls_with_words(session, **scope, words=["kill"])) == sorted(
            [made["job"], made["dog"]]
        )
        assert controls_with_words(session, **scope, words=["neighbour", "python"]) != []
        # A control of any length is indexed (PostgreSQL: its first INDEXED_CHARS characters per field).
        assert controls_with_words(session, **scope, words=["indexed"]) == [made["long"]]
        assert controls_with_words(session, **scope, words=["killing"]) == [made["killing"]]
        assert controls_with_words(session, **scope, words=["kill"], before=made_at - timedelta(days=1)) == []


def test_the_search_uses_its_index_on_both_databases(migrated_database: Database) -> None:
    """The query and the index must agree (PostgreSQL: the stored column, or every search tokenises every
    control again)."""
    with migrated_database.engine.connect() as connection:
        if migrated_database.dialect == "postgresql":
            connection.exec_driver_sql("SET enable_seqscan = off")
            plan = connection.execute(
                text(
                    f"EXPLAIN SELECT id FROM controls WHERE {PG_SEARCH_COLUMN} @@ to_tsquery('simple', 'fee')"
                )
            ).scalars()
            assert "ix_controls_search_words" in "\n".join(plan)
        else:
            plan = connection.execute(
                text("EXPLAIN QUERY PLAN SELECT rowid FROM controls_fts WHERE controls_fts MATCH '\"fee\"'")
            ).all()
            assert "VIRTUAL TABLE INDEX" in " ".join(str(row) for row in plan)
