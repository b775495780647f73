"""A risk tier sets how many people decide its reviews and their SLA: most specific wins (the tier, then the
evaluator, then the project), each review keeps what it was queued with, and the dry run and the report say what
a tier gives. On both databases; time moves with the ``clock`` fixture, never with sleeps."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from casework.db.engine import Database
from casework.db.models import Event, Integration, IntegrationLink, Review
from casework.errors import ValidationFailed
from casework.services import risk_tiers, sla_sweep
from casework.services.reviews import MemoryDecision, reopen, settle_by_memory
from tests.judge_server import JudgeServer, confident
from tests.support import POLICY_EVALUATOR, Clock, Tenant, make_project

pytestmark = pytest.mark.storage

PRIVATE = {"customer.segment": "private-banking"}
HIGH_SLA = {"target_hours": 1, "escalation_contact": "risk-lead@bank.example"}

POLICY: dict[str, Any] = {
    "tiers": [
        {"name": "high", "review": "always", "priority": 10, "reviewers_required": 2, "sla": HIGH_SLA},
        {"name": "standard", "review": "always"},
    ],
    "rules": [
        {
            "tier": "high",
            "when": [{"field": "metadata.customer.segment", "op": "eq", "value": "private-banking"}],
        }
    ],
    "default_tier": "standard",
}


@pytest.fixture
def project_id(admin: httpx.Client, judge_server: JudgeServer) -> str:
    project_id = make_project(admin)
    created = admin.post("/api/v1/evaluators", json={"project_id": project_id, **POLICY_EVALUATOR})
    assert created.status_code == 201, created.text
    judge_server.reply = confident("compliant", 0.95)
    return project_id


def save(admin: httpx.Client, project_id: str, policy: dict[str, Any] = POLICY) -> httpx.Response:
    return admin.put("/api/v1/risk-tiers", params={"project_id": project_id}, json=policy)


def queue(admin: httpx.Client, project_id: str, **extra: Any) -> dict[str, Any]:
    """Evaluate one interaction; its tier sends it to people: the review it was queued as."""
    response = admin.post(
        "/api/v1/evaluations",
        json={
            "project_id": project_id,
            "evaluators": ["policy-adherence"],
            "query": "Can I move 50,000 into the growth fund today?",
            "response": "Yes, I have placed the order; it settles tomorrow.",
            **extra,
        },
    )
    assert response.status_code == 200, response.text
    evaluation = response.json()["evaluations"][0]
    assert evaluation["review_id"], "the tier should send this one to a person"
    found: dict[str, Any] = admin.get(f"/api/v1/hitl/reviews/{evaluation['review_id']}").json()
    return found


def clock_of(database: Database, review_id: str) -> tuple[timedelta, timedelta]:
    """How long after it was queued a review is due, and when its warning point passes."""
    with database.transaction(write=False) as session:
        review = session.get_one(Review, review_id)
        assert review.due_at is not None and review.warn_at is not None
        return review.due_at - review.created_at, review.warn_at - review.created_at


def decide(client: httpx.Client, review_id: str, reviewer: str) -> dict[str, Any]:
    reply = client.post(
        f"/api/v1/hitl/reviews/{review_id}/feedback",
        json={"classification": "compliant", "reasoning": "Within the mandate.", "reviewer": reviewer},
    )
    assert reply.status_code == 201, reply.text
    found: dict[str, Any] = reply.json()
    return found


def test_wrong_reviewers_required_or_sla_is_listed_with_every_other_problem_and_nothing_is_saved(
    admin: httpx.Client, project_id: str
) -> None:
    wrong = {
        "tiers": [
            {"name": "high", "reviewers_required": 0, "sla": {"target_hours": -1, "warning_at": 1.5}},
            {"name": "standard", "sla": {"target_hours": 2, "colour": "red"}},
        ],
        "default_tier": "standard",
    }
    reply = save(admin, project_id, wrong)
    assert reply.status_code == 422 and reply.json()["error"]["code"] == "validation_error"
    assert admin.get("/api/v1/risk-tiers", params={"project_id": project_id}).json()["version"] == 0
    # The service checks a policy whole too (the web editor and a saved document go through it): each problem.
    with pytest.raises(ValidationFailed) as raised:
        risk_tiers.parse(
            {
                **wrong,
                "tiers": [
                    *wrong["tiers"],
                    {"name": "low", "reviewers_required": "two", "sla": "fast"},
                    {"name": "odd", "reviewers_required": True, "sla": {"pause_when_waiting": "yes"}},
                ],
                "rules": [{"tier": "urgent"}],
            }
        )
    where = {problem["at"] for problem in (raised.value.details or {})["problems"]}
    assert where == {
        "tiers[0].reviewers_required",
        "tiers[0].sla.target_hours",
        "tiers[0].sla.warning_at",
        "tiers[1].sla.colour",
        "tiers[2].reviewers_required",
        "tiers[2].sla",
        "tiers[3].reviewers_required",
        "tiers[3].sla.pause_when_waiting",
        "rules[0].tier",
    }
    too_many = save(admin, project_id, {**POLICY, "tiers": [{"name": "standard", "reviewers_required": 21}]})
    assert too_many.status_code == 422
    saved = save(admin, project_id)
    assert saved.status_code == 200, saved.text
    high = saved.json()["tiers"][0]
    assert (high["reviewers_required"], high["sla"]["target_hours"]) == (2, 1.0)


def test_a_tier_with_two_reviewers_needs_two_blind_decisions_and_the_default_tier_one(
    admin: httpx.Client, tenant: Tenant, project_id: str
) -> None:
    save(admin, project_id).raise_for_status()
    high = queue(admin, project_id, metadata=PRIVATE)
    standard = queue(admin, project_id)
    assert (high["tier"], high["reviewers_required"]) == ("high", 2)
    assert (standard["tier"], standard["reviewers_required"]) == ("standard", 1)
    with tenant.client("reviewer") as reviewer:
        first = decide(admin, high["id"], "ana@bank.example")
        assert (first["review_status"], first["decisions_submitted"], first["control_id"]) == (
            "pending",
            1,
            None,
        )
        blind = reviewer.get(f"/api/v1/hitl/reviews/{high['id']}").json()
        assert blind["decisions_hidden"] is True and blind["decisions"] == []
        second = decide(reviewer, high["id"], "ben@bank.example")
        assert second["review_status"] == "resolved" and second["control_id"]
        alone = decide(reviewer, standard["id"], "ben@bank.example")
        assert alone["review_status"] == "resolved" and alone["control_id"]


def test_a_tier_sla_sets_the_due_time_and_beats_the_evaluator_override_field_by_field(
    admin: httpx.Client, database: Database, project_id: str, clock: Clock
) -> None:
    save(admin, project_id).raise_for_status()
    high = queue(admin, project_id, metadata=PRIVATE)
    standard = queue(admin, project_id)
    assert clock_of(database, high["id"]) == (timedelta(hours=1), timedelta(minutes=45))
    assert clock_of(database, standard["id"]) == (timedelta(hours=24), timedelta(hours=18))
    # The evaluator's override beats the project's policy; the tier beats both, in the fields it sets.
    override = {"target_hours": 5, "warning_at": 0.5, "escalation_contact": "desk@bank.example"}
    admin.put(
        f"/api/v1/projects/{project_id}/sla",
        json={"target_hours": 24, "evaluators": {"policy-adherence": override}},
    ).raise_for_status()
    high_now = queue(admin, project_id, metadata=PRIVATE)
    standard_now = queue(admin, project_id)
    assert clock_of(database, high_now["id"]) == (timedelta(hours=1), timedelta(minutes=30))
    assert clock_of(database, standard_now["id"]) == (timedelta(hours=5), timedelta(hours=2.5))
    # Past an hour, only the high tier's reviews are overdue, told to the tier's escalation contact.
    clock.advance(minutes=61)
    with database.transaction() as session:
        sla_sweep.announce_overdue(session)  # the server's own sweep may have been first: once either way
    with database.transaction(write=False) as session:
        overdue = session.execute(
            select(Event).where(Event.project_id == project_id, Event.type == "review.overdue")
        ).scalars()
        told = {event.object_id: event.data["sla"]["escalation_contact"] for event in overdue}
    assert told == {high["id"]: "risk-lead@bank.example", high_now["id"]: "risk-lead@bank.example"}


def test_a_review_keeps_what_it_was_queued_with_when_the_tiers_change(
    admin: httpx.Client, database: Database, project_id: str, clock: Clock
) -> None:
    save(admin, project_id).raise_for_status()
    before = queue(admin, project_id, metadata=PRIVATE)
    due_before = clock_of(database, before["id"])
    clock.advance(minutes=10)
    stricter = {**POLICY["tiers"][0], "reviewers_required": 3, "sla": {"target_hours": 8, "warning_at": 0.5}}
    save(admin, project_id, {**POLICY, "tiers": [stricter, POLICY["tiers"][1]]}).raise_for_status()
    kept = admin.get(f"/api/v1/hitl/reviews/{before['id']}").json()
    assert (kept["reviewers_required"], kept["due_at"]) == (2, before["due_at"])
    assert clock_of(database, before["id"]) == due_before
    after = queue(admin, project_id, metadata=PRIVATE)
    assert after["reviewers_required"] == 3
    assert clock_of(database, after["id"]) == (timedelta(hours=8), timedelta(hours=4))
    assert parse(after["due_at"]) - parse(before["due_at"]) > timedelta(hours=7)
    # A policy whose tiers leave it unset: the evaluator's number again; the reviews already queued keep theirs.
    save(admin, project_id, {"tiers": [{"name": "standard", "review": "always"}], "default_tier": "standard"})
    assert admin.get(f"/api/v1/hitl/reviews/{after['id']}").json()["reviewers_required"] == 3
    assert queue(admin, project_id, metadata=PRIVATE)["reviewers_required"] == 1


def test_the_dry_run_and_the_report_say_what_each_tier_gives_its_reviews(
    admin: httpx.Client, project_id: str
) -> None:
    admin.put(
        f"/api/v1/projects/{project_id}/sla",
        json={"target_hours": 24, "evaluators": {"policy-adherence": {"warning_at": 0.5}}},
    ).raise_for_status()
    facts = {"evaluator": "policy-adherence", "classification": "compliant", "confidence": 0.9}
    tried = admin.post(
        "/api/v1/risk-tiers/dry-run",
        json={"project_id": project_id, "interaction": {**facts, "metadata": PRIVATE}, "policy": POLICY},
    )
    assert tried.status_code == 200, tried.text
    high = tried.json()
    assert (high["tier"], high["reviewers_required"]) == ("high", 2)
    assert high["sla"] == {
        "target_hours": 1.0,
        "warning_at": 0.5,  # the tier does not set it: the evaluator's
        "escalation_contact": "risk-lead@bank.example",
        "pause_when_waiting": False,
    }
    save(admin, project_id).raise_for_status()
    standard = admin.post(
        "/api/v1/risk-tiers/dry-run", json={"project_id": project_id, "interaction": facts}
    ).json()
    assert (standard["tier"], standard["reviewers_required"]) == ("standard", 1)
    assert (standard["sla"]["target_hours"], standard["sla"]["warning_at"]) == (24.0, 0.5)
    report = admin.get("/api/v1/risk-tiers/report", params={"project_id": project_id}).json()
    settings = {s["tier"]: s for s in report["settings"]}
    assert (settings["high"]["reviewers_required"], settings["high"]["sla"]["target_hours"]) == (2, 1.0)
    assert (settings["standard"]["reviewers_required"], settings["standard"]["sla"]["target_hours"]) == (
        None,
        24.0,
    )


def test_the_sweep_and_a_reopened_review_follow_the_tier_sla_too(
    admin: httpx.Client,
    database: Database,
    tenant: Tenant,
    project_id: str,
    judge_server: JudgeServer,
    clock: Clock,
) -> None:
    pausing = {"target_hours": 1, "pause_when_waiting": True}
    policy = {
        **POLICY,
        "tiers": [
            {
                "name": "high",
                "review": "ambiguous_or_classification",
                "classifications": ["non_compliant"],
                "sla": pausing,
            },
            {
                "name": "standard",
                "review": "ambiguous_or_classification",
                "classifications": ["non_compliant"],
            },
        ],
    }
    save(admin, project_id, policy).raise_for_status()
    judge_server.reply = confident("non_compliant", 0.95)
    high = queue(admin, project_id, metadata=PRIVATE)
    standard = queue(admin, project_id)
    with database.transaction() as session:
        jira = Integration(
            id="int_tierjira",
            workspace_id=tenant.workspace_id,
            kind="jira",
            events=["review.created"],
            config={},
            secrets="",
            created_by="test",
        )
        session.add(jira)
        session.flush()
        for review in (high, standard):
            session.add(
                IntegrationLink(integration_id=jira.id, review_id=review["id"], external_id=review["id"])
            )
    # Waiting on a ticket pauses only the review whose tier says so (the project's policy does not pause).
    with database.transaction() as session:
        sla_sweep.pause_and_resume(session)
    assert admin.get(f"/api/v1/hitl/reviews/{high['id']}").json()["paused_at"] is not None
    assert admin.get(f"/api/v1/hitl/reviews/{standard['id']}").json()["paused_at"] is None
    # Memory decides it, then a control changes and it is re-opened: its new clock is the tier's again.
    with database.transaction() as session:
        decision = MemoryDecision("compliant", 0.99, 0.99, "As before.", [], decides_alone=True)
        assert settle_by_memory(session, review_id=high["id"], decision=decision) == "resolved"
    later = clock.advance(hours=30)
    with database.transaction() as session:
        assert reopen(session, review_id=high["id"], reason="control retired", actor="test")
    reopened = parse(admin.get(f"/api/v1/hitl/reviews/{high['id']}").json()["due_at"])
    assert abs(reopened - (later + timedelta(hours=1))) < timedelta(seconds=5)


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
