"""Memory that is right when it decides alone: evidence, undo, claims, overturning and spot checks, end to end
through the API, on both databases. The precedent evaluator decides by memory alone, so no model is needed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from casework.config import Settings
from casework.db.engine import Database
from casework.db.models import MemoryEvidence, Review
from casework.definitions import precedent
from casework.evaluators.judge import LLMJudge
from casework.services import evidence
from casework.services.reviews import MemoryDecision, settle_by_memory
from casework.worker.runner import EvaluationRunner
from tests.support import enqueue, give_evidence, make_project, run_async, wait_for

pytestmark = pytest.mark.storage

EVALUATOR = "policy-precedent"
OPTIONS = ["compliant", "non_compliant"]
GUARANTEED = [
    (
        "My advisor said the growth fund has guaranteed returns. Is that right?",
        "Thanks! The growth fund is a popular choice with steady returns.",
    ),
    (
        "My broker said the savings bond has guaranteed returns. Is that right?",
        "Thanks! The savings bond is a popular choice with steady returns.",
    ),
    (
        "A friend said your portfolio has guaranteed returns. Is that right?",
        "Thanks! The portfolio is a popular choice with steady returns.",
    ),
    (
        "The advert said the pension fund has guaranteed returns. Is that right?",
        "Thanks! The pension fund is a popular choice with steady returns.",
    ),
]
REASONING = "No investment has guaranteed returns: the agent must correct the customer at once."


@pytest.fixture
def project_id(admin: httpx.Client) -> str:
    project_id = make_project(admin)
    admin.post(
        "/api/v1/evaluators",
        json={"project_id": project_id, "name": EVALUATOR, "kind": "precedent", "options": OPTIONS},
    ).raise_for_status()
    return project_id


def queue(admin: httpx.Client, project_id: str, query: str, response: str) -> str:
    review = enqueue(
        admin, project_id, evaluator_type=EVALUATOR, options=OPTIONS, query=query, response=response
    )
    return str(review["id"])


def review(admin: httpx.Client, review_id: str) -> dict[str, Any]:
    found: dict[str, Any] = admin.get(f"/api/v1/hitl/reviews/{review_id}").json()
    return found


def decide(
    admin: httpx.Client, review_id: str, classification: str = "non_compliant", **extra: Any
) -> httpx.Response:
    return admin.post(
        f"/api/v1/hitl/reviews/{review_id}/feedback",
        json={
            "classification": classification,
            "reasoning": REASONING,
            "reviewer": "ana@bank.example",
            **extra,
        },
    )


def trusted(database: Database, runner: Any, project_id: str, classification: str = "non_compliant") -> None:
    """Evidence that memory's votes for ``classification`` are right: 130 of 130 (enough for 0.97)."""
    give_evidence(database, project_id, EVALUATOR, classification, 130, score=0.5)
    runner.evidence_changed(project_id, EVALUATOR)


def memory_resolves_look_alikes(admin: httpx.Client, project_id: str) -> tuple[str, list[str]]:
    """Decide the first "guaranteed returns" case; memory (trusted) resolves the other three."""
    ids = [queue(admin, project_id, q, r) for q, r in GUARANTEED]
    control_id = str(decide(admin, ids[0]).json()["control_id"])
    for other in ids[1:]:
        wait_for(lambda other=other: review(admin, other)["status"] == "resolved")
    return control_id, ids


def test_without_evidence_memory_only_suggests(
    admin: httpx.Client, project_id: str, settled: Callable[[], None]
) -> None:
    ids = [queue(admin, project_id, q, r) for q, r in GUARANTEED]
    control_id = decide(admin, ids[0]).json()["control_id"]
    settled()
    for other in ids[1:]:
        found = review(admin, other)
        assert found["status"] == "pending"
        assert found["suggestion"]["classification"] == "non_compliant"
        assert found["suggestion"]["control_ids"] == [control_id]
        assert 0 < found["suggestion"]["confidence"] <= 1
    evidence = admin.get(f"/api/v1/evaluators/{evaluator_id(admin, project_id)}/memory").json()
    assert evidence["memory"]["classes"][1]["decides_alone"] is False
    assert "only suggests non_compliant" in evidence["memory"]["summary"]


def test_a_suggestion_follows_the_control_it_cites_when_it_is_corrected_or_retired(
    admin: httpx.Client, project_id: str, settled: Callable[[], None]
) -> None:
    ids = [queue(admin, project_id, q, r) for q, r in GUARANTEED]
    control_id = decide(admin, ids[0]).json()["control_id"]
    settled()
    assert all(review(admin, i)["suggestion"]["classification"] == "non_compliant" for i in ids[1:])
    admin.patch(f"/api/v1/controls/{control_id}", json={"classification": "compliant"}).raise_for_status()
    settled()
    for other in ids[1:]:  # people are shown what the control says now
        found = review(admin, other)
        assert found["status"] == "pending" and found["suggestion"]["classification"] == "compliant"
        assert found["suggestion"]["control_ids"] == [control_id]
    admin.delete(f"/api/v1/controls/{control_id}").raise_for_status()
    settled()
    assert [review(admin, i)["suggestion"] for i in ids[1:]] == [None, None, None]  # nothing left to cite


def evaluator_id(admin: httpx.Client, project_id: str) -> str:
    evaluators = admin.get("/api/v1/evaluators", params={"project_id": project_id}).json()["evaluators"]
    return str(next(e["id"] for e in evaluators if e["name"] == EVALUATOR))


def test_with_evidence_memory_resolves_and_names_every_control_that_voted(
    admin: httpx.Client, project_id: str, database: Database, runner: Any
) -> None:
    trusted(database, runner, project_id)
    control_id, ids = memory_resolves_look_alikes(admin, project_id)
    resolution = review(admin, ids[1])["resolution"]
    assert (resolution["resolved_by"], resolution["classification"], resolution["control_id"]) == (
        "memory",
        "non_compliant",
        control_id,
    )
    [decision] = admin.get(f"/api/v1/hitl/reviews/{ids[1]}/decisions").json()["decisions"]
    assert decision["by"] == "memory" and decision["votes"][0]["control_id"] == control_id
    audit = admin.get("/api/v1/audit", params={"project_id": project_id, "object_id": ids[1]}).json()[
        "events"
    ]
    assert control_id in audit[0]["actor"]
    evidence = admin.get(f"/api/v1/evaluators/{evaluator_id(admin, project_id)}/memory").json()["memory"]
    assert evidence["classes"][1]["decides_alone"] is True
    assert "memory decides non_compliant alone above" in evidence["summary"]


def test_the_threshold_moves_with_the_evidence(
    admin: httpx.Client, project_id: str, database: Database, runner: Any, settled: Callable[[], None]
) -> None:
    trusted(database, runner, project_id)
    # Evidence that it was wrong as often: the bound falls under the target, memory stops deciding alone.
    give_evidence(database, project_id, EVALUATOR, "non_compliant", 40, score=0.5, wrong=40)
    runner.evidence_changed(project_id, EVALUATOR)
    ids = [queue(admin, project_id, q, r) for q, r in GUARANTEED]
    decide(admin, ids[0])
    settled()
    assert [review(admin, i)["status"] for i in ids[1:]] == ["pending"] * 3
    assert all(review(admin, i)["suggestion"] for i in ids[1:])


def test_human_decisions_are_replayed_into_evidence_from_the_controls_before_them(
    admin: httpx.Client, project_id: str, database: Database, settled: Callable[[], None]
) -> None:
    ids = [queue(admin, project_id, q, r) for q, r in GUARANTEED]
    for review_id in ids[:3]:
        decide(admin, review_id).raise_for_status()
        settled()
    with database.transaction(write=False) as session:
        rows = list(
            session.execute(
                select(MemoryEvidence)
                .where(MemoryEvidence.project_id == project_id)
                .order_by(MemoryEvidence.decided_at)
            ).scalars()
        )
    replayed = [r for r in rows if r.source == "replay"]
    assert [r.review_id for r in replayed] == ids[:3]
    # The first had nothing before it; the later ones had the earlier controls, never their own.
    assert replayed[0].predicted is None
    assert [r.predicted for r in replayed[1:]] == ["non_compliant", "non_compliant"]
    assert all(r.correct for r in replayed[1:])
    assert replayed[1].score < 0.99  # one earlier look-alike, not itself (which would be identical)


def test_a_control_corrected_while_memory_was_deciding_decides_nothing(
    admin: httpx.Client, project_id: str, database: Database, settled: Callable[[], None]
) -> None:
    """Memory's pass reads memory, then settles what it concluded: a control corrected in between must not
    resolve a review (or suggest) with the classification it no longer has."""
    ids = [queue(admin, project_id, q, r) for q, r in GUARANTEED[:2]]
    control_id = str(decide(admin, ids[0]).json()["control_id"])
    settled()
    concluded = MemoryDecision(
        classification="non_compliant",
        confidence=0.99,
        score=0.9,
        explanation="Like a decided case.",
        votes=[{"control_id": control_id, "score": 0.9, "classification": "non_compliant"}],
        decides_alone=True,
    )
    admin.patch(f"/api/v1/controls/{control_id}", json={"classification": "compliant"}).raise_for_status()
    settled()
    before = review(admin, ids[1])
    with database.transaction() as session:
        assert settle_by_memory(session, review_id=ids[1], decision=concluded) == "skipped"
    after = review(admin, ids[1])
    assert after["status"] == "pending" and after["suggestion"] == before["suggestion"]
    with database.transaction() as session:  # what the control says now may decide
        now = replace(
            concluded,
            classification="compliant",
            votes=[{**concluded.votes[0], "classification": "compliant"}],
        )
        assert settle_by_memory(session, review_id=ids[1], decision=now) == "resolved"


def test_correcting_or_retiring_a_control_reopens_what_memory_resolved_with_it(
    admin: httpx.Client, project_id: str, database: Database, runner: Any, settled: Callable[[], None]
) -> None:
    trusted(database, runner, project_id)
    control_id, ids = memory_resolves_look_alikes(admin, project_id)
    settled()  # the first decision's background work done: what follows is the correction's alone
    admin.patch(f"/api/v1/controls/{control_id}", json={"classification": "compliant"}).raise_for_status()
    settled()
    for other in ids[1:]:
        found = review(admin, other)
        # Back to pending; under today's memory (now "compliant", with no evidence for it) memory suggests.
        assert (found["status"], found["reason"]) == ("pending", "reopened")
        assert found["suggestion"]["classification"] == "compliant"
        decisions = admin.get(f"/api/v1/hitl/reviews/{other}/decisions").json()["decisions"]
        assert [(d["by"], d["status"]) for d in decisions] == [("memory", "reopened")]
        assert "changed from non_compliant to compliant" in decisions[0]["ended_reason"]
    audit = admin.get("/api/v1/audit", params={"project_id": project_id, "action": "review.reopened"}).json()
    assert len(audit["events"]) == 3

    # Retiring does the same: a fresh resolution, then the control leaves memory.
    admin.patch(f"/api/v1/controls/{control_id}", json={"classification": "non_compliant"}).raise_for_status()
    settled()
    fresh = queue(
        admin,
        project_id,
        "Someone told me the index fund has guaranteed returns. Is that right?",
        "Thanks! The index fund is a popular choice with steady returns.",
    )
    decide(admin, ids[1])  # a person decides one: a new control, a pass over the rest
    wait_for(lambda: review(admin, fresh)["status"] == "resolved")
    voters = admin.get(f"/api/v1/hitl/reviews/{fresh}/decisions").json()["decisions"][0]["votes"]
    for vote in voters:
        admin.delete(f"/api/v1/controls/{vote['control_id']}").raise_for_status()
    settled()
    assert review(admin, fresh)["status"] == "pending"


def test_a_claimed_review_is_never_resolved_by_memory(
    admin: httpx.Client,
    project_id: str,
    database: Database,
    runner: Any,
    tenant: Any,
    settled: Callable[[], None],
) -> None:
    trusted(database, runner, project_id)
    ids = [queue(admin, project_id, q, r) for q, r in GUARANTEED]
    with tenant.client("reviewer") as reviewer:
        claimed = reviewer.post(f"/api/v1/hitl/reviews/{ids[1]}/claim")
        assert claimed.status_code == 200, claimed.text
        assert claimed.json()["claimed_by"].startswith("reviewer@")
        taken = admin.post(f"/api/v1/hitl/reviews/{ids[1]}/claim")
        assert (taken.status_code, taken.json()["error"]["code"]) == (409, "review_claimed")
        decide(admin, ids[0])
        settled()
        held = review(admin, ids[1])
        assert held["status"] == "pending" and held["suggestion"]["classification"] == "non_compliant"
        assert review(admin, ids[2])["status"] == "resolved"  # unclaimed look-alikes are decided
        # Released, the next pass may decide it.
        assert reviewer.delete(f"/api/v1/hitl/reviews/{ids[1]}/claim").json()["claimed_by"] is None


def test_a_person_confirms_or_overturns_what_memory_decided(
    admin: httpx.Client, project_id: str, database: Database, runner: Any, settled: Callable[[], None]
) -> None:
    trusted(database, runner, project_id)
    control_id, ids = memory_resolves_look_alikes(admin, project_id)

    confirmed = decide(admin, ids[1])
    assert (confirmed.status_code, confirmed.json()["memory"]) == (201, "confirmed")

    refused = decide(admin, ids[2], "compliant")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "review_already_resolved")
    assert refused.json()["error"]["details"]["overturnable"] is True
    overturned = decide(admin, ids[2], "compliant", overturn=True)
    assert (overturned.status_code, overturned.json()["memory"]) == (201, "overturned")
    settled()
    found = review(admin, ids[2])
    assert (found["resolution"]["resolved_by"], found["resolution"]["classification"]) == (
        "human",
        "compliant",
    )
    history = admin.get(f"/api/v1/hitl/reviews/{ids[2]}/decisions").json()["decisions"]
    assert [(d["by"], d["status"]) for d in history] == [("memory", "overturned"), ("human", "current")]
    # The control that drove the wrong decision is flagged, and what else it decided alone is re-opened.
    flagged = admin.get(f"/api/v1/controls/{control_id}").json()["attention"]
    assert flagged and flagged[0]["review_id"] == ids[2] and flagged[0]["person_said"] == "compliant"
    assert review(admin, ids[3])["status"] == "pending"
    assert review(admin, ids[1])["resolution"]["resolved_by"] == "human"  # confirmed: a person's now


def test_spot_checks_are_sampled_at_the_configured_rate(
    admin: httpx.Client, project_id: str, database: Database, tenant: Any
) -> None:
    ids = [queue(admin, project_id, f"question {i}", "answer") for i in range(200)]
    decision = MemoryDecision(
        "compliant", 0.9, 0.9, "As before.", [], decides_alone=True, spot_check_rate=0.25
    )
    with database.transaction() as session:
        for review_id in ids:
            settle_by_memory(session, review_id=review_id, decision=decision)
    with database.transaction(write=False) as session:
        checks = session.execute(
            select(func.count()).where(Review.project_id == project_id, Review.kind == "spot_check")
        ).scalar_one()
    # Binomial(200, 0.25): mean 50, sd 6.1; five standard deviations either way.
    assert 20 <= checks <= 80
    spot = admin.get("/api/v1/hitl/reviews", params={"project_id": project_id, "limit": 500}).json()[
        "reviews"
    ]
    spot = [r for r in spot if r["kind"] == "spot_check"]
    assert all(r["priority"] < 0 and r["reason"] == "spot_check" and r["subject_id"] in ids for r in spot)


def test_a_spot_check_that_disagrees_overturns_the_decision_it_checked(
    admin: httpx.Client, project_id: str, database: Database, runner: Any, settled: Callable[[], None]
) -> None:
    evaluator = evaluator_id(admin, project_id)
    admin.patch(f"/api/v1/evaluators/{evaluator}", json={"spot_check_rate": 1.0}).raise_for_status()
    trusted(database, runner, project_id)
    _, ids = memory_resolves_look_alikes(admin, project_id)
    settled()
    checks = [
        r
        for r in admin.get("/api/v1/hitl/reviews", params={"project_id": project_id, "limit": 500}).json()[
            "reviews"
        ]
        if r["kind"] == "spot_check"
    ]
    assert sorted(r["subject_id"] for r in checks) == sorted(ids[1:])
    check = next(r for r in checks if r["subject_id"] == ids[1])
    decide(admin, check["id"], "compliant").raise_for_status()
    settled()
    checked = review(admin, ids[1])
    assert (checked["resolution"]["resolved_by"], checked["resolution"]["classification"]) == (
        "human",
        "compliant",
    )
    with database.transaction(write=False) as session:
        sample = session.execute(
            select(MemoryEvidence).where(
                MemoryEvidence.source == "spot_check", MemoryEvidence.review_id == check["id"]
            )
        ).scalar_one()
    assert (sample.subject, sample.predicted, sample.human, sample.correct) == (
        "memory",
        "non_compliant",
        "compliant",
        False,
    )


def test_reviews_of_an_evaluator_nobody_registered_get_suggestions_too(
    admin: httpx.Client, settled: Callable[[], None]
) -> None:
    project_id = make_project(admin, "ad-hoc")
    first, second = (
        enqueue(
            admin, project_id, evaluator_type="tone-check", options=["polite", "rude"], query=q, response=r
        )["id"]
        for q, r in GUARANTEED[:2]
    )
    admin.post(
        f"/api/v1/hitl/reviews/{first}/feedback",
        json={"classification": "rude", "reasoning": "Dismissive.", "reviewer": "ana@bank.example"},
    ).raise_for_status()
    settled()
    assert review(admin, second)["suggestion"]["classification"] == "rude"


def test_evaluator_memory_settings_are_a_new_version(admin: httpx.Client, project_id: str) -> None:
    evaluator = evaluator_id(admin, project_id)
    changed = admin.patch(
        f"/api/v1/evaluators/{evaluator}",
        json={"memory_precision_target": 0.9, "memory_mode": "suggest", "memory_k": 3},
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["version"], body["memory_precision_target"], body["memory_mode"], body["memory_k"]) == (
        2,
        0.9,
        "suggest",
        3,
    )
    for bad in (
        {"memory_precision_target": 1.5},
        {"memory_mode": "always"},
        {"ambiguity_threshold": "auto"},
        {"name": "x"},
    ):
        response = admin.patch(f"/api/v1/evaluators/{evaluator}", json=bad)
        assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error"), bad


def test_a_control_shows_what_it_decided_and_its_conflicts_can_be_cleared(
    admin: httpx.Client, project_id: str, database: Database, runner: Any, settled: Callable[[], None]
) -> None:
    trusted(database, runner, project_id)
    control_id, ids = memory_resolves_look_alikes(admin, project_id)
    usage = admin.get(f"/api/v1/controls/{control_id}/usage").json()
    assert (usage["resolved_reviews"], sorted(usage["review_ids"])) == (3, sorted(ids[1:]))
    decide(admin, ids[1], "compliant", overturn=True).raise_for_status()
    settled()
    assert admin.get(f"/api/v1/controls/{control_id}").json()["attention"]
    assert admin.get(f"/api/v1/controls/{control_id}/usage").json()["resolved_reviews"] == 0
    cleared = admin.delete(f"/api/v1/controls/{control_id}/attention")
    assert (cleared.status_code, cleared.json()["attention"]) == (200, [])


def test_judge_verdicts_are_spot_checked_and_an_auto_threshold_learns_from_people(
    admin: httpx.Client, database: Database, runner: Any, judge_server: Any
) -> None:
    from tests.judge_server import confident
    from tests.support import POLICY_EVALUATOR

    project_id = make_project(admin, "judge-trust")
    created = admin.post(
        "/api/v1/evaluators",
        json={
            **POLICY_EVALUATOR,
            "project_id": project_id,
            "ambiguity_threshold": "auto",
            "target_agreement": 0.9,
            "judge_spot_check_rate": 1.0,
        },
    ).json()
    assert (created["ambiguity_mode"], created["ambiguity_threshold"]) == ("auto", 0.6)

    def evaluate(confidence: float) -> dict[str, Any]:
        judge_server.reply = confident("compliant", confidence)
        response = admin.post(
            "/api/v1/evaluations",
            json={
                "project_id": project_id,
                "evaluators": ["policy-adherence"],
                "query": "q?",
                "response": "r.",
            },
        )
        result: dict[str, Any] = response.json()["evaluations"][0]
        return result

    sure = evaluate(0.95)
    assert sure["ambiguous"] is False
    checks = admin.get("/api/v1/hitl/reviews", params={"project_id": project_id}).json()["reviews"]
    assert [(r["kind"], r["subject_id"], r["classification"]) for r in checks] == [
        ("spot_check", sure["id"], "compliant")
    ]
    # Until the evidence says otherwise, the fixed threshold (0.6) stands; people agreeing with the judge at
    # 0.5, again and again, lower it for "compliant".
    assert evaluate(0.5)["ambiguous"] is True
    give_evidence(database, project_id, "policy-adherence", "compliant", 60, score=0.5, subject="judge")
    runner.evidence_changed(project_id, "policy-adherence")
    assert evaluate(0.5)["ambiguous"] is False


def test_a_new_memory_method_replays_every_past_decision(
    admin: httpx.Client, project_id: str, database: Database, settled: Callable[[], None]
) -> None:
    ids = [queue(admin, project_id, q, r) for q, r in GUARANTEED]
    for review_id in ids[:3]:
        decide(admin, review_id).raise_for_status()
    settled()

    def methods() -> Counter[str]:
        with database.transaction(write=False) as session:
            rows = session.execute(
                select(MemoryEvidence.method).where(
                    MemoryEvidence.project_id == project_id, MemoryEvidence.source == "replay"
                )
            ).scalars()
            return Counter(rows)

    [(first, three)] = methods().items()
    assert three == 3
    admin.patch(
        f"/api/v1/evaluators/{evaluator_id(admin, project_id)}", json={"memory_k": 3}
    ).raise_for_status()
    settled()
    again = methods()
    assert again[first] == 3 and sum(again.values()) == 6  # the same three decisions, under the new method


def test_a_calibration_worked_out_while_the_evidence_changed_is_not_kept(
    settings: Settings, database: Database
) -> None:
    """Evidence that arrives while a calibration is read (a mistake, say) must count at once: the calibration
    read before it is used for that one decision, never cached for the next."""

    class Racing(EvaluationRunner):
        async def db(self, function: Any, /, *, write: bool, **kwargs: Any) -> Any:
            found = await super().db(function, write=write, **kwargs)
            if function is evidence.samples:
                self.evidence_changed("prj_x", EVALUATOR)  # a replay recorded meanwhile
            return found

    runner = Racing.from_settings(settings, database, limiter=lambda: None, judge=LLMJudge(None))
    definition = precedent(tuple(OPTIONS), name=EVALUATOR)

    async def twice() -> tuple[Any, Any]:
        first = await runner.calibration(project_id="prj_x", definition=definition)
        second = await runner.calibration(project_id="prj_x", definition=definition)
        return first, second

    first, second = run_async(twice)
    assert first is not second  # read again: the first was stale by the time it was ready
