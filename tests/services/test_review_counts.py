"""The kept review counts always equal a count of the reviews, whatever path changed them."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from casework.db.engine import Database
from casework.db.models import Review
from casework.services import review_counts
from casework.services.reviews import MemoryDecision, settle_by_memory
from tests.support import Tenant, enqueue, make_project, make_reviews

pytestmark = pytest.mark.storage


def counted_by_hand(database: Database, project_id: str) -> dict[tuple[str, str], int]:
    with database.transaction(write=False) as session:
        who = func.coalesce(Review.resolved_by, "")
        rows = session.execute(
            select(Review.status, who, func.count())
            .where(Review.project_id == project_id)
            .group_by(Review.status, who)
        ).all()
    return {(status, by): n for status, by, n in rows}


def kept(database: Database, project_id: str) -> dict[tuple[str, str], int]:
    with database.transaction(write=False) as session:
        return {key: n for key, n in review_counts.counts(session, project_id).items() if n}


def test_counts_follow_enqueue_feedback_bulk_and_memory(
    admin: httpx.Client, database: Database, tenant: Tenant
) -> None:
    project_id = make_project(admin)
    ids = make_reviews(database, tenant, project_id, 6, options=["compliant", "non_compliant"])
    enqueue(admin, project_id, span_id="s1")
    enqueue(admin, project_id, span_id="s1")  # the same span again: no new review, no new count
    admin.post(
        f"/api/v1/hitl/reviews/{ids[0]}/feedback",
        json={"classification": "compliant", "reasoning": "Fine.", "reviewer": "a@b.example"},
    ).raise_for_status()
    admin.post(
        "/api/v1/hitl/reviews/bulk-feedback",
        json={
            "feedback": [
                {"review_id": ids[1], "classification": "compliant", "reasoning": "Fine.", "reviewer": "a"},
                {"review_id": ids[2], "classification": "nope", "reasoning": "Rejected.", "reviewer": "a"},
            ]
        },
    ).raise_for_status()
    control_id = admin.get(f"/api/v1/hitl/reviews/{ids[0]}").json()["resolution"]["control_id"]
    with database.transaction() as session:
        settle_by_memory(
            session,
            review_id=ids[3],
            decision=MemoryDecision(
                "compliant",
                0.9,
                0.9,
                "As before.",
                [{"control_id": control_id, "score": 0.9, "classification": "compliant"}],
                decides_alone=True,
            ),
        )
    expected = {("pending", ""): 4, ("resolved", "human"): 2, ("resolved", "memory"): 1}
    assert counted_by_hand(database, project_id) == expected
    assert kept(database, project_id) == expected
    with database.transaction() as session:
        review_counts.recount(session, project_id)
    assert kept(database, project_id) == expected
