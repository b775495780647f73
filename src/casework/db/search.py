"""Full-text postings over controls: which active controls of an evaluator hold a word. SQLite FTS5 and
PostgreSQL text search, behind one function; casework.memory.retrieval decides which words to look up.

Both index the words as written (no stemming, no stopwords: PostgreSQL's ``simple`` configuration), so a word
finds the same controls on both. PostgreSQL indexes the first ``INDEXED_CHARS`` characters of each field (a
tsvector holds at most 1 MB); memory compares the same prefix (casework.memory.similarity).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from casework.db.types import UTCDateTime

INDEXED_CHARS = 20_000

# PostgreSQL: the searched document (stored as controls.search_words, indexed by ix_controls_search_words).
PG_CONTROL_DOCUMENT = (
    f"to_tsvector('simple', left(coalesce(reasoning, ''), {INDEXED_CHARS}) || ' ' || "
    f"left(coalesce(query, ''), {INDEXED_CHARS}) || ' ' || left(coalesce(response, ''), {INDEXED_CHARS}) || ' ' || "
    "coalesce(tags::text, ''))"
)
# The index of migration 0009: on the expression. Kept for that migration only.
POSTGRESQL_SCHEMA = [f"CREATE INDEX ix_controls_words ON controls USING gin ({PG_CONTROL_DOCUMENT})"]
POSTGRESQL_DROP = ["DROP INDEX IF EXISTS ix_controls_words"]

# Since migration 0020 the document is a stored column, computed once per write. On the expression alone, every
# search whose plan walked the project's controls (the planner's usual choice: the project filter looks more
# selective than the words) tokenised each control's text again: 75 ms per search over 1,300 controls, the
# largest part of the worker's time per decision on PostgreSQL (replaying it as evidence).
PG_SEARCH_COLUMN = "search_words"
POSTGRESQL_STORED_SCHEMA = [
    f"ALTER TABLE controls ADD COLUMN {PG_SEARCH_COLUMN} tsvector GENERATED ALWAYS AS ({PG_CONTROL_DOCUMENT}) STORED",
    f"CREATE INDEX ix_controls_search_words ON controls USING gin ({PG_SEARCH_COLUMN})",
    *POSTGRESQL_DROP,
]
POSTGRESQL_STORED_DROP = [
    "DROP INDEX IF EXISTS ix_controls_search_words",
    f"ALTER TABLE controls DROP COLUMN IF EXISTS {PG_SEARCH_COLUMN}",
    *POSTGRESQL_SCHEMA,
]

# The first index (migration 0003): English stemming over whole fields. Kept for that migration only.
V1_PG_CONTROL_DOCUMENT = (
    "to_tsvector('english', coalesce(reasoning, '') || ' ' || coalesce(query, '') || ' ' || "
    "coalesce(response, '') || ' ' || coalesce(tags::text, ''))"
)
V1_POSTGRESQL_SCHEMA = [f"CREATE INDEX ix_controls_search ON controls USING gin ({V1_PG_CONTROL_DOCUMENT})"]
V1_POSTGRESQL_DROP = ["DROP INDEX IF EXISTS ix_controls_search"]

# SQLite: an FTS5 index over the controls table itself (external content: no second copy of the text),
# kept in step by triggers. It is keyed by the controls table's rowid: a migration that rebuilds that table
# must rebuild this index too ("INSERT INTO controls_fts(controls_fts) VALUES ('rebuild')").
_FTS_COLUMNS = "reasoning, query, response, tags"
SQLITE_SCHEMA = [
    f"CREATE VIRTUAL TABLE controls_fts USING fts5({_FTS_COLUMNS}, content='controls', content_rowid='rowid')",
    "CREATE VIRTUAL TABLE controls_fts_terms USING fts5vocab(controls_fts, 'row')",
    f"""CREATE TRIGGER controls_fts_insert AFTER INSERT ON controls BEGIN
        INSERT INTO controls_fts(rowid, {_FTS_COLUMNS}) VALUES (new.rowid, new.reasoning, new.query, new.response, new.tags);
    END""",
    f"""CREATE TRIGGER controls_fts_delete AFTER DELETE ON controls BEGIN
        INSERT INTO controls_fts(controls_fts, rowid, {_FTS_COLUMNS})
        VALUES ('delete', old.rowid, old.reasoning, old.query, old.response, old.tags);
    END""",
    f"""CREATE TRIGGER controls_fts_update AFTER UPDATE OF reasoning, query, response, tags ON controls BEGIN
        INSERT INTO controls_fts(controls_fts, rowid, {_FTS_COLUMNS})
        VALUES ('delete', old.rowid, old.reasoning, old.query, old.response, old.tags);
        INSERT INTO controls_fts(rowid, {_FTS_COLUMNS}) VALUES (new.rowid, new.reasoning, new.query, new.response, new.tags);
    END""",
    "INSERT INTO controls_fts(controls_fts) VALUES ('rebuild')",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS controls_fts_update",
    "DROP TRIGGER IF EXISTS controls_fts_delete",
    "DROP TRIGGER IF EXISTS controls_fts_insert",
    "DROP TABLE IF EXISTS controls_fts_terms",
    "DROP TABLE IF EXISTS controls_fts",
]

# Objects the models do not describe: the migrations-versus-models check leaves them out.
NOT_IN_MODELS = ("controls_fts", "ix_controls_search", "ix_controls_words", PG_SEARCH_COLUMN)

# A word, for postings and for word-overlap similarity: three letters or digits or more.
WORD = re.compile(r"[^\W_]{3,}", re.UNICODE)


def controls_with_words(
    session: Session,
    *,
    project_id: str,
    evaluator_type: str,
    words: Collection[str],
    before: datetime | None = None,
) -> list[str]:
    """Every active control of the project and evaluator that holds at least one of ``words`` (which must
    match ``WORD``), created before ``before`` when given."""
    return [
        control_id
        for control_id, _ in control_versions_with_words(
            session, project_id=project_id, evaluator_type=evaluator_type, words=words, before=before
        )
    ]


def control_versions_with_words(
    session: Session,
    *,
    project_id: str,
    evaluator_type: str,
    words: Collection[str],
    before: datetime | None = None,
) -> list[tuple[str, int]]:
    """As :func:`controls_with_words`, with each control's version: what memory keys its cached words by, so
    retrieval reads a control's text only when it has not tokenised that version yet."""
    if not words:
        return []
    created = "AND c.created_at < :before " if before is not None else ""
    params: dict[str, object] = {"project_id": project_id, "evaluator_type": evaluator_type}
    if before is not None:
        params["before"] = before
    if session.get_bind().dialect.name == "postgresql":
        params["query"] = " | ".join(sorted(words))
        statement = text(
            f"SELECT c.id, c.version FROM controls c WHERE c.project_id = :project_id AND c.evaluator_type = :evaluator_type "
            f"AND c.status = 'active' {created}AND c.{PG_SEARCH_COLUMN} @@ to_tsquery('simple', :query)"
        )
    else:
        # The full-text match first, then the project's filter on its rows. Written as a join, SQLite walks the
        # project's controls and runs the match once per control: each lookup cost O(controls), and retrieval
        # over a project of 10,000 controls took seconds (bench/events.py).
        params["match"] = " OR ".join(f'"{word}"' for word in sorted(words))
        statement = text(
            "SELECT c.id, c.version FROM controls c WHERE c.rowid IN "
            "(SELECT rowid FROM controls_fts WHERE controls_fts MATCH :match) "
            "AND c.project_id = :project_id "
            f"AND c.evaluator_type = :evaluator_type AND c.status = 'active' {created}"
        )
    if before is not None:
        statement = statement.bindparams(bindparam("before", type_=UTCDateTime()))
    return [(row[0], row[1]) for row in session.execute(statement, params)]
