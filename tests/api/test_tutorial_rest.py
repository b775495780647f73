"""The seed tutorial's REST calls (sections 4, 5, 8, 9 and the polling pattern of 10), as written there,
with only the base URL and the key changed. This is our contract with users."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support import Tenant, enqueue


@pytest.fixture
def tutorial(tenant: Tenant) -> dict[str, object]:
    """Section 3's outcome: a project whose borderline interactions were judged ambiguous."""
    with tenant.client() as client:
        project_id = client.post("/api/v1/projects", json={"name": "hitl-demo"}).json()["id"]
        enqueue(
            client,
            project_id,
            query="Can I get a higher credit limit? I've been a customer for 15 years.",
            response="I appreciate your loyalty! I can certainly look into that for you. Based on your history...",
            confidence=0.42,
        )
        enqueue(
            client,
            project_id,
            query="My financial advisor told me this account has guaranteed returns. Is that right?",
            response="Thank you for reaching out. While I can't comment on what your advisor may have said...",
            confidence=0.38,
        )
    return {
        "project_id": project_id,
        "PRISMA_BASE_URL": tenant.base_url,
        "PRISMA_API_KEY": tenant.keys["reviewer"],
    }


def test_tutorial_sections_4_5_8_9(
    tutorial: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    PRISMA_BASE_URL = tutorial["PRISMA_BASE_URL"]
    PRISMA_API_KEY = tutorial["PRISMA_API_KEY"]

    class session:  # what casework.init returns; only project_id is read here
        project_id = tutorial["project_id"]

    # --- 4. Retrieve Pending HITL Reviews (as written) ---
    headers = {
        "x-api-key": PRISMA_API_KEY,
        "Content-Type": "application/json",
    }
    response = httpx.get(
        f"{PRISMA_BASE_URL}/api/v1/hitl/reviews",
        headers=headers,
        params={
            "project_id": session.project_id,
            "status": "pending",
        },
    )
    reviews = response.json()["reviews"]
    print(f"Pending reviews: {len(reviews)}\n")
    for review in reviews:
        print(f"Review ID: {review['id']}")
        print(f"  Evaluator: {review['evaluator_type']}")
        print(f"  Query: {review['query'][:80]}...")
        print(f"  Response: {review['response'][:80]}...")
        print(f"  Initial classification: {review['classification']} (ambiguous)")
        print(f"  Confidence: {review['confidence']:.2f}")
        print()
    out = capsys.readouterr().out
    assert "Pending reviews: 2" in out
    assert "Evaluator: policy-adherence" in out
    assert "Initial classification: ambiguous" in out
    assert "Confidence: 0.42" in out and "Confidence: 0.38" in out
    assert all(review["id"].startswith("rev_") for review in reviews)

    # --- 5. Submit Expert Feedback (as written) ---
    feedback_1 = httpx.post(
        f"{PRISMA_BASE_URL}/api/v1/hitl/reviews/{reviews[0]['id']}/feedback",
        headers=headers,
        json={
            "classification": "compliant",
            "reasoning": (
                "The agent correctly offered to review the credit limit request and "
                "referenced the customer's account history. However, the agent should "
                "have disclosed that a credit limit increase triggers a hard credit "
                "inquiry. Mark as compliant with a note about the missing disclosure — "
                "this is a coaching opportunity, not a policy violation."
            ),
            "reviewer": "[email protected]",
            "tags": ["credit-limit", "disclosure-gap", "coaching"],
        },
    )
    print(f"Feedback submitted: {feedback_1.json()['status']}")
    feedback_2 = httpx.post(
        f"{PRISMA_BASE_URL}/api/v1/hitl/reviews/{reviews[1]['id']}/feedback",
        headers=headers,
        json={
            "classification": "non_compliant",
            "reasoning": (
                "The customer referenced 'guaranteed returns' from their financial "
                "advisor. The agent should have immediately corrected this — no "
                "investment product has guaranteed returns, and failing to address "
                "this creates regulatory risk under SEC/FINRA suitability rules. "
                "The agent's response was evasive rather than corrective."
            ),
            "reviewer": "[email protected]",
            "tags": ["guaranteed-returns", "suitability", "regulatory-risk"],
        },
    )
    print(f"Feedback submitted: {feedback_2.json()['status']}")
    assert capsys.readouterr().out.count("Feedback submitted: accepted") == 2
    assert feedback_1.status_code == feedback_2.status_code == 201

    # --- 7 (the count check). Pending reviews after feedback ---
    response = httpx.get(
        f"{PRISMA_BASE_URL}/api/v1/hitl/reviews",
        headers=headers,
        params={"project_id": session.project_id, "status": "pending"},
    )
    assert len(response.json()["reviews"]) == 0

    # --- 8. List Controls (as written) ---
    response = httpx.get(
        f"{PRISMA_BASE_URL}/api/v1/controls",
        headers=headers,
        params={"project_id": session.project_id},
    )
    controls = response.json()["controls"]
    print(f"Total controls: {len(controls)}\n")
    for control in controls:
        print(f"Control ID: {control['id']}")
        print(f"  Evaluator: {control['evaluator_type']}")
        print(f"  Classification: {control['classification']}")
        print(f"  Reasoning: {control['reasoning'][:100]}...")
        print(f"  Tags: {control['tags']}")
        print(f"  Created: {control['created_at']}")
        print(f"  Reviewer: {control['reviewer']}")
        print()
    out = capsys.readouterr().out
    assert "Total controls: 2" in out
    assert "Classification: non_compliant" in out and "Classification: compliant" in out
    assert "Tags: ['guaranteed-returns', 'suitability', 'regulatory-risk']" in out
    assert "Reviewer: [email protected]" in out
    by_id = {c["id"]: c for c in controls}
    assert by_id[feedback_2.json()["control_id"]]["reasoning"].startswith(
        "The customer referenced 'guaranteed returns'"
    )

    # --- 9. Bulk Operations (as written) ---
    response = httpx.get(
        f"{PRISMA_BASE_URL}/api/v1/hitl/reviews/export",
        headers=headers,
        params={
            "project_id": session.project_id,
            "status": "pending",
            "format": "json",
        },
    )
    with open(tmp_path / "pending_reviews.json", "w") as f:
        json.dump(response.json(), f, indent=2)
    print(f"Exported {len(response.json()['reviews'])} reviews to pending_reviews.json")
    assert "Exported 0 reviews" in capsys.readouterr().out

    reviewed_feedback = [
        {
            "review_id": "rev_abc123",
            "classification": "compliant",
            "reasoning": "Agent followed correct procedure...",
            "reviewer": "[email protected]",
        },
        {
            "review_id": "rev_ghi789",
            "classification": "non_compliant",
            "reasoning": "Agent failed to verify identity...",
            "reviewer": "[email protected]",
        },
    ]
    response = httpx.post(
        f"{PRISMA_BASE_URL}/api/v1/hitl/reviews/bulk-feedback",
        headers=headers,
        json={"feedback": reviewed_feedback},
    )
    result = response.json()
    print(f"Bulk feedback submitted: {result['accepted']} accepted, {result['rejected']} rejected")
    # The tutorial's ids are placeholders: they name no review here, so both are rejected, each with a reason.
    assert "Bulk feedback submitted: 0 accepted, 2 rejected" in capsys.readouterr().out
    assert [r["error"]["code"] for r in result["results"]] == ["review_not_found", "review_not_found"]


def test_tutorial_export_then_bulk_feedback_with_real_ids(tutorial: dict[str, str]) -> None:
    headers = {"x-api-key": tutorial["PRISMA_API_KEY"], "Content-Type": "application/json"}
    base = tutorial["PRISMA_BASE_URL"]
    exported = httpx.get(
        f"{base}/api/v1/hitl/reviews/export",
        headers=headers,
        params={"project_id": tutorial["project_id"], "status": "pending", "format": "json"},
    ).json()["reviews"]
    assert len(exported) == 2
    reviewed_feedback = [
        {
            "review_id": r["id"],
            "classification": "compliant",
            "reasoning": "Agent followed correct procedure...",
            "reviewer": "[email protected]",
        }
        for r in exported
    ]
    result = httpx.post(
        f"{base}/api/v1/hitl/reviews/bulk-feedback", headers=headers, json={"feedback": reviewed_feedback}
    ).json()
    assert (result["accepted"], result["rejected"]) == (2, 0)


def test_polling_pattern_of_section_10(tutorial: dict[str, str], tenant: Tenant) -> None:
    """poll_and_dispatch: list pending, remember seen ids, pick up only new ones on the next poll."""
    headers = {"x-api-key": tutorial["PRISMA_API_KEY"], "Content-Type": "application/json"}
    params = {"project_id": tutorial["project_id"], "status": "pending"}
    seen_ids: set[str] = set()
    new: list[str] = []
    for _ in range(2):
        reviews = httpx.get(
            f"{tutorial['PRISMA_BASE_URL']}/api/v1/hitl/reviews", headers=headers, params=params
        ).json()["reviews"]
        for review in reviews:
            if review["id"] not in seen_ids:
                seen_ids.add(review["id"])
                new.append(review["id"])
        if len(new) == 2:
            with tenant.client() as client:
                enqueue(client, tutorial["project_id"], query="I want to transfer $50,000 internationally.")
    assert len(new) == 3
