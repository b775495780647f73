"""Full-text search over controls: SQLite FTS5 and PostgreSQL text search, behind one function.

The schema half (the FTS5 table, its triggers, the PostgreSQL GIN index) is created by migration 0003 from
the statements here, so the index and the queries that must match it live side by side.
"""

from __future__ import annotations

import json
import re

from sqlalchemy import text
from sqlalchemy.orm import Session

# PostgreSQL: the indexed document. Queries must use this exact expression to use ix_controls_search.
PG_CONTROL_DOCUMENT = (
    "to_tsvector('english', coalesce(reasoning, '') || ' ' || coalesce(query, '') || ' ' || "
    "coalesce(response, '') || ' ' || coalesce(tags::text, ''))"
)

POSTGRESQL_SCHEMA = [f"CREATE INDEX ix_controls_search ON controls USING gin ({PG_CONTROL_DOCUMENT})"]
POSTGRESQL_DROP = ["DROP INDEX IF EXISTS ix_controls_search"]

# SQLite: an FTS5 index over the controls table itself (external content: no second copy of the text),
# kept in step by triggers. It is keyed by the controls table's rowid: a migration that rebuilds that table
# must rebuild this index too ("INSERT INTO controls_fts(controls_fts) VALUES ('rebuild')").
_FTS_COLUMNS = "reasoning, query, response, tags"
SQLITE_SCHEMA = [
    # unicode61 without stemming: fts5vocab then counts the very words we look up (see _sqlite).
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
NOT_IN_MODELS = ("controls_fts", "ix_controls_search")

_WORD = re.compile(r"[^\W_]{3,}", re.UNICODE)


def words(value: str) -> list[str]:
    """Lowercase words of three letters or more, in order, without repeats."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(value.lower()):
        seen.setdefault(word, None)
    return list(seen)


def candidate_control_ids(
    session: Session,
    *,
    project_id: str,
    evaluator_type: str,
    terms: list[str],
    limit: int,
    max_document_share: float = 0.2,
    max_terms: int = 24,
) -> list[str]:
    """Active controls of the project and evaluator that share words with ``terms``, best full-text rank first.

    Words that appear in more than ``max_document_share`` of all controls say little about similarity and
    would make every query touch most of the index; they are left out (unless nothing else is left).
    """
    if not terms:
        return []
    if session.get_bind().dialect.name == "postgresql":
        return _postgresql(session, project_id, evaluator_type, terms[: max_terms * 2], limit)
    return _sqlite(session, project_id, evaluator_type, terms, limit, max_document_share, max_terms)


def _sqlite(
    session: Session,
    project_id: str,
    evaluator_type: str,
    terms: list[str],
    limit: int,
    share: float,
    max_terms: int,
) -> list[str]:
    chosen = terms[: max_terms * 2]
    documents = session.execute(text("SELECT max(rowid) FROM controls")).scalar() or 0  # an O(1) upper bound
    if documents > 50:
        frequencies: dict[str, int] = dict(
            session.execute(
                text(
                    "SELECT term, doc FROM controls_fts_terms WHERE term IN (SELECT value FROM json_each(:terms))"
                ),
                {"terms": json.dumps(chosen)},
            ).all()
        )
        rare = [t for t in chosen if frequencies.get(t, 0) <= documents * share]
        chosen = rare or chosen
    match = " OR ".join(f'"{term}"' for term in chosen[:max_terms])
    rows = session.execute(
        text(
            "SELECT c.id FROM controls_fts JOIN controls c ON c.rowid = controls_fts.rowid "
            "WHERE controls_fts MATCH :match AND c.project_id = :project_id AND c.evaluator_type = :evaluator_type "
            "AND c.status = 'active' ORDER BY controls_fts.rank LIMIT :limit"
        ),
        {"match": match, "project_id": project_id, "evaluator_type": evaluator_type, "limit": limit},
    )
    return [row[0] for row in rows]


def _postgresql(
    session: Session, project_id: str, evaluator_type: str, terms: list[str], limit: int
) -> list[str]:
    query = " | ".join(terms)
    rows = session.execute(
        text(
            f"SELECT id FROM controls WHERE project_id = :project_id AND evaluator_type = :evaluator_type "
            f"AND status = 'active' AND {PG_CONTROL_DOCUMENT} @@ to_tsquery('english', :query) "
            f"ORDER BY ts_rank_cd({PG_CONTROL_DOCUMENT}, to_tsquery('english', :query)) DESC LIMIT :limit"
        ),
        {"project_id": project_id, "evaluator_type": evaluator_type, "query": query, "limit": limit},
    )
    return [row[0] for row in rows]
