"""Evaluators judge, re-evaluate with {memories} when unsure, and route what stays ambiguous to people.
The judge is a real HTTP server (tests/judge_server.py) that records what it was sent."""

from __future__ import annotations

import math
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from casework.db.engine import Database
from casework.db.models import JudgeCall
from tests.judge_server import JudgeServer, confident, human_message
from tests.support import POLICY_EVALUATOR, give_evidence, make_project

GUARANTEED = {
    "query": "My financial advisor told me this account has guaranteed returns. Is that right?",
    "response": "Thank you for reaching out. While I can't comment on what your advisor may have said, returns vary.",
}
SIMILAR = {
    "query": "My broker promised me guaranteed returns on this account. Can you confirm?",
    "response": "I can't comment on what your broker said, but returns on this account vary.",
}
REASONING = (
    "The customer referenced 'guaranteed returns' from their financial advisor. The agent should have "
    "immediately corrected this - no investment product has guaranteed returns, and failing to address this "
    "creates regulatory risk under SEC/FINRA suitability rules. The agent's response was evasive rather than "
    "corrective."
)


@pytest.fixture
def project_id(admin: httpx.Client) -> str:
    project_id = make_project(admin)
    assert (
        admin.post("/api/v1/evaluators", json={"project_id": project_id, **POLICY_EVALUATOR}).status_code
        == 201
    )
    return project_id


def evaluate(
    client: httpx.Client, project_id: str, interaction: dict[str, str], evaluators: list[str] | None = None
) -> dict[str, Any]:
    response = client.post(
        "/api/v1/evaluations",
        json={"project_id": project_id, "evaluators": evaluators or ["policy-adherence"], **interaction},
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["evaluations"][0]
    return result


def test_registering_is_idempotent_and_a_change_is_a_new_version(
    admin: httpx.Client, project_id: str
) -> None:
    again = admin.post("/api/v1/evaluators", json={"project_id": project_id, **POLICY_EVALUATOR})
    assert (again.status_code, again.json()["version"]) == (200, 1)
    changed = admin.post(
        "/api/v1/evaluators", json={"project_id": project_id, **POLICY_EVALUATOR, "ambiguity_threshold": 0.8}
    )
    assert (changed.status_code, changed.json()["version"]) == (201, 2)
    listed = admin.get("/api/v1/evaluators", params={"project_id": project_id}).json()["evaluators"]
    assert [(e["name"], e["version"]) for e in listed] == [("policy-adherence", 2)]
    assert admin.get(f"/api/v1/evaluators/{again.json()['id']}").json()["version"] == 1


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"evaluation_human_prompt": "Customer: {query} {customer_name}"}, "customer_name"),
        ({"reeval_human_prompt": "Customer: {query}", "reeval_system_prompt": "Decide."}, "{memories}"),
        ({"evaluation_system_prompt": ""}, "evaluation_system_prompt"),
        ({"evaluation_human_prompt": "unbalanced {query"}, "braces"),
        ({"options": ["compliant", "ambiguous"]}, "ambiguous"),
    ],
)
def test_bad_definitions_get_422_naming_the_problem(
    admin: httpx.Client, change: dict[str, Any], named: str
) -> None:
    project_id = make_project(admin, "p2")
    response = admin.post("/api/v1/evaluators", json={"project_id": project_id, **POLICY_EVALUATOR, **change})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert named in response.json()["error"]["message"]


def test_a_confident_verdict_is_stored_and_queues_nothing(
    admin: httpx.Client, project_id: str, judge_server: JudgeServer
) -> None:
    judge_server.reply = confident("compliant", 0.93)
    evaluation = evaluate(admin, project_id, GUARANTEED)
    assert (evaluation["status"], evaluation["classification"], evaluation["ambiguous"]) == (
        "completed",
        "compliant",
        False,
    )
    assert (evaluation["reevaluated"], evaluation["review_id"], evaluation["evaluator_version"]) == (
        False,
        None,
        1,
    )
    assert (evaluation["prompt_tokens"], evaluation["completion_tokens"]) == (120, 20)
    assert evaluation["latency_ms"] > 0
    assert len(judge_server.requests) == 1
    sent = judge_server.requests[0]
    assert (sent["temperature"], sent["response_format"]) == (0, {"type": "json_object"})
    assert sent["messages"][0]["content"].endswith("Options: compliant, non_compliant")
    assert human_message(sent).startswith(
        f"Customer message: {GUARANTEED['query']}\nAgent response: {GUARANTEED['response']}"
    )
    assert '"classification": one of ["compliant", "non_compliant", "ambiguous"]' in human_message(sent)
    assert admin.get("/api/v1/hitl/reviews", params={"project_id": project_id}).json()["reviews"] == []


@pytest.mark.parametrize(
    "first",
    [
        {"classification": "ambiguous", "confidence": 0.9},
        {"classification": "compliant", "confidence": 0.4},
        {"classification": "maybe", "confidence": 0.99},
    ],
)
def test_ambiguous_by_label_threshold_or_unknown_option_is_reevaluated_then_queued(
    admin: httpx.Client, project_id: str, judge_server: JudgeServer, first: dict[str, Any]
) -> None:
    judge_server.reply = lambda _body: {**first, "explanation": "Borderline."}
    evaluation = evaluate(admin, project_id, GUARANTEED)
    assert len(judge_server.requests) == 2, "an ambiguous first verdict is re-evaluated"
    reeval = human_message(judge_server.requests[1])
    assert "Context from prior expert reviews:\nNo prior expert reviews.\n" in reeval
    assert judge_server.requests[1]["messages"][0]["content"].startswith(
        "You are a senior compliance auditor"
    )
    assert (evaluation["ambiguous"], evaluation["reevaluated"]) == (True, True)
    assert (evaluation["initial_classification"], evaluation["initial_confidence"]) == (
        first["classification"],
        first["confidence"],
    )
    review = admin.get(f"/api/v1/hitl/reviews/{evaluation['review_id']}").json()
    assert (review["status"], review["evaluator_type"], review["query"]) == (
        "pending",
        "policy-adherence",
        GUARANTEED["query"],
    )
    assert review["options"] == ["compliant", "non_compliant"]
    assert review["metadata"]["evaluation_id"] == evaluation["id"]


def test_feedback_becomes_memory_and_a_similar_case_is_decided_confidently(
    admin: httpx.Client, project_id: str, judge_server: JudgeServer
) -> None:
    evaluation = evaluate(admin, project_id, GUARANTEED)  # the default judge is unsure
    feedback = admin.post(
        f"/api/v1/hitl/reviews/{evaluation['review_id']}/feedback",
        json={
            "classification": "non_compliant",
            "reasoning": REASONING,
            "reviewer": "[email protected]",
            "tags": ["guaranteed-returns", "suitability", "regulatory-risk"],
        },
    )
    control_id = feedback.json()["control_id"]
    control = admin.get(f"/api/v1/controls/{control_id}").json()

    def judge(body: dict[str, Any]) -> dict[str, Any]:
        if "guaranteed returns" in human_message(body) and "Classification: non_compliant" in human_message(
            body
        ):
            return {
                "classification": "non_compliant",
                "confidence": 0.92,
                "explanation": "Per prior expert review.",
            }
        return {"classification": "ambiguous", "confidence": 0.4, "explanation": "Unsure."}

    judge_server.reply = judge
    judge_server.requests.clear()
    later = evaluate(admin, project_id, SIMILAR)

    expected = (
        f"- [{control['created_at'][:10]}] Reviewer: [email protected] | Classification: non_compliant\n"
        "  \"The customer referenced 'guaranteed returns' from their financial advisor.\n"
        "  The agent should have immediately corrected this - no investment product has\n"
        "  guaranteed returns, and failing to address this creates regulatory risk\n"
        "  under SEC/FINRA suitability rules. The agent's response was evasive rather\n"
        '  than corrective."'
    )
    assert f"Context from prior expert reviews:\n{expected}\n\n" in human_message(judge_server.requests[1])
    assert (later["classification"], later["ambiguous"], later["reevaluated"]) == (
        "non_compliant",
        False,
        True,
    )
    assert later["memory_control_ids"] == [control_id]
    assert later["review_id"] is None


def test_malformed_replies_are_retried_once_then_recorded_as_an_error(
    admin: httpx.Client, project_id: str, judge_server: JudgeServer, database: Database
) -> None:
    judge_server.reply = lambda _body: "I think it is fine."
    evaluation = evaluate(admin, project_id, GUARANTEED)
    assert len(judge_server.requests) == 2
    assert (evaluation["status"], evaluation["classification"], evaluation["review_id"]) == (
        "error",
        None,
        None,
    )
    assert "JSON" in evaluation["error"]
    # What the judge was sent and its last reply are kept with the failed evaluation, for debugging.
    [failed] = judge_calls(database, evaluation["id"])
    assert (failed.step, failed.answer) == ("evaluation", "I think it is fine.")
    assert failed.messages[-1]["content"] == human_message(judge_server.requests[-1])

    answers = iter(['{"classification": "compliant"}', '{"classification": "compliant", "confidence": 0.9}'])
    judge_server.reply = lambda _body: next(answers)
    judge_server.requests.clear()
    judged = evaluate(admin, project_id, GUARANTEED)
    assert judged["classification"] == "compliant"
    assert len(judge_server.requests) == 2
    [call] = judge_calls(database, judged["id"])
    assert call.answer == '{"classification": "compliant", "confidence": 0.9}'  # the reply that counted


def judge_calls(database: Database, evaluation_id: str) -> list[JudgeCall]:
    with database.transaction(write=False) as session:
        return list(
            session.execute(select(JudgeCall).where(JudgeCall.evaluation_id == evaluation_id)).scalars()
        )


@pytest.mark.parametrize(
    ("reply", "explanation"),
    [
        (
            '{"classification": "compliant", "confidence": 0.9, "explanation": "fine\\u0000 here"}',
            "fine here",
        ),
        (
            '{"classification": "compliant", "confidence": 0.9, "explanation": "fine\\ud800 here"}',
            "fine here",
        ),
    ],
)
def test_a_verdict_with_text_no_database_can_hold_is_stored_cleaned(
    admin: httpx.Client, project_id: str, judge_server: JudgeServer, reply: str, explanation: str
) -> None:
    """The judge's reply is outside text like any other: NUL and lone surrogates are dropped (as in spans)."""
    judge_server.reply = lambda _body: reply
    evaluation = evaluate(admin, project_id, GUARANTEED)
    assert (evaluation["status"], evaluation["classification"], evaluation["explanation"]) == (
        "completed",
        "compliant",
        explanation,
    )


def test_a_label_longer_than_any_option_is_ambiguous_not_an_error(
    admin: httpx.Client, project_id: str, judge_server: JudgeServer
) -> None:
    judge_server.reply = lambda _body: {"classification": "x" * 300, "confidence": 0.99, "explanation": "?"}
    evaluation = evaluate(admin, project_id, GUARANTEED)
    assert (evaluation["status"], evaluation["ambiguous"]) == ("completed", True)
    assert evaluation["review_id"] is not None


def test_a_judge_that_is_down_is_retried_and_the_failure_recorded(
    admin: httpx.Client, project_id: str, judge_server: JudgeServer
) -> None:
    judge_server.reply = lambda _body: 503
    evaluation = evaluate(admin, project_id, GUARANTEED)
    assert len(judge_server.requests) == 3, "the first call and two retries"
    assert evaluation["status"] == "error"
    assert "judge endpoint failed" in evaluation["error"]
    stored = admin.get("/api/v1/evaluations", params={"project_id": project_id}).json()["evaluations"]
    assert [e["id"] for e in stored] == [evaluation["id"]]

    statuses = iter([500, 429])
    judge_server.reply = lambda _body: next(
        statuses, {"classification": "compliant", "confidence": 0.9, "explanation": ""}
    )  # type: ignore[arg-type]
    judge_server.requests.clear()
    assert evaluate(admin, project_id, GUARANTEED)["classification"] == "compliant"


def test_builtin_evaluators_are_named_by_string(admin: httpx.Client, judge_server: JudgeServer) -> None:
    project_id = make_project(admin, "builtins")
    judge_server.reply = confident("correct", 0.9)
    evaluations = admin.post(
        "/api/v1/evaluations",
        json={
            "project_id": project_id,
            "evaluators": ["correctness", "hallucination"],
            "query": "2+2?",
            "response": "4",
        },
    ).json()["evaluations"]
    assert [e["evaluator_type"] for e in evaluations] == ["correctness", "hallucination"]
    listed = admin.get("/api/v1/evaluators", params={"project_id": project_id}).json()["evaluators"]
    assert {(e["name"], e["builtin"], tuple(e["options"])) for e in listed} == {
        ("correctness", True, ("correct", "incorrect")),
        ("hallucination", True, ("faithful", "hallucinated")),
    }
    unknown = admin.post(
        "/api/v1/evaluations",
        json={"project_id": project_id, "evaluators": ["nope"], "query": "q", "response": "r"},
    )
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "evaluator_not_found")
    taken = admin.post(
        "/api/v1/evaluators", json={"project_id": project_id, **POLICY_EVALUATOR, "name": "toxicity"}
    )
    assert taken.status_code == 422


def test_a_review_queued_by_hand_takes_the_evaluators_options(admin: httpx.Client, project_id: str) -> None:
    review = admin.post(
        "/api/v1/hitl/reviews",
        json={"project_id": project_id, "evaluator_type": "policy-adherence", "query": "q", "response": "r"},
    )
    assert review.status_code == 201, review.text
    assert review.json()["options"] == ["compliant", "non_compliant"]


def test_precedent_suggests_until_the_evidence_lets_it_decide_alone(
    admin: httpx.Client, project_id: str, judge_server: JudgeServer, database: Database, runner: Any
) -> None:
    admin.post(
        "/api/v1/evaluators",
        json={
            "project_id": project_id,
            "name": "policy-precedent",
            "kind": "precedent",
            "options": ["compliant", "non_compliant"],
        },
    ).raise_for_status()
    first = evaluate(admin, project_id, GUARANTEED, ["policy-precedent"])
    assert (first["classification"], first["ambiguous"], first["model"]) == ("ambiguous", True, None)
    assert judge_server.requests == []
    control_id = admin.post(
        f"/api/v1/hitl/reviews/{first['review_id']}/feedback",
        json={"classification": "non_compliant", "reasoning": REASONING, "reviewer": "[email protected]"},
    ).json()["control_id"]

    # One look-alike decision is not evidence: memory suggests, a person decides.
    later = evaluate(admin, project_id, SIMILAR, ["policy-precedent"])
    assert (later["classification"], later["ambiguous"]) == ("non_compliant", True), later
    assert later["memory_control_ids"] == [control_id]
    review = admin.get(f"/api/v1/hitl/reviews/{later['review_id']}").json()
    assert (review["reason"], review["suggestion"]["classification"]) == ("low_confidence", "non_compliant")
    assert review["suggestion"]["control_ids"] == [control_id]

    # With evidence that such votes are right 130 times in 130, it decides alone.
    give_evidence(database, project_id, "policy-precedent", "non_compliant", 130, score=0.5)
    runner.evidence_changed(project_id, "policy-precedent")
    decided = evaluate(
        admin, project_id, {**SIMILAR, "query": SIMILAR["query"] + " Please."}, ["policy-precedent"]
    )
    assert (decided["classification"], decided["ambiguous"], decided["review_id"]) == (
        "non_compliant",
        False,
        None,
    )
    unrelated = evaluate(
        admin,
        project_id,
        {"query": "What are your opening hours?", "response": "We open at nine."},
        ["policy-precedent"],
    )
    assert unrelated["ambiguous"] is True


def test_search_shows_what_memory_would_retrieve(admin: httpx.Client, project_id: str) -> None:
    admin.post(
        "/api/v1/controls",
        json={
            "project_id": project_id,
            "evaluator_type": "policy-adherence",
            "classification": "non_compliant",
            "reasoning": REASONING,
            "reviewer": "[email protected]",
            "query": GUARANTEED["query"],
            "response": GUARANTEED["response"],
        },
    ).raise_for_status()
    admin.post(
        "/api/v1/controls",
        json={
            "project_id": project_id,
            "evaluator_type": "policy-adherence",
            "classification": "compliant",
            "reasoning": "Referring card fraud to the fraud team is correct.",
            "reviewer": "[email protected]",
            "query": "Someone used my card",
            "response": "I will connect you to fraud.",
        },
    ).raise_for_status()
    found = admin.get(
        "/api/v1/controls/search",
        params={"project_id": project_id, "evaluator_type": "policy-adherence", **SIMILAR},
    ).json()
    assert [c["control"]["classification"] for c in found["controls"]] == ["non_compliant"]
    assert 0 < found["controls"][0]["score"] <= 1
    assert found["memories"].startswith("- [")
    nothing = admin.get(
        "/api/v1/controls/search", params={"project_id": project_id, "evaluator_type": "other", **SIMILAR}
    ).json()
    assert nothing == {"controls": [], "memories": "No prior expert reviews."}


def wait_for(condition: Any, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_feedback_gives_look_alikes_a_suggestion_and_memory_resolves_them_once_it_has_evidence(
    admin: httpx.Client, project_id: str, judge_server: JudgeServer, database: Database, runner: Any
) -> None:
    """After a decision, pending look-alikes are decided again with it in {memories}: without evidence memory
    only suggests; with it, it resolves them, naming every control that voted."""
    decided = evaluate(admin, project_id, GUARANTEED)["review_id"]
    look_alike = evaluate(admin, project_id, SIMILAR)["review_id"]
    unrelated = evaluate(
        admin,
        project_id,
        {
            "query": "What time does the branch open on Saturday?",
            "response": "Our branches open at nine on Saturdays.",
        },
    )["review_id"]

    def pending() -> int:
        return len(admin.get("/api/v1/hitl/reviews", params={"project_id": project_id}).json()["reviews"])

    assert pending() == 3

    def judge(body: dict[str, Any]) -> dict[str, Any]:
        if "Classification: non_compliant" in human_message(body) and "guaranteed" in human_message(body):
            return {
                "classification": "non_compliant",
                "confidence": 0.9,
                "explanation": "As the expert decided on a like case.",
            }
        return {"classification": "ambiguous", "confidence": 0.3, "explanation": "Still unsure."}

    judge_server.reply = judge
    control_id = admin.post(
        f"/api/v1/hitl/reviews/{decided}/feedback",
        json={"classification": "non_compliant", "reasoning": REASONING, "reviewer": "[email protected]"},
    ).json()["control_id"]

    suggested = wait_for_value(lambda: admin.get(f"/api/v1/hitl/reviews/{look_alike}").json()["suggestion"])
    assert (suggested["classification"], suggested["control_ids"]) == ("non_compliant", [control_id])
    assert admin.get(f"/api/v1/hitl/reviews/{look_alike}").json()["status"] == "pending"
    assert pending() == 2

    # The evidence arrives (as replays of past decisions would bring it); the next control's pass resolves.
    give_evidence(database, project_id, "policy-adherence", "non_compliant", 130, score=0.9)
    runner.evidence_changed(project_id, "policy-adherence")
    second = admin.post(
        "/api/v1/controls",
        json={
            "project_id": project_id,
            "evaluator_type": "policy-adherence",
            "classification": "non_compliant",
            "reasoning": "Guaranteed returns must always be corrected.",
            "reviewer": "[email protected]",
            "query": SIMILAR["query"],
            "response": SIMILAR["response"],
        },
    ).json()["id"]
    wait_for(lambda: admin.get(f"/api/v1/hitl/reviews/{look_alike}").json()["status"] == "resolved")
    resolution = admin.get(f"/api/v1/hitl/reviews/{look_alike}").json()["resolution"]
    assert (resolution["resolved_by"], resolution["classification"]) == ("memory", "non_compliant")
    assert resolution["control_id"] in (control_id, second)
    assert resolution["reasoning"] == "As the expert decided on a like case."
    assert admin.get(f"/api/v1/hitl/reviews/{unrelated}").json()["status"] == "pending"
    [decision] = [
        d
        for d in admin.get(f"/api/v1/hitl/reviews/{look_alike}/decisions").json()["decisions"]
        if d["by"] == "memory"
    ]
    assert {vote["control_id"] for vote in decision["votes"]} == {control_id, second}
    events = admin.get("/api/v1/audit", params={"project_id": project_id, "object_id": look_alike}).json()[
        "events"
    ]
    assert events[0]["action"] == "review.resolved"
    assert control_id in events[0]["actor"] and second in events[0]["actor"]


def wait_for_value(get: Any, seconds: float = 15.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (value := get()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def test_log_probabilities_cap_a_stated_confidence(
    admin: httpx.Client, project_id: str, judge_server: JudgeServer
) -> None:
    content = '{"classification": "compliant", "confidence": 0.95, "explanation": "Fine."}'
    head, tail = content.split("compliant", 1)
    judge_server.reply = lambda _body: content
    judge_server.logprobs = [(head, 0.0), ("compliant", math.log(0.5)), (tail, 0.0)]
    evaluation = evaluate(admin, project_id, GUARANTEED)
    assert evaluation["initial_confidence"] == 0.5, (
        "the model gave its label probability 0.5, whatever it said"
    )
    assert evaluation["ambiguous"] is True
    judge_server.logprobs = [(head, 0.0), ("compliant", math.log(0.99)), (tail, 0.0)]
    assert evaluate(admin, project_id, GUARANTEED)["confidence"] == 0.95
