"""Memory's word statistics (``memory_terms``): how many active controls of an evaluator hold each word.
Kept in the transaction that changes a control, so they are exact for the memory as it is."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from casework.db.dialect import upsert_adding
from casework.db.models import Control, MemoryTerm
from casework.memory.similarity import control_terms


def terms_of(control: Control) -> frozenset[str]:
    return control_terms(control.query, control.response, control.reasoning, list(control.tags))


def count(
    session: Session, *, project_id: str, evaluator_type: str, terms: Iterable[str], delta: int
) -> None:
    """Add ``delta`` to the count of each of ``terms``. Rows are touched in one order (no deadlocks)."""
    rows = [
        {"project_id": project_id, "evaluator_type": evaluator_type, "term": term[:100], "df": delta}
        for term in sorted(set(terms))
    ]
    if not rows or not delta:
        return
    statement = upsert_adding(
        session, MemoryTerm, keys=("project_id", "evaluator_type", "term"), columns=("df",)
    )
    session.execute(statement, rows)


def follow(session: Session, control: Control, *, was_active: bool, old_terms: frozenset[str]) -> None:
    """Keep the counts right after ``control`` changed (or was created: ``was_active`` False)."""
    active = control.status == "active"
    new_terms = terms_of(control) if active else frozenset()
    gone = old_terms if was_active else frozenset()
    scope = {"project_id": control.project_id, "evaluator_type": control.evaluator_type}
    count(session, **scope, terms=gone - new_terms, delta=-1)
    count(session, **scope, terms=new_terms - gone, delta=1)
