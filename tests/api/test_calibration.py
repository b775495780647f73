"""Several reviewers per case: blind overlap, agreement resolves once, disagreement waits for a lead."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from casework.db.engine import Database
from casework.services import review_counts, web_pages
from casework.services.auth import Principal, Role
from casework.services.reviews import MemoryDecision, settle_by_memory
from tests.support import POLICY_EVALUATOR, Tenant, enqueue, make_project, wait_for


def decision(reviewer: str, classification: str = "non_compliant", reasoning: str = "") -> dict[str, Any]:
    return {
        "classification": classification,
        "reasoning": reasoning or f"{reviewer} read the policy: no promises about credit limits.",
        "reviewer": reviewer,
        "tags": ["credit-limit"],
    }


def overlapped_project(admin: httpx.Client, reviewers: int = 2) -> str:
    project_id = make_project(admin)
    created = admin.post("/api/v1/evaluators", json={**POLICY_EVALUATOR, "project_id": project_id}).json()
    if reviewers == 1:
        return project_id
    changed = admin.patch(f"/api/v1/evaluators/{created['id']}", json={"reviewers_required": reviewers})
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == created["version"] + 1
    assert changed.json()["reviewers_required"] == reviewers
    return project_id


def controls_of(admin: httpx.Client, project_id: str) -> list[dict[str, Any]]:
    controls: list[dict[str, Any]] = admin.get("/api/v1/controls", params={"project_id": project_id}).json()[
        "controls"
    ]
    return controls


def event_types(admin: httpx.Client, project_id: str, *, until: str) -> list[str]:
    """The project's event types in log order, once ``until`` is among them (events are sequenced after commit)."""

    def read() -> list[str] | None:
        events = admin.get("/api/v1/events", params={"project_id": project_id, "limit": 1000}).json()[
            "events"
        ]
        types = [e["type"] for e in events]
        return types if until in types else None

    found: list[str] = wait_for(read, message=f"no {until} event")
    return found


def test_reviewers_required_defaults_to_one_and_is_shown(admin: httpx.Client) -> None:
    project_id = make_project(admin)
    created = admin.post("/api/v1/evaluators", json={**POLICY_EVALUATOR, "project_id": project_id}).json()
    assert created["reviewers_required"] == 1
    assert admin.get(f"/api/v1/evaluators/{created['id']}").json()["reviewers_required"] == 1
    bad = admin.patch(f"/api/v1/evaluators/{created['id']}", json={"reviewers_required": 0})
    assert bad.status_code == 422


def test_one_reviewers_decision_is_counted(admin: httpx.Client) -> None:
    review = enqueue(admin, overlapped_project(admin, reviewers=1))
    reply = admin.post(f"/api/v1/hitl/reviews/{review['id']}/feedback", json=decision("ana"))
    assert (reply.json()["review_status"], reply.json()["decisions_submitted"]) == ("resolved", 1)
    found = admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()
    assert (found["reviewers_required"], found["decisions_submitted"]) == (1, 1)


def test_agreeing_reviewers_resolve_once_with_one_control_crediting_all(
    tenant: Tenant, admin: httpx.Client
) -> None:
    project_id = overlapped_project(admin, reviewers=2)
    review = enqueue(admin, project_id)
    assert (review["reviewers_required"], review["decisions_submitted"]) == (2, 0)
    url = f"/api/v1/hitl/reviews/{review['id']}/feedback"
    with tenant.client("reviewer") as reviewer:
        first = reviewer.post(url, json=decision("ana"))
        assert first.status_code == 201, first.text
        assert first.json()["control_id"] is None
        assert (first.json()["review_status"], first.json()["decisions_submitted"]) == ("pending", 1)
        assert controls_of(admin, project_id) == []
        again = reviewer.post(url, json=decision("ana"))
        assert again.status_code == 200 and again.json()["control_id"] is None
        changed = reviewer.post(url, json=decision("ana", "compliant"))
        assert changed.status_code == 409
        assert changed.json()["error"]["code"] == "decision_already_submitted"
        second = reviewer.post(url, json=decision("ben"))
        assert second.status_code == 201, second.text
        assert second.json()["review_status"] == "resolved"
        control_id = second.json()["control_id"]
        assert control_id
        # Idempotent after resolution too, for either reviewer.
        repeat = reviewer.post(url, json=decision("ana"))
        assert (repeat.status_code, repeat.json()["control_id"]) == (200, control_id)
        late = reviewer.post(url, json=decision("cleo"))
        assert late.status_code == 409 and late.json()["error"]["code"] == "review_already_resolved"
    controls = controls_of(admin, project_id)
    assert [c["id"] for c in controls] == [control_id]
    assert controls[0]["reviewer"] == "ana, ben"
    assert "ana:" in controls[0]["reasoning"] and "ben:" in controls[0]["reasoning"]
    resolved = admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()
    assert resolved["status"] == "resolved"
    assert resolved["resolution"]["reviewer"] == "ana, ben"
    submitted = [d for d in resolved["decisions"] if d["status"] == "submitted"]
    assert sorted(d["reviewer"] for d in submitted) == ["ana", "ben"]
    types = event_types(admin, project_id, until="review.resolved")
    assert types.count("review.decision_submitted") == 1
    assert types.count("review.resolved") == 1


def test_decisions_are_blind_until_you_have_given_yours(tenant: Tenant, admin: httpx.Client) -> None:
    project_id = overlapped_project(admin, reviewers=3)
    review = enqueue(admin, project_id)
    url = f"/api/v1/hitl/reviews/{review['id']}"
    admin.post(f"{url}/feedback", json=decision("someone-else"))
    with tenant.client("reviewer") as reviewer:
        label = f"reviewer@{tenant.name}"
        seen = reviewer.get(url).json()
        assert seen["decisions_hidden"] is True
        assert seen["decisions"] == []
        assert seen["decisions_submitted"] == 1
        assert reviewer.get(f"{url}/decisions").json()["decisions"] == []
        assert reviewer.post(f"{url}/feedback", json=decision(label, "compliant")).status_code == 201
        after = reviewer.get(url).json()
        assert after["decisions_hidden"] is False
        assert sorted(d["reviewer"] for d in after["decisions"]) == sorted([label, "someone-else"])
    lead = admin.get(url).json()
    assert lead["decisions_hidden"] is False and len(lead["decisions"]) == 2


def test_disagreement_waits_for_a_lead_and_only_the_lead_makes_the_control(
    tenant: Tenant, admin: httpx.Client
) -> None:
    project_id = overlapped_project(admin, reviewers=2)
    review = enqueue(admin, project_id)
    url = f"/api/v1/hitl/reviews/{review['id']}/feedback"
    with tenant.client("reviewer") as reviewer:
        early = reviewer.post(url, json={**decision("lead"), "adjudicate": True})
        assert early.status_code == 403
        assert reviewer.post(url, json=decision("ana", "compliant")).status_code == 201
        split = reviewer.post(url, json=decision("ben", "non_compliant"))
        assert split.status_code == 201
        assert (split.json()["review_status"], split.json()["control_id"]) == ("needs_adjudication", None)
        third = reviewer.post(url, json=decision("cleo"))
        assert third.status_code == 409 and third.json()["error"]["code"] == "review_needs_adjudication"
        not_lead = reviewer.post(url, json={**decision("cleo"), "adjudicate": True})
        assert not_lead.status_code == 403
    assert controls_of(admin, project_id) == []
    waiting = admin.get(
        "/api/v1/hitl/reviews", params={"project_id": project_id, "status": "needs_adjudication"}
    ).json()["reviews"]
    assert [r["id"] for r in waiting] == [review["id"]]
    assert admin.get("/api/v1/hitl/reviews", params={"project_id": project_id}).json()["reviews"] == []
    ruling = decision("lead@example.com", "non_compliant", "Policy 4.2: never promise a limit increase.")
    decided = admin.post(url, json={**ruling, "adjudicate": True})
    assert decided.status_code == 201, decided.text
    assert decided.json()["review_status"] == "resolved"
    controls = controls_of(admin, project_id)
    assert [c["id"] for c in controls] == [decided.json()["control_id"]]
    assert controls[0]["reviewer"] == "lead@example.com"
    assert controls[0]["reasoning"] == "Policy 4.2: never promise a limit increase."
    again = admin.post(url, json={**ruling, "adjudicate": True})
    assert again.status_code == 200
    types = event_types(admin, project_id, until="review.resolved")
    assert types.count("review.needs_adjudication") == 1


def test_adjudicate_on_a_review_that_does_not_need_it_is_a_conflict(admin: httpx.Client) -> None:
    project_id = overlapped_project(admin, reviewers=2)
    review = enqueue(admin, project_id)
    response = admin.post(
        f"/api/v1/hitl/reviews/{review['id']}/feedback", json={**decision("lead"), "adjudicate": True}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "review_not_awaiting_adjudication"


@pytest.mark.parametrize("required", [2, 3])
def test_n_plus_three_concurrent_reviewers_give_exactly_n_decisions(
    tenant: Tenant, admin: httpx.Client, required: int
) -> None:
    project_id = overlapped_project(admin, reviewers=required)
    review = enqueue(admin, project_id)

    def submit(i: int) -> httpx.Response:
        with tenant.client("reviewer") as client:
            return client.post(
                f"/api/v1/hitl/reviews/{review['id']}/feedback", json=decision(f"reviewer-{i}")
            )

    with ThreadPoolExecutor(max_workers=required + 3) as pool:
        responses = list(pool.map(submit, range(required + 3)))
    assert sum(r.status_code == 201 for r in responses) == required
    assert sorted(r.status_code for r in responses) == [201] * required + [409] * 3
    final = admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()
    assert final["decisions_submitted"] == required
    assert final["status"] == "resolved"
    assert len([d for d in final["decisions"] if d["status"] == "submitted"]) == required
    assert len(controls_of(admin, project_id)) == 1


def memory_says(classification: str, control_id: str) -> MemoryDecision:
    return MemoryDecision(
        classification,
        0.99,
        0.99,
        "As before.",
        [{"control_id": control_id, "score": 0.99, "classification": classification}],
        decides_alone=True,
    )


def test_memory_never_settles_a_review_with_decisions_in_or_waiting_for_a_lead(
    tenant: Tenant, admin: httpx.Client, database: Database
) -> None:
    project_id = overlapped_project(admin, reviewers=2)
    partial, split, untouched = (enqueue(admin, project_id, span_id=f"s{i}") for i in range(3))
    with tenant.client("reviewer") as reviewer:
        reviewer.post(
            f"/api/v1/hitl/reviews/{partial['id']}/feedback", json=decision("ana")
        ).raise_for_status()
        for name, choice in (("ana", "compliant"), ("ben", "non_compliant")):
            reviewer.post(
                f"/api/v1/hitl/reviews/{split['id']}/feedback", json=decision(name, choice)
            ).raise_for_status()
    control = admin.post(
        "/api/v1/controls",
        json={
            "project_id": project_id,
            "evaluator_type": POLICY_EVALUATOR["name"],
            "classification": "compliant",
            "reasoning": "Offering to look into a limit is fine.",
            "reviewer": "lead@bank.example",
        },
    )
    assert control.status_code == 201, control.text
    with database.transaction() as session:
        outcomes = [
            settle_by_memory(
                session, review_id=r["id"], decision=memory_says("compliant", control.json()["id"])
            )
            for r in (partial, split, untouched)
        ]
    assert outcomes == ["skipped", "skipped", "resolved"]
    assert admin.get(f"/api/v1/hitl/reviews/{partial['id']}").json()["status"] == "pending"
    assert admin.get(f"/api/v1/hitl/reviews/{split['id']}").json()["status"] == "needs_adjudication"
    counts = {
        status: len(
            admin.get("/api/v1/hitl/reviews", params={"project_id": project_id, "status": status}).json()[
                "reviews"
            ]
        )
        for status in ("pending", "needs_adjudication", "resolved")
    }
    assert counts == {"pending": 1, "needs_adjudication": 1, "resolved": 1}
    with database.transaction(write=False) as session:
        kept = {key: n for key, n in review_counts.counts(session, project_id).items() if n}
    assert kept == {("pending", ""): 1, ("needs_adjudication", ""): 1, ("resolved", "memory"): 1}


def test_assignment_and_the_needs_my_decision_filter(tenant: Tenant, admin: httpx.Client) -> None:
    project_id = overlapped_project(admin, reviewers=2)
    mine, theirs, open_to_all = (enqueue(admin, project_id, span_id=f"a{i}") for i in range(3))
    label = f"reviewer@{tenant.name}"
    with tenant.client("reviewer") as reviewer:
        assigned = reviewer.patch(f"/api/v1/hitl/reviews/{mine['id']}", json={"assignee": label})
        assert assigned.status_code == 200 and assigned.json()["assignee"] == label
        reviewer.patch(f"/api/v1/hitl/reviews/{theirs['id']}", json={"assignee": "dora"}).raise_for_status()

        def listed(**params: Any) -> list[str]:
            found = reviewer.get("/api/v1/hitl/reviews", params={"project_id": project_id, **params})
            assert found.status_code == 200, found.text
            return [r["id"] for r in found.json()["reviews"]]

        assert listed(assigned_to="me") == [mine["id"]]
        assert listed(assigned_to="dora") == [theirs["id"]]
        assert set(listed(needs_my_decision="true")) == {mine["id"], theirs["id"], open_to_all["id"]}
        reviewer.post(f"/api/v1/hitl/reviews/{mine['id']}/feedback", json=decision(label)).raise_for_status()
        assert set(listed(needs_my_decision="true")) == {theirs["id"], open_to_all["id"]}
        assert listed(assigned_to="me", needs_my_decision="true") == []
        # Still pending: it waits for a second reviewer.
        assert mine["id"] in listed()
        unassigned = reviewer.patch(f"/api/v1/hitl/reviews/{theirs['id']}", json={"assignee": None})
        assert unassigned.json()["assignee"] is None
    with tenant.client("viewer") as viewer:
        refused = viewer.patch(f"/api/v1/hitl/reviews/{mine['id']}", json={"assignee": "x"})
        assert refused.status_code == 403
    assert "review.assigned" in event_types(admin, project_id, until="review.assigned")


def test_bulk_feedback_imports_several_decisions_per_review(admin: httpx.Client) -> None:
    project_id = overlapped_project(admin, reviewers=2)
    agreed, split = (enqueue(admin, project_id, span_id=f"b{i}") for i in range(2))
    items = [
        {"review_id": agreed["id"], **decision("ana")},
        {"review_id": agreed["id"], **decision("ben")},
        {"review_id": split["id"], **decision("ana", "compliant")},
        {"review_id": split["id"], **decision("ben", "non_compliant")},
        {"review_id": split["id"], **decision("ana", "non_compliant")},  # a second, different one: refused
    ]
    result = admin.post("/api/v1/hitl/reviews/bulk-feedback", json={"feedback": items}).json()
    assert (result["accepted"], result["rejected"]) == (4, 1)
    assert result["results"][4]["error"]["code"] == "decision_already_submitted"
    assert result["results"][1]["control_id"]
    assert admin.get(f"/api/v1/hitl/reviews/{agreed['id']}").json()["status"] == "resolved"
    assert admin.get(f"/api/v1/hitl/reviews/{split['id']}").json()["status"] == "needs_adjudication"
    assert len(controls_of(admin, project_id)) == 1


def test_people_deciding_independently_are_not_shown_memory_s_suggestion(
    tenant: Tenant, admin: httpx.Client, database: Database
) -> None:
    suggested = "compliant"
    shown = {}
    for reviewers in (1, 2):
        review_id = enqueue(admin, overlapped_project(admin, reviewers=reviewers))["id"]
        strong = MemoryDecision(suggested, 0.95, 0.95, "As before.", [], decides_alone=False, calibrated=True)
        with database.transaction() as session:
            assert settle_by_memory(session, review_id=review_id, decision=strong) == "suggested"
        with database.transaction() as session:
            principal = Principal("k", tenant.workspace_id, Role.reviewer, "ana")
            page = web_pages.review_page(session, principal=principal, review_id=review_id)
            shown[reviewers] = page.suggestion.classification if page.suggestion else None
    assert shown == {1: suggested, 2: None}
