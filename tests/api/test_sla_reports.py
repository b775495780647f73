"""Trends and the SLA report against counts worked out by hand, on both databases, in JSON and CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import httpx
import pytest

from casework.db.engine import Database
from casework.services import rollups
from casework.services.reviews import MemoryDecision, settle_by_memory
from tests.judge_server import JudgeServer, confident
from tests.support import POLICY_EVALUATOR, Clock, enqueue, make_project

pytestmark = pytest.mark.storage

EVALUATOR = POLICY_EVALUATOR["name"]


def decide(admin: httpx.Client, review_id: str, reviewer: str) -> None:
    admin.post(
        f"/api/v1/hitl/reviews/{review_id}/feedback",
        json={"classification": "compliant", "reasoning": "Within policy.", "reviewer": reviewer},
    ).raise_for_status()


def evaluate(admin: httpx.Client, project_id: str, n: int) -> dict[str, Any]:
    response = admin.post(
        "/api/v1/evaluations",
        json={"project_id": project_id, "evaluators": [EVALUATOR], "query": f"q{n}", "response": f"r{n}"},
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["evaluations"][0]
    return result


@pytest.fixture
def history(
    admin: httpx.Client, database: Database, judge_server: JudgeServer, clock: Clock
) -> dict[str, Any]:
    """Day one: two confident evaluations, one ambiguous (queued, never decided), three reviews queued by hand;
    alice decides one two hours later. Thirty hours on: bob decides one, memory another (both past the 10 hours)."""
    project_id = make_project(admin)
    admin.post("/api/v1/evaluators", json={"project_id": project_id, **POLICY_EVALUATOR}).raise_for_status()
    admin.put(f"/api/v1/projects/{project_id}/sla", json={"target_hours": 10}).raise_for_status()
    start = clock.now()
    judge_server.reply = confident("compliant", 0.95)
    evaluate(admin, project_id, 1)
    evaluate(admin, project_id, 2)
    judge_server.reply = confident("ambiguous", 0.3)
    pending = evaluate(admin, project_id, 3)["review_id"]
    a, b, c = (enqueue(admin, project_id, span_id=f"s{i}")["id"] for i in range(3))
    clock.advance(hours=2)
    decide(admin, a, "alice@bank.example")
    control_id = admin.get(f"/api/v1/hitl/reviews/{a}").json()["resolution"]["control_id"]
    end = clock.advance(hours=28)
    decide(admin, b, "bob@bank.example")
    with database.transaction() as session:
        vote = {"control_id": control_id, "score": 0.99, "classification": "compliant"}
        settle_by_memory(
            session,
            review_id=c,
            decision=MemoryDecision("compliant", 0.99, 0.99, "As before.", [vote], decides_alone=True),
        )
    return {"project_id": project_id, "start": start, "end": end, "pending": pending}


def test_trends_count_what_happened_each_day(admin: httpx.Client, history: dict[str, Any]) -> None:
    project_id, start, end = history["project_id"], history["start"], history["end"]
    first, last = start.date(), end.date()
    result = admin.get(
        f"/api/v1/projects/{project_id}/trends", params={"from": str(first), "to": str(last)}
    ).json()
    buckets = {b["start"]: b for b in result["buckets"]}
    assert list(buckets) == [str(first + timedelta(days=i)) for i in range((last - first).days + 1)]
    day_one = buckets[str(first)]
    assert (day_one["interactions_evaluated"], day_one["routed_to_people"], day_one["ambiguity_rate"]) == (
        3,
        1,
        0.3333,
    )
    assert day_one["reviews_created"] == 4
    assert day_one["by_evaluator"] == {
        EVALUATOR: {"interactions_evaluated": 3, "routed_to_people": 1, "ambiguity_rate": 0.3333}
    }
    # Every bucket names the same evaluators, with no rate where it judged nothing.
    assert buckets[str(last)]["by_evaluator"] == {
        EVALUATOR: {"interactions_evaluated": 0, "routed_to_people": 0, "ambiguity_rate": None}
    }
    decided_on = buckets[str((start + timedelta(hours=2)).date())]
    assert decided_on["resolved_by_people"] >= 1
    final = buckets[str(last)]
    assert final["resolved_by_memory"] == 1
    totals = {
        name: sum(b[name] for b in buckets.values())
        for name in (
            "resolved_by_people",
            "resolved_by_memory",
            "breached",
            "controls_created",
            "reviews_created",
        )
    }
    assert totals == {
        "resolved_by_people": 2,
        "resolved_by_memory": 1,
        "breached": 2,
        "controls_created": 2,
        "reviews_created": 4,
    }
    if decided_on is not final:  # alice's two hours and the others' thirty fall on different days
        assert decided_on["time_to_decision_p50_seconds"] == pytest.approx(7200, rel=0.1)
        assert (decided_on["breach_rate"], final["breach_rate"]) == (0.0, 1.0)
    assert final["time_to_decision_p99_seconds"] == pytest.approx(30 * 3600, rel=0.1)
    weekly = admin.get(
        f"/api/v1/projects/{project_id}/trends",
        params={"from": str(first), "to": str(last), "bucket": "week"},
    ).json()["buckets"]
    assert sum(b["reviews_created"] for b in weekly) == 4
    assert weekly[0]["start"] == str(first - timedelta(days=first.weekday()))  # the Monday of its week
    only = admin.get(
        f"/api/v1/projects/{project_id}/trends",
        params={"from": str(first), "to": str(last), "evaluator_type": "toxicity"},
    ).json()["buckets"]
    assert sum(b["reviews_created"] for b in only) == 0


def test_trends_in_csv(admin: httpx.Client, history: dict[str, Any]) -> None:
    project_id, first = history["project_id"], history["start"].date()
    response = admin.get(
        f"/api/v1/projects/{project_id}/trends",
        params={"from": str(first), "to": str(first)},
        headers={"Accept": "text/csv"},
    )
    assert response.headers["content-type"].startswith("text/csv")
    (row,) = list(csv.DictReader(io.StringIO(response.text)))
    assert (row["start"], row["reviews_created"], row["interactions_evaluated"]) == (str(first), "4", "3")
    assert row[f"ambiguity_rate:{EVALUATOR}"] == "0.3333"


def test_the_sla_report(admin: httpx.Client, history: dict[str, Any]) -> None:
    project_id = history["project_id"]
    params = {"from": str(history["start"].date()), "to": str(history["end"].date())}
    report = admin.get(f"/api/v1/projects/{project_id}/sla-report", params=params).json()
    assert (report["overall"]["decided"], report["overall"]["breached"]) == (3, 2)
    assert report["overall"]["breach_rate"] == 0.6667
    by_reviewer = {name: (g["decided"], g["breached"]) for name, g in report["by_reviewer"].items()}
    assert by_reviewer == {
        "alice@bank.example": (1, 0),
        "bob@bank.example": (1, 1),
        "casework-memory": (1, 1),
    }
    assert report["by_evaluator"][EVALUATOR]["decided"] == 3
    assert report["by_reviewer"]["alice@bank.example"]["p50_seconds"] == pytest.approx(7200, rel=0.1)
    assert report["overdue_count"] == 1
    assert [r["id"] for r in report["overdue"]] == [history["pending"]]
    assert report["overdue"][0]["overdue_seconds"] == pytest.approx(20 * 3600, rel=0.01)
    assert report["pending"] == 1
    rows = list(
        csv.DictReader(
            io.StringIO(
                admin.get(
                    f"/api/v1/projects/{project_id}/sla-report", params={**params, "format": "csv"}
                ).text
            )
        )
    )
    assert [(r["scope"], r["name"], r["decided"]) for r in rows][:2] == [
        ("overall", "", "3"),
        ("evaluator", EVALUATOR, "3"),
    ]


def test_rebuilt_roll_ups_equal_the_kept_ones(
    admin: httpx.Client, database: Database, history: dict[str, Any]
) -> None:
    project_id = history["project_id"]
    params = {"from": str(history["start"].date()), "to": str(history["end"].date())}
    kept = admin.get(f"/api/v1/projects/{project_id}/trends", params=params).json()
    with database.transaction() as session:
        rollups.rebuild(session, project_id)
    assert admin.get(f"/api/v1/projects/{project_id}/trends", params=params).json() == kept


def test_a_range_backwards_is_refused(admin: httpx.Client) -> None:
    project_id = make_project(admin)
    response = admin.get(
        f"/api/v1/projects/{project_id}/trends", params={"from": "2026-02-01", "to": "2026-01-01"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


def test_trends_count_agreement_on_the_decisions_people_made(
    admin: httpx.Client, database: Database, clock: Clock
) -> None:
    """Three reviewers on each review. The first: the judge said compliant, all three agree (3 pairs, 3 agree).
    The second: the judge said non_compliant, two say compliant and one not (3 pairs, 1 agrees), and a lead
    settles on compliant. Judge vs people: 1 of 2; reviewers: 4 of 6 pairs."""
    project_id = make_project(admin)
    evaluator = admin.post("/api/v1/evaluators", json={"project_id": project_id, **POLICY_EVALUATOR}).json()
    admin.patch(f"/api/v1/evaluators/{evaluator['id']}", json={"reviewers_required": 3}).raise_for_status()
    agreed = enqueue(admin, project_id, span_id="one", classification="compliant")["id"]
    split = enqueue(admin, project_id, span_id="two", classification="non_compliant")["id"]
    clock.advance(hours=1)
    for review_id, votes in ((agreed, "ccc"), (split, "ccn")):
        for reviewer, vote in zip(("ana", "ben", "cleo"), votes, strict=True):
            body = {
                "classification": "compliant" if vote == "c" else "non_compliant",
                "reasoning": "Read the policy.",
                "reviewer": f"{reviewer}@bank.example",
            }
            admin.post(f"/api/v1/hitl/reviews/{review_id}/feedback", json=body).raise_for_status()
    settled = admin.post(
        f"/api/v1/hitl/reviews/{split}/feedback",
        json={
            "classification": "compliant",
            "reasoning": "The policy allows it.",
            "reviewer": "lead@bank.example",
            "adjudicate": True,
        },
    )
    assert settled.status_code in (200, 201), settled.text
    today = str(clock.now().date())
    params = {"from": today, "to": today}
    (bucket,) = admin.get(f"/api/v1/projects/{project_id}/trends", params=params).json()["buckets"]
    assert bucket["resolved_by_people"] == 2
    assert (bucket["judge_human_compared"], bucket["judge_human_agreement"]) == (2, 0.5)
    assert (bucket["reviewer_pairs"], bucket["inter_reviewer_agreement"]) == (6, 0.6667)
    kept = admin.get(f"/api/v1/projects/{project_id}/trends", params=params).json()
    with database.transaction() as session:
        rollups.rebuild(session, project_id)
    assert admin.get(f"/api/v1/projects/{project_id}/trends", params=params).json() == kept
