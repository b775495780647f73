"""What every integration says about a review: memory's suggestion when the review has one, nothing (and no
failure) when it has none; decisions read from a comment."""

from __future__ import annotations

import json
from typing import Any

from casework.integrations import messages
from casework.integrations.slack import review_blocks
from casework.integrations.teams import review_card

REVIEW: dict[str, Any] = {
    "id": "rev_1",
    "evaluator_type": "policy-adherence",
    "query": "My broker promised guaranteed returns.",
    "response": "Returns depend on many factors.",
    "classification": "ambiguous",
    "confidence": 0.42,
    "options": ["compliant", "non_compliant"],
    "status": "pending",
    "created_at": "2026-12-01T10:00:00Z",
}


def test_memorys_suggestion_is_shown_when_the_review_has_one() -> None:
    suggested = {
        **REVIEW,
        "suggestion": {
            "classification": "non_compliant",
            "confidence": 0.91,
            "explanation": "Like the guaranteed-returns cases.",
            "control_ids": ["ctl_1", "ctl_2"],
        },
    }
    text = "non_compliant (confidence 0.91), from 2 controls: Like the guaranteed-returns cases."
    assert messages.suggestion(suggested) == text
    assert "Memory suggests" in json.dumps(
        review_blocks(suggested, "https://cw/reviews/rev_1", integration_id="int_1")
    )
    assert "Memory suggests" in json.dumps(review_card(suggested, "https://cw/reviews/rev_1"))


def test_a_review_without_a_suggestion_reads_as_before() -> None:
    for review in (REVIEW, {**REVIEW, "suggestion": None}, {**REVIEW, "suggestion": {}}):
        assert messages.suggestion(review) is None
        assert "Memory suggests" not in json.dumps(
            review_blocks(review, "https://cw/r", integration_id="int_1")
        )


def test_a_decision_is_read_from_a_comment_in_any_case_over_several_lines() -> None:
    comment = "Looked at it.\nClassification: non_compliant\nReasoning: No guarantees.\nThe agent must say so.\ntags: a, b"
    parsed = messages.parse_decision_text(
        comment, {"classification": "classification", "reasoning": "reasoning", "tags": "tags"}
    )
    assert parsed == {
        "classification": "non_compliant",
        "reasoning": "No guarantees.\nThe agent must say so.",
        "tags": "a, b",
    }
    assert messages.split_tags(parsed["tags"]) == ["a", "b"]
    assert messages.already_decided({"resolved_by": "memory", "classification": "compliant"}) == (
        "Already decided by memory: compliant."
    )


def test_a_resolution_by_memory_names_its_control() -> None:
    resolved = {
        **REVIEW,
        "status": "resolved",
        "resolution": {"resolved_by": "memory", "classification": "compliant", "control_id": "ctl_7"},
    }
    assert messages.decided(resolved) == "Decided by memory (control ctl_7): compliant"
    blocks = review_blocks(resolved, "https://cw/r", integration_id="int_1")
    assert not [b for b in blocks if b["type"] == "actions"]
