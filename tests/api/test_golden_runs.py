"""Regression runs on a golden set: the local judge server answers over real HTTP as each test plans, so the
expected accuracy, Cohen's kappa and ambiguity rate are worked out by hand here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.judge_server import JudgeServer, human_message, system_message
from tests.support import POLICY_EVALUATOR, make_project, wait_for

pytestmark = pytest.mark.storage

C, N = "compliant", "non_compliant"
# The human answers, and what the judge will say (first pass) for each item.
EXPECTED = [C, C, C, N, N, N]
FIRST = [C, C, N, N, N, "ambiguous"]


def items() -> list[dict[str, Any]]:
    return [
        {"query": f"case-{i} question", "response": f"case-{i} answer", "expected": expected}
        for i, expected in enumerate(EXPECTED)
    ]


def case_of(body: dict[str, Any]) -> int:
    text = human_message(body)
    return int(text.split("case-")[1].split(" ")[0])


def answering(verdicts: list[str], confidence: float = 0.95) -> Any:
    def reply(body: dict[str, Any]) -> dict[str, Any]:
        label = verdicts[case_of(body)]
        return {
            "classification": label,
            "confidence": 0.3 if label == "ambiguous" else confidence,
            "explanation": "planned",
        }

    return reply


@pytest.fixture
def golden(admin: httpx.Client) -> dict[str, Any]:
    project_id = make_project(admin)
    registered = admin.post("/api/v1/evaluators", json={"project_id": project_id, **POLICY_EVALUATOR})
    assert registered.status_code == 201, registered.text
    created = admin.post(
        "/api/v1/golden-sets",
        json={
            "project_id": project_id,
            "name": "policy",
            "items": items(),
            "thresholds": {"kappa": {">=": 0.6}, "ambiguity_rate": {"<=": 0.2}},
        },
    )
    assert created.status_code == 201, created.text
    return {**created.json(), "evaluator_id": registered.json()["id"]}


def run(client: httpx.Client, set_id: str, **body: Any) -> dict[str, Any]:
    started = client.post(
        f"/api/v1/golden-sets/{set_id}/runs", json={"evaluators": ["policy-adherence"], **body}
    )
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "running" and started.json()["total"] == 6
    url = f"/api/v1/golden-sets/{set_id}/runs/{started.json()['id']}"
    finished: dict[str, Any] = wait_for(
        lambda: (r := client.get(url).json())["status"] == "completed" and r, message="the run did not finish"
    )
    return finished


def test_a_run_measures_accuracy_kappa_and_ambiguity_against_the_human_answers(
    admin: httpx.Client, golden: dict[str, Any], judge_server: JudgeServer, settled: Callable[[], None]
) -> None:
    judge_server.reply = answering(FIRST)
    finished = run(admin, golden["id"], memory=False)

    assert (finished["done"], finished["progress"]) == (6, 1.0)
    [metrics] = finished["metrics"]
    assert (metrics["name"], metrics["version"]) == ("policy-adherence", 1)
    # Right on items 0, 1, 3, 4: accuracy 4/6. Kappa, with "ambiguous" a third label the people never gave:
    # observed agreement 4/6; chance agreement = P(C)P(C') + P(N)P(N') = 3/6 * 2/6 + 3/6 * 3/6 = 5/12;
    # kappa = (4/6 - 5/12) / (1 - 5/12) = 3/7.
    assert metrics["accuracy"] == round(4 / 6, 4)
    assert metrics["kappa"] == pytest.approx(3 / 7, abs=1e-4)
    assert metrics["confusion"] == {C: {C: 2, N: 1}, N: {N: 2, "ambiguous": 1}}
    assert (metrics["ambiguous"], metrics["ambiguity_rate"]) == (1, round(1 / 6, 4))
    assert (metrics["prompt_tokens"], metrics["completion_tokens"]) == (6 * 120, 6 * 20)  # one call per item
    assert metrics["latency_p50_ms"] is not None and metrics["latency_p90_ms"] >= metrics["latency_p50_ms"]
    assert [(c["metric"], c["passed"]) for c in metrics["thresholds"]] == [
        ("kappa", False),
        ("ambiguity_rate", True),
    ]
    assert metrics["passed"] is False and finished["passed"] is False
    assert metrics["diff"] is None  # the first run of this evaluator on the set
    assert len(judge_server.requests) == 6  # memory off: no re-evaluation

    results = f"/api/v1/golden-sets/{golden['id']}/runs/{finished['id']}/results"
    wrong = admin.get(results, params={"outcome": "wrong"}).json()["results"]
    assert sorted((r["query"], r["classification"]) for r in wrong) == [
        ("case-2 question", N),
        ("case-5 question", "ambiguous"),
    ]
    assert all(r["latency_ms"] > 0 and r["prompt_tokens"] == 120 for r in wrong)
    [ambiguous] = admin.get(results, params={"outcome": "ambiguous"}).json()["results"]
    assert (ambiguous["query"], ambiguous["confidence"], ambiguous["correct"]) == (
        "case-5 question",
        0.3,
        False,
    )
    first_page = admin.get(results, params={"limit": 4}).json()
    rest = admin.get(results, params={"limit": 4, "cursor": first_page["next_cursor"]}).json()
    assert len(first_page["results"]) + len(rest["results"]) == 6 and rest["next_cursor"] is None
    assert sum(r["correct"] for r in first_page["results"] + rest["results"]) == 4

    settled()  # the event is read once the sequencer has placed it in the log
    events = admin.get(
        "/api/v1/events", params={"project_id": golden["project_id"], "type": "golden_run.completed"}
    )
    [event] = events.json()["events"]
    assert (
        event["object_id"] == finished["id"]
        and event["data"]["metrics"][0]["accuracy"] == metrics["accuracy"]
    )

    # A better prompt is a new version; the diff says what it changed, item by item.
    changed = admin.patch(
        f"/api/v1/evaluators/{golden['evaluator_id']}",
        json={"evaluation_system_prompt": POLICY_EVALUATOR["evaluation_system_prompt"] + "\nBe precise."},
    )
    assert changed.status_code == 200 and changed.json()["version"] == 2
    judge_server.reply = answering([C, C, C, C, N, N])  # 2 and 5 now right, 3 now wrong
    second = run(admin, golden["id"], memory=False)
    [better] = second["metrics"]
    assert better["version"] == 2
    assert (better["accuracy"], better["kappa"], better["ambiguity_rate"]) == (
        round(5 / 6, 4),
        pytest.approx(2 / 3, abs=1e-4),
        0.0,
    )
    ids = [i["id"] for i in admin.get(f"/api/v1/golden-sets/{golden['id']}/items").json()["items"]]
    diff = better["diff"]
    assert (diff["previous_run_id"], diff["previous_version"]) == (finished["id"], 1)
    assert (diff["better"], diff["worse"], diff["same"]) == (2, 1, 3)
    assert (diff["better_items"], diff["worse_items"]) == (sorted([ids[2], ids[5]]), [ids[3]])
    assert better["passed"] is True and second["passed"] is True  # kappa 2/3 >= 0.6, no ambiguity

    # An older version is named with :N, and runs as it was.
    judge_server.reply = answering(FIRST)
    again = admin.post(
        f"/api/v1/golden-sets/{golden['id']}/runs",
        json={"evaluators": ["policy-adherence:1"], "memory": False},
    )
    assert again.status_code == 202 and again.json()["evaluators"][0]["version"] == 1
    same = admin.post(
        f"/api/v1/golden-sets/{golden['id']}/runs",
        json={"evaluators": ["policy-adherence", "policy-adherence:2"], "memory": False},
    )
    assert [e["version"] for e in same.json()["evaluators"]] == [2] and same.json()["total"] == 6
    missing = admin.post(
        f"/api/v1/golden-sets/{golden['id']}/runs", json={"evaluators": ["policy-adherence:9"]}
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "evaluator_not_found"
    listed = admin.get(f"/api/v1/golden-sets/{golden['id']}/runs").json()["runs"]
    assert [r["id"] for r in listed][2:] == [second["id"], finished["id"]]


def test_the_ambiguity_rate_counts_what_the_project_s_risk_tiers_send_to_people(
    admin: httpx.Client, golden: dict[str, Any], judge_server: JudgeServer
) -> None:
    # Every non_compliant verdict goes to a person, however sure the judge is: items 2, 3 and 4, and the
    # ambiguous item 5.
    policy = {
        "tiers": [{"name": "standard", "review": "ambiguous_or_classification", "classifications": [N]}],
        "default_tier": "standard",
    }
    saved = admin.put("/api/v1/risk-tiers", params={"project_id": golden["project_id"]}, json=policy)
    assert saved.status_code == 200, saved.text
    judge_server.reply = answering(FIRST)
    [metrics] = run(admin, golden["id"], memory=False)["metrics"]
    assert (metrics["ambiguous"], metrics["ambiguity_rate"]) == (4, round(4 / 6, 4))
    assert [c["passed"] for c in metrics["thresholds"] if c["metric"] == "ambiguity_rate"] == [False]
    assert metrics["accuracy"] == round(4 / 6, 4)  # the verdicts themselves are as the judge gave them


def test_memory_on_against_off_is_memory_s_contribution(
    admin: httpx.Client, golden: dict[str, Any], judge_server: JudgeServer
) -> None:
    # The first pass is unsure of everything; the re-evaluation with {memories} gets every item right.
    def reply(body: dict[str, Any]) -> dict[str, Any]:
        if "second review" in system_message(body):
            return {"classification": EXPECTED[case_of(body)], "confidence": 0.9, "explanation": "precedent"}
        return {"classification": "ambiguous", "confidence": 0.2, "explanation": "unsure"}

    judge_server.reply = reply
    off = run(admin, golden["id"], memory=False)
    on = run(admin, golden["id"], memory=True)
    [without] = off["metrics"]
    [with_memory] = on["metrics"]
    assert (without["accuracy"], without["ambiguity_rate"], without["kappa"]) == (0.0, 1.0, 0.0)
    assert (with_memory["accuracy"], with_memory["ambiguity_rate"], with_memory["kappa"]) == (1.0, 0.0, 1.0)
    assert with_memory["prompt_tokens"] == 6 * 2 * 120  # two judge calls per item
    assert with_memory["memory_contribution"] == {
        "compared_run_id": off["id"],
        "accuracy": 1.0,
        "kappa": 1.0,
        "ambiguity_rate": -1.0,
    }
    assert with_memory["diff"]["better"] == 6


def test_a_failing_judge_is_counted_as_an_error_and_the_run_still_completes(
    admin: httpx.Client, golden: dict[str, Any], judge_server: JudgeServer
) -> None:
    judge_server.reply = lambda body: 400 if case_of(body) == 0 else answering(EXPECTED)(body)
    finished = run(admin, golden["id"], memory=False)
    [metrics] = finished["metrics"]
    assert (metrics["errors"], metrics["error_rate"], metrics["accuracy"]) == (
        1,
        round(1 / 6, 4),
        round(5 / 6, 4),
    )
    assert metrics["confusion"][C] == {"(error)": 1, C: 2}


def test_memory_never_shows_an_item_the_control_made_from_its_own_answer(
    admin: httpx.Client, judge_server: JudgeServer, settled: Callable[[], None]
) -> None:
    project_id = make_project(admin)
    admin.post("/api/v1/evaluators", json={"project_id": project_id, **POLICY_EVALUATOR})
    asked = {
        "project_id": project_id,
        "evaluator_type": "policy-adherence",
        "query": "My advisor promised guaranteed returns on this fund, is that right?",
        "response": "Returns on this fund are popular with customers like you.",
        "options": [C, N],
    }
    own = admin.post("/api/v1/hitl/reviews", json=asked).json()
    admin.post(
        f"/api/v1/hitl/reviews/{own['id']}/feedback",
        json={
            "classification": N,
            "reasoning": "OWN-ANSWER: never confirm guarantees.",
            "reviewer": "ana@bank.example",
        },
    )
    other = admin.post(
        "/api/v1/hitl/reviews", json={**asked, "response": asked["response"] + " Truly."}
    ).json()
    admin.post(
        f"/api/v1/hitl/reviews/{other['id']}/feedback",
        json={
            "classification": N,
            "reasoning": "A LOOK-ALIKE: evasive on guarantees.",
            "reviewer": "ana@bank.example",
        },
    )
    settled()
    golden = admin.post(
        "/api/v1/golden-sets",
        json={
            "project_id": project_id,
            "name": "from-reviews",
            "from_reviews": {"evaluator_type": "policy-adherence"},
        },
    ).json()
    assert golden["item_count"] == 2

    def reply(body: dict[str, Any]) -> dict[str, Any]:
        if "second review" in system_message(body):
            return {"classification": N, "confidence": 0.9, "explanation": "precedent"}
        return {"classification": "ambiguous", "confidence": 0.2, "explanation": "unsure"}

    judge_server.reply = reply
    judge_server.requests.clear()  # the replays of the two decisions asked the judge too
    started = admin.post(
        f"/api/v1/golden-sets/{golden['id']}/runs", json={"evaluators": ["policy-adherence"]}
    )
    url = f"/api/v1/golden-sets/{golden['id']}/runs/{started.json()['id']}"
    wait_for(lambda: admin.get(url).json()["status"] == "completed")
    reevaluations = [human_message(b) for b in judge_server.requests if "second review" in system_message(b)]
    assert len(reevaluations) == 2
    for message in reevaluations:
        # Each item sees the other's control, never its own.
        assert ("OWN-ANSWER" in message) != ("LOOK-ALIKE" in message)
    by_response = {m.split("Agent response: ")[1].split("\n")[0]: m for m in reevaluations}
    assert "LOOK-ALIKE" in by_response[asked["response"]]
    assert "OWN-ANSWER" in by_response[asked["response"] + " Truly."]


def test_an_unexpected_failure_on_one_item_is_an_error_of_that_item_not_a_stuck_run(
    admin: httpx.Client,
    golden: dict[str, Any],
    judge_server: JudgeServer,
    runner: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    judge_server.reply = answering(EXPECTED)
    original = runner.run_one

    async def run_one(evaluator: Any, interaction: Any, **options: Any) -> Any:
        if interaction.query.startswith("case-1 "):
            raise RuntimeError("the database went away")
        return await original(evaluator, interaction, **options)

    monkeypatch.setattr(runner, "run_one", run_one)
    finished = run(admin, golden["id"], memory=False)
    [metrics] = finished["metrics"]
    assert (metrics["errors"], metrics["accuracy"]) == (1, round(5 / 6, 4))
    [failed] = admin.get(
        f"/api/v1/golden-sets/{golden['id']}/runs/{finished['id']}/results", params={"outcome": "error"}
    ).json()["results"]
    assert failed["query"] == "case-1 question" and "the database went away" in failed["error"]


DRAFT = {
    **POLICY_EVALUATOR,
    "evaluation_system_prompt": "DRAFT PROMPT: judge policy adherence.\nOptions: {evaluation_options}",
}


def test_a_draft_definition_and_another_model_run_beside_the_saved_version_and_nothing_is_saved(
    admin: httpx.Client, golden: dict[str, Any], judge_server: JudgeServer
) -> None:
    def reply(body: dict[str, Any]) -> dict[str, Any]:
        if body["model"] == "other-model":
            return answering(EXPECTED)(body)
        if system_message(body).startswith("DRAFT PROMPT"):
            return answering([C] * 6)(body)
        return answering(FIRST)(body)

    judge_server.reply = reply
    started = admin.post(
        f"/api/v1/golden-sets/{golden['id']}/runs",
        json={
            "evaluators": [
                "policy-adherence",
                {"name": "policy-adherence", "model": "other-model"},
                {"name": "policy-adherence:1", "model": "other-model"},  # the same: runs once
                {"definition": DRAFT},
            ],
            "memory": False,
        },
    )
    assert started.status_code == 202, started.text
    assert started.json()["total"] == 18
    saved, other, draft = started.json()["evaluators"]
    assert (saved["evaluator_id"], saved["version"], saved["draft"], saved["model_override"]) == (
        golden["evaluator_id"],
        1,
        False,
        False,
    )
    assert (other["model"], other["model_override"], other["source_evaluator_id"], other["version"]) == (
        "other-model",
        True,
        golden["evaluator_id"],
        1,
    )
    assert other["evaluator_id"] != golden["evaluator_id"]
    assert (draft["name"], draft["version"], draft["draft"]) == ("policy-adherence", None, True)
    url = f"/api/v1/golden-sets/{golden['id']}/runs/{started.json()['id']}"
    finished = wait_for(lambda: (r := admin.get(url).json())["status"] == "completed" and r)

    by_kind = {("draft" if m["draft"] else m["model"] or "own"): m for m in finished["metrics"]}
    assert by_kind["own"]["accuracy"] == round(4 / 6, 4)
    assert by_kind["other-model"]["accuracy"] == 1.0 and by_kind["other-model"]["kappa"] == 1.0
    assert by_kind["draft"]["accuracy"] == 0.5 and by_kind["draft"]["version"] is None
    models = {b["model"] for b in judge_server.requests}
    assert "other-model" in models and len(models) == 2
    results = admin.get(f"{url}/results", params={"evaluator_id": other["evaluator_id"]}).json()["results"]
    assert len(results) == 6 and all(r["correct"] for r in results)

    versions = admin.get(f"/api/v1/evaluators/{golden['evaluator_id']}/versions")
    assert [v["version"] for v in versions.json()["evaluators"]] == [1]  # the draft was never saved

    # The next run of the same draft is compared with this one item by item; memory on is compared with off.
    judge_server.reply = lambda body: answering(EXPECTED)(body)
    again = admin.post(
        f"/api/v1/golden-sets/{golden['id']}/runs", json={"evaluators": [{"definition": DRAFT}]}
    )
    assert again.status_code == 202, again.text
    url = f"/api/v1/golden-sets/{golden['id']}/runs/{again.json()['id']}"
    [second] = wait_for(lambda: (r := admin.get(url).json())["status"] == "completed" and r)["metrics"]
    assert second["draft"] and second["accuracy"] == 1.0
    assert second["diff"]["previous_run_id"] == finished["id"] and second["diff"]["better"] == 3
    assert second["memory_contribution"]["compared_run_id"] == finished["id"]
    assert second["memory_contribution"]["accuracy"] == 0.5


@pytest.mark.parametrize(
    ("evaluator", "problem"),
    [
        ({"definition": {**DRAFT, "evaluation_human_prompt": "{nope}"}}, "placeholders"),
        ({"definition": {**DRAFT, "options": ["compliant", "ambiguous"]}}, "ambiguous"),
        ({"definition": {**DRAFT, "options": []}}, "options"),
        ({"definition": DRAFT, "name": "policy-adherence"}, "one of them"),
        ({"definition": DRAFT, "model": "x"}, "inside its definition"),
        ({"name": "policy-adherence", "model": ""}, "model"),
        ({}, "one of them"),
    ],
)
def test_a_draft_or_model_is_validated_like_registering_an_evaluator(
    admin: httpx.Client, golden: dict[str, Any], evaluator: dict[str, Any], problem: str
) -> None:
    refused = admin.post(f"/api/v1/golden-sets/{golden['id']}/runs", json={"evaluators": [evaluator]})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "validation_error"
    assert problem in refused.text
    assert admin.get(f"/api/v1/golden-sets/{golden['id']}/runs").json()["runs"] == []


def test_tokens_come_from_the_judge_s_usage_and_cost_from_the_price_table(
    admin: httpx.Client,
    golden: dict[str, Any],
    judge_server: JudgeServer,
    live_server: Any,
) -> None:
    # The server's table prices other-model; the run's own prices add the model of a draft, and win.
    settings = live_server.app.state.settings
    table = (
        '{"other-model": {"prompt": 1.0, "completion": 4.0}, "draft-model": {"prompt": 9, "completion": 9}}'
    )
    judge_server.reply = answering(EXPECTED)
    live_server.app.state.settings = settings.model_copy(update={"model_prices": table})
    try:
        started = admin.post(
            f"/api/v1/golden-sets/{golden['id']}/runs",
            json={
                "evaluators": [
                    "policy-adherence",
                    {"name": "policy-adherence", "model": "other-model"},
                    {"definition": {**DRAFT, "model": "draft-model"}},
                ],
                "memory": False,
                "prices": {"draft-model": {"prompt": 0.5, "completion": 0}},
            },
        )
    finally:
        live_server.app.state.settings = settings
    assert started.status_code == 202, started.text
    assert started.json()["prices"]["models"] == {
        "other-model": {"prompt": 1.0, "completion": 4.0},
        "draft-model": {"prompt": 0.5, "completion": 0.0},
    }
    url = f"/api/v1/golden-sets/{golden['id']}/runs/{started.json()['id']}"
    finished = wait_for(lambda: (r := admin.get(url).json())["status"] == "completed" and r)
    own, other, draft = finished["metrics"]
    for metrics in (own, other, draft):
        # Six judge calls, each reporting 120 prompt and 20 completion tokens.
        assert (metrics["prompt_tokens"], metrics["completion_tokens"], metrics["total_tokens"]) == (
            720,
            120,
            840,
        )
        assert metrics["usage_missing"] == 0
    assert (other["priced_model"], other["cost_usd"]) == ("other-model", round((720 * 1 + 120 * 4) / 1e6, 6))
    assert (draft["priced_model"], draft["cost_usd"]) == ("draft-model", round(720 * 0.5 / 1e6, 6))
    assert own["price"] is None and own["cost_usd"] is None  # the default model has no price here
    assert finished["usage"] == {
        "prompt_tokens": 2160,
        "completion_tokens": 360,
        "total_tokens": 2520,
        "cost_usd": None,  # one evaluator has no estimate: neither has the sum
    }

    # A judge that reports no usage: the tokens are unknown, never zero, and so is the cost.
    judge_server.usage = None
    started = admin.post(
        f"/api/v1/golden-sets/{golden['id']}/runs",
        json={"evaluators": [{"name": "policy-adherence", "model": "other-model"}], "memory": False},
    )
    url = f"/api/v1/golden-sets/{golden['id']}/runs/{started.json()['id']}"
    unknown = wait_for(lambda: (r := admin.get(url).json())["status"] == "completed" and r)
    [metrics] = unknown["metrics"]
    assert (metrics["prompt_tokens"], metrics["total_tokens"], metrics["cost_usd"]) == (None, None, None)
    assert metrics["usage_missing"] == 6
    assert unknown["usage"]["cost_usd"] is None and unknown["usage"]["prompt_tokens"] is None
    results = admin.get(f"{url}/results").json()["results"]
    assert {r["prompt_tokens"] for r in results} == {None}

    refused = admin.post(
        f"/api/v1/golden-sets/{golden['id']}/runs",
        json={"evaluators": ["policy-adherence"], "prices": {"m": {"prompt": -1, "completion": 0}}},
    )
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "validation_error"


def test_a_run_whose_job_fails_on_every_attempt_ends_failed_with_the_error(
    admin: httpx.Client,
    golden: dict[str, Any],
    judge_server: JudgeServer,
    monkeypatch: pytest.MonkeyPatch,
    settled: Callable[[], None],
) -> None:
    from casework.services import golden_runs

    def broken(_outcomes: Any) -> Any:
        raise RuntimeError("the metrics broke")

    # The job that completes the run fails when it measures it, on both of its attempts (the tests' limit).
    monkeypatch.setattr(golden_runs, "measure", broken)
    judge_server.reply = answering(EXPECTED)
    started = admin.post(
        f"/api/v1/golden-sets/{golden['id']}/runs", json={"evaluators": ["policy-adherence"], "memory": False}
    )
    url = f"/api/v1/golden-sets/{golden['id']}/runs/{started.json()['id']}"
    failed = wait_for(lambda: (r := admin.get(url).json())["status"] != "running" and r, timeout=30)
    assert failed["status"] == "failed" and "the metrics broke" in failed["error"]
    assert failed["completed_at"] is not None and failed["metrics"] is None
    assert len(judge_server.requests) == 12  # two attempts of six items
    settled()
    [event] = admin.get(
        "/api/v1/events", params={"project_id": golden["project_id"], "type": "golden_run.failed"}
    ).json()["events"]
    assert event["object_id"] == failed["id"] and "the metrics broke" in event["data"]["error"]
    jobs = admin.get("/api/v1/jobs", params={"project_id": golden["project_id"], "status": "failed"})
    assert [j["kind"] for j in jobs.json()["jobs"]] == ["golden.run"]
    [listed] = admin.get(f"/api/v1/golden-sets/{golden['id']}/runs").json()["runs"]
    assert listed["status"] == "failed"


def test_a_run_whose_job_was_parked_as_failed_elsewhere_shows_failed_not_running(
    admin: httpx.Client, golden: dict[str, Any], judge_server: JudgeServer, database: Any
) -> None:
    from sqlalchemy import update

    from casework.db.models import Job

    judge_server.reply = answering(EXPECTED)
    judge_server.held = True  # the job is in progress when its worker is taken to have died for good
    started = admin.post(
        f"/api/v1/golden-sets/{golden['id']}/runs", json={"evaluators": ["policy-adherence"], "memory": False}
    )
    wait_for(lambda: judge_server.requests)
    with database.transaction() as session:
        session.execute(
            update(Job)
            .where(Job.kind == "golden.run")
            .values(status="failed", lease_token=None, last_error="its worker stopped (lease expired)")
        )
    url = f"/api/v1/golden-sets/{golden['id']}/runs/{started.json()['id']}"
    shown = admin.get(url).json()
    assert (shown["status"], shown["error"]) == ("failed", "its worker stopped (lease expired)")
    judge_server.held = False
    # The worker that still held it stores nothing: its claim is gone.
    wait_for(lambda: len(judge_server.requests) == 6)
    assert admin.get(url).json()["status"] == "failed" and admin.get(url).json()["done"] == 0


def test_an_evaluator_with_no_item_to_judge_is_refused_saying_why_never_run_over_nothing(
    admin: httpx.Client, golden: dict[str, Any], judge_server: JudgeServer
) -> None:
    mine = admin.post(
        "/api/v1/golden-sets",
        json={
            "project_id": golden["project_id"],
            "name": "policy-only",
            "items": [{**i, "evaluator_type": "policy-adherence"} for i in items()],
        },
    ).json()
    renamed = {"definition": {**DRAFT, "name": "policy-adherence-v2"}}
    for evaluators in ([renamed], ["policy-adherence", renamed]):
        refused = admin.post(f"/api/v1/golden-sets/{mine['id']}/runs", json={"evaluators": evaluators})
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "validation_error"
        assert "'policy-adherence-v2'" in error["message"] and "name a draft after" in error["message"]
        assert (error["details"]["drafts"], error["details"]["item_evaluators"]) == (
            ["policy-adherence-v2"],
            ["policy-adherence"],
        )
    assert admin.get(f"/api/v1/golden-sets/{mine['id']}/runs").json()["runs"] == []
    named = admin.post(
        f"/api/v1/golden-sets/{mine['id']}/runs",
        json={"evaluators": [{"definition": DRAFT}], "memory": False},
    )
    assert named.status_code == 202 and named.json()["total"] == 6
    url = f"/api/v1/golden-sets/{mine['id']}/runs/{named.json()['id']}"
    [judged] = wait_for(lambda: (r := admin.get(url).json())["status"] == "completed" and r)["metrics"]
    assert judged["items"] == 6


def test_a_run_s_rate_limit_spaces_its_judge_requests_and_is_validated(
    admin: httpx.Client, golden: dict[str, Any], judge_server: JudgeServer
) -> None:
    for wrong in (0, -1, "fast", 20_000):
        refused = admin.post(
            f"/api/v1/golden-sets/{golden['id']}/runs",
            json={"evaluators": ["policy-adherence"], "requests_per_second": wrong},
        )
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "validation_error"
    judge_server.reply = answering(EXPECTED)
    finished = run(admin, golden["id"], memory=False, requests_per_second=10)
    assert finished["metrics"][0]["accuracy"] == 1.0
    # Six requests at most ten a second, evenly spaced: the last comes at least 0.5 s after the first (less a
    # little for the network); unlimited, all six come at once (CASEWORK_GOLDEN_CONCURRENCY is 16).
    assert len(judge_server.arrivals) == 6
    assert judge_server.arrivals[-1] - judge_server.arrivals[0] >= 0.4
