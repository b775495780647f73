"""Risk tiers decide how much human attention an interaction gets: rules are validated whole, tried on one
interaction or on past evaluations, and route verdicts (and memory's resolutions) on both databases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from casework.db.engine import Database
from casework.services.reviews import MemoryDecision, settle_by_memory
from tests.judge_server import JudgeServer, confident, system_message
from tests.support import POLICY_EVALUATOR, give_evidence, make_project, wait_for

pytestmark = pytest.mark.storage

PRIVATE = {"customer.segment": "private-banking"}

POLICY: dict[str, Any] = {
    "tiers": [
        {"name": "high", "review": "always", "priority": 10, "memory_may_decide": False},
        {
            "name": "standard",
            "review": "ambiguous_or_classification",
            "classifications": ["non_compliant"],
            "spot_check_rate": 1.0,
        },
        {"name": "low", "spot_check_rate": 0.0},
    ],
    "rules": [
        {
            "tier": "high",
            "description": "private banking, or large amounts",
            "when": [{"field": "metadata.customer.segment", "op": "eq", "value": "private-banking"}],
        },
        {"tier": "high", "when": [{"field": "metadata.amount", "op": "gt", "value": 10000}]},
        {"tier": "low", "when": [{"field": "confidence", "op": "gte", "value": 0.99}]},
    ],
    "default_tier": "standard",
}

INTERACTION = {
    "query": "Can I move 50,000 into the growth fund today?",
    "response": "Yes, I have placed the order; it settles tomorrow.",
}


@pytest.fixture
def project_id(admin: httpx.Client) -> str:
    project_id = make_project(admin)
    created = admin.post("/api/v1/evaluators", json={"project_id": project_id, **POLICY_EVALUATOR})
    assert created.status_code == 201, created.text
    return project_id


def save(admin: httpx.Client, project_id: str, policy: dict[str, Any] = POLICY) -> httpx.Response:
    return admin.put("/api/v1/risk-tiers", params={"project_id": project_id}, json=policy)


def evaluate(admin: httpx.Client, project_id: str, **extra: Any) -> dict[str, Any]:
    response = admin.post(
        "/api/v1/evaluations",
        json={"project_id": project_id, "evaluators": ["policy-adherence"], **INTERACTION, **extra},
    )
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["evaluations"][0]
    return found


def review_of(admin: httpx.Client, evaluation: dict[str, Any]) -> dict[str, Any]:
    assert evaluation["review_id"], "a person should decide this one"
    found: dict[str, Any] = admin.get(f"/api/v1/hitl/reviews/{evaluation['review_id']}").json()
    return found


def spot_checks(admin: httpx.Client, project_id: str) -> list[dict[str, Any]]:
    pending = admin.get("/api/v1/hitl/reviews", params={"project_id": project_id, "limit": 500}).json()
    return [r for r in pending["reviews"] if r["kind"] == "spot_check"]


def test_a_policy_is_checked_whole_and_nothing_is_saved_when_it_is_wrong(
    admin: httpx.Client, project_id: str
) -> None:
    wrong = {
        **POLICY,
        "rules": [
            {"tier": "urgent", "when": []},
            {"tier": "high", "when": [{"field": "metadata.amount", "op": "gt", "value": "lots"}]},
            {"tier": "high", "when": [{"field": "colour", "op": "eq", "value": "red"}]},
        ],
        "default_tier": "medium",
    }
    reply = save(admin, project_id, wrong)
    assert reply.status_code == 422
    error = reply.json()["error"]
    assert error["code"] == "validation_error"
    where = {problem["at"] for problem in error["details"]["problems"]}
    assert where == {"default_tier", "rules[0].tier", "rules[1].when[0]", "rules[2].when[0]"}
    assert "'urgent' is not one of the tiers" in error["message"]
    both = save(admin, project_id, {**POLICY, "tiers": POLICY["tiers"] + [POLICY["tiers"][0]]})
    assert both.status_code == 422 and "named twice" in both.json()["error"]["message"]
    shape = save(admin, project_id, {**POLICY, "tiers": [{"name": "High Risk"}], "default_tier": "x"})
    assert shape.status_code == 422 and shape.json()["error"]["code"] == "validation_error"
    assert admin.get("/api/v1/risk-tiers", params={"project_id": project_id}).json()["version"] == 0


def test_only_an_admin_changes_tiers_and_each_change_is_a_version_with_an_event(
    admin: httpx.Client, tenant: Any, project_id: str
) -> None:
    with tenant.client("reviewer") as reviewer:
        assert save(reviewer, project_id).status_code == 403
    first = save(admin, project_id)
    assert first.status_code == 200, first.text
    assert (first.json()["version"], first.json()["default_tier"]) == (1, "standard")
    second = save(admin, project_id, {**POLICY, "default_tier": "low"})
    assert second.json()["version"] == 2
    got = admin.get("/api/v1/risk-tiers", params={"project_id": project_id}).json()
    assert got["default_tier"] == "low" and [t["name"] for t in got["tiers"]] == ["high", "standard", "low"]
    feed = {"project_id": project_id, "type": "risk_tiers.updated"}
    changes = wait_for(
        lambda: len(found := admin.get("/api/v1/events", params=feed).json()["events"]) == 2 and found
    )
    assert [e["data"]["version"] for e in changes] == [1, 2]


def test_a_dry_run_says_which_tier_and_why_under_the_saved_or_a_proposed_policy(
    admin: httpx.Client, project_id: str
) -> None:
    facts = {"evaluator": "policy-adherence", "classification": "compliant", "confidence": 0.9}
    unsaved = admin.post("/api/v1/risk-tiers/dry-run", json={"project_id": project_id, "interaction": facts})
    assert unsaved.status_code == 422
    tried = admin.post(
        "/api/v1/risk-tiers/dry-run",
        json={"project_id": project_id, "interaction": {**facts, "metadata": PRIVATE}, "policy": POLICY},
    ).json()
    assert (tried["tier"], tried["rule"], tried["needs_person"], tried["reason"]) == (
        "high",
        0,
        True,
        "tier_rule",
    )
    assert (
        "private banking" in tried["why"] and "metadata.customer.segment eq 'private-banking'" in tried["why"]
    )
    save(admin, project_id)
    nested = {**facts, "metadata": {"amount": "25000"}}
    assert (
        admin.post(
            "/api/v1/risk-tiers/dry-run", json={"project_id": project_id, "interaction": nested}
        ).json()["rule"]
        == 1
    )
    plain = admin.post(
        "/api/v1/risk-tiers/dry-run", json={"project_id": project_id, "interaction": facts}
    ).json()
    assert (plain["tier"], plain["rule"], plain["needs_person"]) == ("standard", None, False)
    assert "default tier" in plain["why"]
    failing = {**facts, "classification": "non_compliant"}
    assert admin.post(
        "/api/v1/risk-tiers/dry-run", json={"project_id": project_id, "interaction": failing}
    ).json()["needs_person"]


def test_tiers_route_confident_verdicts_to_people_and_say_why(
    admin: httpx.Client, project_id: str, judge_server: JudgeServer
) -> None:
    judge_server.reply = confident("compliant", 0.95)
    assert evaluate(admin, project_id)["review_id"] is None  # no tiers: a confident verdict needs nobody
    save(admin, project_id)
    high = evaluate(admin, project_id, metadata=PRIVATE)
    review = review_of(admin, high)
    assert (high["tier"], review["tier"], review["reason"], review["priority"]) == (
        "high",
        "high",
        "tier_rule",
        10,
    )
    assert review["classification"] == "compliant"
    standard = evaluate(admin, project_id)
    assert standard["tier"] == "standard" and standard["review_id"] is None
    judge_server.reply = confident("non_compliant", 0.95)
    failing = review_of(admin, evaluate(admin, project_id))
    assert (failing["tier"], failing["reason"]) == ("standard", "tier_rule")
    judge_server.reply = confident("ambiguous", 0.3)
    unsure = review_of(admin, evaluate(admin, project_id))
    assert (unsure["tier"], unsure["reason"]) == ("standard", "ambiguous")


def test_each_tier_spot_checks_confident_verdicts_at_its_own_rate(
    admin: httpx.Client, project_id: str, judge_server: JudgeServer
) -> None:
    save(admin, project_id)
    judge_server.reply = confident("compliant", 0.95)
    checked = [evaluate(admin, project_id) for _ in range(3)]  # standard: every one is spot-checked
    judge_server.reply = confident("compliant", 0.995)
    unchecked = [evaluate(admin, project_id) for _ in range(3)]  # low: none
    spot = spot_checks(admin, project_id)
    assert sorted(r["subject_id"] for r in spot) == sorted(e["id"] for e in checked)
    assert {r["tier"] for r in spot} == {"standard"}
    assert all(e["tier"] == "low" for e in unchecked)


def test_a_tier_where_memory_may_not_decide_keeps_its_cases_for_people(
    admin: httpx.Client, database: Database, runner: Any, settled: Callable[[], None]
) -> None:
    project_id = make_project(admin, "precedent")
    admin.post(
        "/api/v1/evaluators",
        json={"project_id": project_id, "name": "advice", "kind": "precedent", "options": ["ok", "harmful"]},
    ).raise_for_status()
    give_evidence(database, project_id, "advice", "harmful", 130, score=0.5)
    runner.evidence_changed(project_id, "advice")
    policy = {
        "tiers": [{"name": "high", "memory_may_decide": False}, {"name": "standard"}],
        "rules": [
            {
                "tier": "high",
                "when": [{"field": "metadata.customer.segment", "op": "eq", "value": "private-banking"}],
            }
        ],
        "default_tier": "standard",
    }
    save(admin, project_id, policy).raise_for_status()

    def evaluate_advice(query: str, **extra: Any) -> dict[str, Any]:
        reply = admin.post(
            "/api/v1/evaluations",
            json={
                "project_id": project_id,
                "evaluators": ["advice"],
                "query": query,
                "response": "Put everything in the fund: returns are guaranteed.",
                **extra,
            },
        )
        assert reply.status_code == 200, reply.text
        found: dict[str, Any] = reply.json()["evaluations"][0]
        return found

    # No control yet: both are ambiguous and go to people, in their tiers.
    first = evaluate_advice("Should I put my savings into the growth fund?")
    kept = evaluate_advice("Should I put my pension into the growth fund?", metadata=PRIVATE)
    free = evaluate_advice("Should I put my bonus into the growth fund?")
    assert (review_of(admin, kept)["tier"], review_of(admin, free)["tier"]) == ("high", "standard")
    decided = admin.post(
        f"/api/v1/hitl/reviews/{first['review_id']}/feedback",
        json={
            "classification": "harmful",
            "reasoning": "Nothing is guaranteed.",
            "reviewer": "ana@bank.example",
        },
    )
    assert decided.status_code == 201, decided.text
    settled()
    wait_for(lambda: review_of(admin, free)["status"] == "resolved")  # memory may decide the standard one
    held = review_of(admin, kept)
    assert held["status"] == "pending", "memory must not decide a high-tier case alone"
    assert held["suggestion"]["classification"] == "harmful"
    # At evaluation time too: memory's confident verdict goes to a person, with its suggestion.
    again = evaluate_advice("Should I put my inheritance into the growth fund?", metadata=PRIVATE)
    routed = review_of(admin, again)
    assert (routed["reason"], routed["suggestion"]["classification"]) == ("tier_rule", "harmful")
    assert evaluate_advice("Should I put my savings into the growth fund today?")["review_id"] is None


def test_impact_shows_what_a_policy_would_send_to_people_and_the_report_what_tiers_did(
    admin: httpx.Client, project_id: str, judge_server: JudgeServer
) -> None:
    judge_server.reply = confident("compliant", 0.95)
    for _ in range(4):
        evaluate(admin, project_id)
    evaluate(admin, project_id, metadata=PRIVATE)
    everything = {"tiers": [{"name": "all", "review": "always"}], "default_tier": "all"}
    tried = admin.post(
        "/api/v1/risk-tiers/impact", json={"project_id": project_id, "policy": everything, "days": 7}
    ).json()
    assert (tried["evaluations"], tried["to_people_now"], tried["to_people"]) == (5, 0, 5)
    assert tried["share_to_people"] == 1.0
    save(admin, project_id)
    proposed = admin.post("/api/v1/risk-tiers/impact", json={"project_id": project_id}).json()
    by_tier = {t["tier"]: (t["evaluations"], t["to_people"]) for t in proposed["tiers"]}
    assert by_tier == {"high": (1, 1), "standard": (4, 0), "low": (0, 0)}
    # Under the saved policy, standard verdicts are all spot-checked: a person disagrees with one of two.
    checked = [evaluate(admin, project_id) for _ in range(2)]
    spot = spot_checks(admin, project_id)
    assert sorted(r["subject_id"] for r in spot) == sorted(e["id"] for e in checked)
    for review, classification in zip(spot, ["compliant", "non_compliant"], strict=True):
        admin.post(
            f"/api/v1/hitl/reviews/{review['id']}/feedback",
            json={"classification": classification, "reasoning": "Checked.", "reviewer": "lead@bank.example"},
        ).raise_for_status()
    report = admin.get("/api/v1/risk-tiers/report", params={"project_id": project_id}).json()
    standard = next(t for t in report["tiers"] if t["tier"] == "standard")
    assert (standard["evaluations"], standard["spot_checks"], standard["spot_checks_wrong"]) == (2, 2, 1)
    assert standard["estimated_error_rate"] == 0.5
    low, high = standard["error_rate_interval"]
    assert 0 < low < 0.5 < high < 1
    untiered = next(t for t in report["tiers"] if t["tier"] is None)
    assert untiered["evaluations"] == 5


def test_a_rule_on_the_run_is_checked_on_save_routes_live_verdicts_and_is_explained(
    admin: httpx.Client, project_id: str, judge_server: JudgeServer
) -> None:
    on_run = {"field": "run", "op": "eq", "value": "nightly-backfill"}
    policy = {**POLICY, "rules": [{"tier": "high", "when": [on_run]}, *POLICY["rules"]]}
    wrong = save(admin, project_id, {**policy, "rules": [{"tier": "high", "when": [{**on_run, "op": "gt"}]}]})
    assert wrong.status_code == 422
    assert wrong.json()["error"]["details"]["problems"][0]["at"] == "rules[0].when[0]"
    assert save(admin, project_id, policy).status_code == 200
    run = admin.post(f"/api/v1/projects/{project_id}/runs", json={"name": "nightly-backfill"}).json()
    other = admin.post(f"/api/v1/projects/{project_id}/runs", json={"name": "daytime"}).json()

    judge_server.reply = confident("compliant", 0.95)
    backfill = evaluate(admin, project_id, run_id=run["id"])
    assert (backfill["tier"], review_of(admin, backfill)["reason"]) == ("high", "tier_rule")
    daytime = evaluate(admin, project_id, run_id=other["id"])
    assert (daytime["tier"], daytime["review_id"]) == ("standard", None)

    facts = {"evaluator": "policy-adherence", "classification": "compliant", "confidence": 0.95}
    for given in ({"run_id": run["id"]}, {"run": "nightly-backfill"}):
        tried = admin.post(
            "/api/v1/risk-tiers/dry-run", json={"project_id": project_id, "interaction": {**facts, **given}}
        ).json()
        assert (tried["tier"], tried["rule"], tried["needs_person"]) == ("high", 0, True)
        assert "run eq 'nightly-backfill'" in tried["why"]
    impact = admin.post("/api/v1/risk-tiers/impact", json={"project_id": project_id}).json()
    by_tier = {t["tier"]: (t["evaluations"], t["to_people"]) for t in impact["tiers"]}
    assert by_tier["high"] == (1, 1) and by_tier["standard"] == (1, 0)


def test_a_rule_on_the_tags_of_the_retrieved_controls_routes_verdicts_memory_helped_reach(
    admin: httpx.Client, project_id: str, judge_server: JudgeServer, settled: Callable[[], None]
) -> None:
    tagged = {"field": "control_tags", "op": "contains", "value": "guarantees"}
    policy = {**POLICY, "rules": [{"tier": "high", "when": [tagged]}], "default_tier": "low"}
    assert save(admin, project_id, policy).status_code == 200
    precedent = admin.post(
        "/api/v1/hitl/reviews",
        json={
            "project_id": project_id,
            "evaluator_type": "policy-adherence",
            **INTERACTION,
            "options": ["compliant", "non_compliant"],
        },
    ).json()
    admin.post(
        f"/api/v1/hitl/reviews/{precedent['id']}/feedback",
        json={
            "classification": "compliant",
            "reasoning": "Orders may be placed.",
            "reviewer": "ana@bank.example",
            "tags": ["guarantees"],
        },
    ).raise_for_status()
    settled()

    def reply(body: dict[str, Any]) -> dict[str, Any]:
        if "second review" in system_message(body):  # the re-evaluation, with {memories}
            return {"classification": "compliant", "confidence": 0.95, "explanation": "as decided before"}
        return {"classification": "ambiguous", "confidence": 0.2, "explanation": "unsure"}

    judge_server.reply = reply
    helped = evaluate(admin, project_id)
    assert helped["memory_control_ids"] and helped["classification"] == "compliant"
    assert (helped["tier"], review_of(admin, helped)["reason"]) == ("high", "tier_rule")
    judge_server.reply = confident("compliant", 0.95)
    alone = evaluate(admin, project_id)
    assert (alone["tier"], alone["review_id"]) == ("low", None)

    facts = {"evaluator": "policy-adherence", "classification": "compliant", "confidence": 0.95}
    tried = admin.post(
        "/api/v1/risk-tiers/dry-run",
        json={"project_id": project_id, "interaction": {**facts, "control_tags": ["guarantees", "x"]}},
    ).json()
    assert (tried["tier"], tried["rule"]) == ("high", 0) and "control_tags contains 'guarantees'" in tried[
        "why"
    ]
    impact = admin.post("/api/v1/risk-tiers/impact", json={"project_id": project_id}).json()
    by_tier = {t["tier"]: (t["evaluations"], t["to_people"]) for t in impact["tiers"]}
    assert by_tier["high"] == (1, 1) and by_tier["low"] == (1, 0)


def test_a_tier_s_memory_spot_check_rate_is_what_memory_s_resolutions_are_checked_at(
    admin: httpx.Client, project_id: str, judge_server: JudgeServer, database: Database
) -> None:
    policy = {
        "tiers": [
            {"name": "high", "memory_spot_check_rate": 1.0},
            {"name": "standard", "memory_spot_check_rate": 0.0},
        ],
        "rules": POLICY["rules"][:1],
        "default_tier": "standard",
    }
    assert save(admin, project_id, policy).status_code == 200
    judge_server.reply = confident("ambiguous", 0.3)
    high = review_of(admin, evaluate(admin, project_id, metadata=PRIVATE))
    standard = review_of(admin, evaluate(admin, project_id))
    assert (high["tier"], standard["tier"]) == ("high", "standard")
    # The evaluator's own rate says never for the one, always for the other: each tier's rate wins.
    for review, evaluator_rate in ((high, 0.0), (standard, 1.0)):
        decision = MemoryDecision(
            "compliant", 0.99, 0.99, "As before.", [], decides_alone=True, spot_check_rate=evaluator_rate
        )
        with database.transaction() as session:
            assert settle_by_memory(session, review_id=review["id"], decision=decision) == "resolved"
    [check] = spot_checks(admin, project_id)
    assert (check["subject_id"], check["tier"]) == (high["id"], "high")


def test_impact_and_the_dry_run_count_the_spot_checks_each_tier_would_send_to_people(
    admin: httpx.Client, project_id: str, judge_server: JudgeServer
) -> None:
    judge_server.reply = confident("compliant", 0.95)
    evaluate(admin, project_id, metadata=PRIVATE)
    for _ in range(4):
        evaluate(admin, project_id)
    judge_server.reply = confident("compliant", 0.995)
    for _ in range(2):
        evaluate(admin, project_id)
    judge_server.reply = confident("ambiguous", 0.3)
    evaluate(admin, project_id)
    # From now on the evaluator spot-checks half of its confident verdicts; the "checked" tier every one.
    evaluator = admin.get("/api/v1/evaluators", params={"project_id": project_id}).json()["evaluators"][0]
    admin.patch(
        f"/api/v1/evaluators/{evaluator['id']}", json={"judge_spot_check_rate": 0.5}
    ).raise_for_status()
    policy = {
        "tiers": [
            {"name": "high", "review": "always"},
            {"name": "checked", "spot_check_rate": 1.0},
            {"name": "std"},
        ],
        "rules": [
            POLICY["rules"][0],
            {"tier": "checked", "when": [{"field": "confidence", "op": "gte", "value": 0.99}]},
        ],
        "default_tier": "std",
    }
    tried = admin.post("/api/v1/risk-tiers/impact", json={"project_id": project_id, "policy": policy}).json()
    by_tier = {
        t["tier"]: (t["evaluations"], t["to_people"], t["spot_checks"], t["share_to_people"])
        for t in tried["tiers"]
    }
    assert by_tier == {"high": (1, 1, 0.0, 1.0), "checked": (2, 0, 2.0, 1.0), "std": (5, 1, 2.0, 0.6)}
    assert (tried["evaluations"], tried["to_people"], tried["spot_checks"]) == (8, 2, 4.0)
    assert (tried["share_to_people"], tried["share_spot_checked"]) == (0.75, 0.5)
    assert (tried["to_people_now"], tried["spot_checks_now"]) == (1, 0)

    facts = {"evaluator": "policy-adherence", "classification": "compliant"}
    for interaction, expected in (
        ({"confidence": 0.95}, (False, 0.5)),
        ({"confidence": 0.995}, (False, 1.0)),
        ({"confidence": 0.95, "metadata": PRIVATE}, (True, 0.0)),
    ):
        found = admin.post(
            "/api/v1/risk-tiers/dry-run",
            json={"project_id": project_id, "interaction": {**facts, **interaction}, "policy": policy},
        ).json()
        assert (found["needs_person"], found["spot_check_rate"]) == expected
