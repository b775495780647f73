"""What the reviewer UI's pages say about a review, from the records alone."""

from __future__ import annotations

from casework.db.models import Review
from casework.services.web_pages import why_queued


def review(classification: str, confidence: float | None, evaluation: bool = True, **stored: str) -> Review:
    return Review(
        classification=classification,
        confidence=confidence,
        options=["compliant", "non_compliant"],
        attributes={"evaluation_id": "evn_1"} if evaluation else {},
        **stored,
    )


def test_the_queue_says_why_a_review_was_sent_to_people() -> None:
    assert why_queued(review("ambiguous", 0.0), 0.6).label == "judge said ambiguous"
    assert why_queued(review("unsure", 0.9), 0.6).label == "answer not an option"
    low = why_queued(review("compliant", 0.42), 0.6)
    assert low.label == "confidence under 0.60"
    assert "0.42" in low.detail
    assert why_queued(review("compliant", 0.42, evaluation=False), None).label == "sent through the API"


def test_the_reason_stored_when_queued_comes_first() -> None:
    confident = ("compliant", 0.95)
    assert why_queued(review(*confident, reason="spot_check", kind="spot_check"), 0.6).label == "spot check"
    assert why_queued(review(*confident, reason="tier_rule", tier="high"), 0.6).label == "risk tier high"
    assert why_queued(review(*confident, reason="reopened"), 0.6).label == "re-opened"
    # Queued through the API with the caller's judge's verdict: what that judge said.
    assert why_queued(review("ambiguous", 0.0, evaluation=False, reason="manual"), None).label == (
        "judge said ambiguous"
    )
