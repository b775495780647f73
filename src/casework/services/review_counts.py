"""How many reviews each project has in each state, kept up to date by the transactions that change them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from casework.db.dialect import upsert_adding
from casework.db.models import Review, ReviewCount

Key = tuple[str, str]  # (status, resolved_by or "")
PENDING: Key = ("pending", "")


def resolved_by(who: str) -> Key:
    return ("resolved", who)


def bump(session: Session, project_id: str, changes: Mapping[Key, int]) -> None:
    """Add ``changes`` to the project's counts. Rows are touched in one order, so concurrent transactions
    never deadlock on them."""
    rows = [
        {"project_id": project_id, "status": status, "resolved_by": who, "n": delta}
        for (status, who), delta in sorted(changes.items())
        if delta
    ]
    if not rows:
        return
    statement = upsert_adding(
        session, ReviewCount, keys=("project_id", "status", "resolved_by"), columns=("n",)
    )
    session.execute(statement, rows)


def follow(
    session: Session, project_id: str, *, before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> None:
    """Keep the counts in step with one review event: the review left ``before``'s state for ``after``'s."""
    changes: Counter[Key] = Counter()
    if before is not None and "status" in before:
        changes[_key(before.get("status"), before.get("resolved_by"))] -= 1
    resolution = after.get("resolution") or {}
    changes[_key(after.get("status"), resolution.get("resolved_by"))] += 1
    bump(session, project_id, changes)


def _key(status: Any, who: Any) -> Key:
    return (str(status), str(who or "") if status == "resolved" else "")


def counts(session: Session, project_id: str) -> Counter[Key]:
    found: Counter[Key] = Counter()
    for status, who, n in session.execute(
        select(ReviewCount.status, ReviewCount.resolved_by, ReviewCount.n).where(
            ReviewCount.project_id == project_id
        )
    ).all():
        found[(status, who)] = n
    return found


def recount(session: Session, project_id: str) -> None:
    """Count a project's reviews from scratch (after rows were written around the services, as benchmarks do)."""
    session.execute(delete(ReviewCount).where(ReviewCount.project_id == project_id))
    who = func.coalesce(Review.resolved_by, "")
    rows = session.execute(
        select(Review.status, who, func.count())
        .where(Review.project_id == project_id)
        .group_by(Review.status, who)
    ).all()
    bump(session, project_id, {(status, by): n for status, by, n in rows})
