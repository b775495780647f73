"""Full-text search over controls: SQLite FTS5 and PostgreSQL text search, behind one function.

The schema half (the FTS5 table, its triggers, the PostgreSQL GIN index) is created by migration 0003 from
the statements here, so the index and the queries that must match it live side by side.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from casework.db.engine import read_only

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

# A word, for choosing search terms and for word-overlap similarity: three letters or more.
WORD = re.compile(r"[^\W_]{3,}", re.UNICODE)


class TermFrequencies:
    """How many controls hold each word, for choosing the rare words to search for. Read from the FTS5
    vocabulary at most every ``ttl_seconds`` per process: rarity needs to be roughly right, not exact, and a
    lookup per word costs more than the search itself."""

    def __init__(self, ttl_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._table: dict[str, int] = {}
        self._loaded_at: float | None = None
        self._refreshing = False
        self._lock = threading.Lock()

    def get(self, session: Session) -> dict[str, int]:
        """The table; the first call loads it, later ones refresh it in the background when it is old, so no
        request waits for the scan (about 300 ms at 100,000 controls)."""
        with self._lock:
            if self._loaded_at is None:
                self._table = self._load(session.connection())
                self._loaded_at = self._clock()
            elif self._clock() - self._loaded_at > self.ttl_seconds and not self._refreshing:
                self._refreshing = True
                threading.Thread(target=self._refresh, args=(session.get_bind(),), daemon=True).start()
            return self._table

    def _refresh(self, bind: Any) -> None:
        try:
            with bind.connect() as connection:
                table = self._load(read_only(connection))
            with self._lock:
                self._table, self._loaded_at = table, self._clock()
        finally:
            self._refreshing = False

    @staticmethod
    def _load(connection: Any) -> dict[str, int]:
        return {
            term: doc for term, doc in connection.execute(text("SELECT term, doc FROM controls_fts_terms"))
        }


def candidate_control_ids(
    session: Session,
    *,
    project_id: str,
    evaluator_type: str,
    terms: list[str],
    limit: int,
    frequencies: TermFrequencies | None = None,
    max_terms: int = 4,
    max_postings: int = 1_500,
) -> list[str]:
    """Active controls of the project and evaluator that share words with ``terms``, best full-text rank first.

    Only the rarest words are searched for, at most ``max_terms`` and, on SQLite, only while the controls
    holding them add up to ``max_postings`` (the rarest is always searched for). Rare words carry the
    similarity; common ones make a query rank much of the index: bench/memory.py measured 77 ms a query at
    100,000 controls with 24 words, and with the 4 rarest a p99 of 13 ms, from queries whose "rare" words were
    each in over a thousand controls. The candidates are scored again on all their words afterwards.
    """
    if not terms:
        return []
    if session.get_bind().dialect.name == "postgresql":
        # No vocabulary table here to tell rare words from common ones: the longest words stand in for the
        # rarest (longer words are rarer, by and large).
        longest = sorted(terms, key=lambda t: (-len(t), t))[: max_terms * 3]
        return _postgresql(session, project_id, evaluator_type, longest, limit)
    table = frequencies.get(session) if frequencies is not None else _frequencies_of(session, terms)
    return _sqlite(session, project_id, evaluator_type, terms, limit, max_terms, max_postings, table)


def _frequencies_of(session: Session, terms: list[str]) -> dict[str, int]:
    """Document counts of just these words: for callers without a TermFrequencies (a few ms, not a scan)."""
    query = text("SELECT term, doc FROM controls_fts_terms WHERE term IN :terms").bindparams(
        bindparam("terms", expanding=True)
    )
    return {term: doc for term, doc in session.execute(query, {"terms": terms})}


def search_terms(
    terms: list[str], frequencies: dict[str, int], *, max_terms: int, max_postings: int
) -> list[str]:
    """The words to search for: the rarest the table knows (at most ``max_terms``, and only while the
    controls holding them add up to ``max_postings``; the rarest always), plus every word it does not know:
    such a word is in no control (free to look up: it matches nothing) or newer than the table (so rare, and
    worth searching for)."""
    known: list[str] = []
    postings = 0
    for term in sorted((t for t in terms if frequencies.get(t)), key=lambda t: (frequencies[t], t)):
        postings += frequencies[term]
        if len(known) == max_terms or (known and postings > max_postings):
            break
        known.append(term)
    return known + [t for t in terms if not frequencies.get(t)][: max_terms * 4]


def _sqlite(
    session: Session,
    project_id: str,
    evaluator_type: str,
    terms: list[str],
    limit: int,
    max_terms: int,
    max_postings: int,
    frequencies: dict[str, int],
) -> list[str]:
    chosen = search_terms(terms, frequencies, max_terms=max_terms, max_postings=max_postings)
    if not chosen:
        return []
    match = " OR ".join(f'"{term}"' for term in chosen)
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
