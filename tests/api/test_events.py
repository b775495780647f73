"""The event log: every change writes its event in its own transaction, and the feed reads them in order."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from casework.db.engine import Database
from casework.db.models import Event
from casework.services.auth import Principal, Role
from casework.services.reviews import enqueue_review
from tests.support import POLICY_EVALUATOR, Tenant, enqueue, make_project

pytestmark = pytest.mark.storage


def feed(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/v1/events", params=params)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def decide(client: httpx.Client, review_id: str, classification: str = "non_compliant") -> httpx.Response:
    return client.post(
        f"/api/v1/hitl/reviews/{review_id}/feedback",
        json={"classification": classification, "reasoning": "Because.", "reviewer": "ana@bank.example"},
    )


def test_each_change_writes_one_event_with_the_object_as_get_returns_it(
    admin: httpx.Client, settled: Callable[[], None]
) -> None:
    project_id = make_project(admin)
    review = enqueue(admin, project_id)
    control_id = decide(admin, review["id"]).json()["control_id"]
    admin.patch(f"/api/v1/controls/{control_id}", json={"reasoning": "Sharper reasoning."})
    admin.delete(f"/api/v1/controls/{control_id}")
    settled()

    events = feed(admin, project_id=project_id)
    assert [e["type"] for e in events] == [
        "review.created",
        "control.created",
        "review.resolved",
        "control.updated",
        "control.retired",
    ]
    assert len({e["id"] for e in events}) == 5
    created, _, resolved, _, retired = events
    assert created["data"]["status"] == "pending" and created["object_id"] == review["id"]
    # GET of one review adds the decisions its caller may see (blind overlap): not part of the event's record.
    got = admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()
    assert {"decisions", "decisions_hidden"} <= set(got)
    record = {k: v for k, v in got.items() if k not in ("decisions", "decisions_hidden")}
    assert resolved["data"] == record | {"age_seconds": resolved["data"]["age_seconds"]}
    assert resolved["data"]["resolution"]["resolved_by"] == "human"
    assert retired["data"] == admin.get(f"/api/v1/controls/{control_id}").json()
    assert all(e["actor"].startswith("admin@") for e in events)

    # The audit trail reads the same log, newest first, with the state before each change.
    audit = admin.get("/api/v1/audit", params={"project_id": project_id}).json()["events"]
    assert [a["action"] for a in audit] == [e["type"] for e in reversed(events)]
    assert audit[2]["before"]["status"] == "pending"


def test_a_request_that_fails_writes_no_event(
    admin: httpx.Client, tenant: Tenant, database: Database, settled: Callable[[], None]
) -> None:
    project_id = make_project(admin)
    review = enqueue(admin, project_id)
    assert decide(admin, review["id"]).status_code == 201
    settled()
    before = feed(admin, project_id=project_id)

    assert decide(admin, review["id"], "compliant").status_code == 409  # different feedback: a conflict
    assert decide(admin, "rev_nope").status_code == 404
    principal = Principal("key", tenant.workspace_id, Role.admin, "test")
    with pytest.raises(RuntimeError), database.transaction() as session:
        enqueue_review(
            session,
            principal=principal,
            project_id=project_id,
            evaluator_type="policy-adherence",
            query="q",
            response="r",
            options=["compliant", "non_compliant"],
        )
        raise RuntimeError("the request failed after the change: all of it is rolled back")
    assert feed(admin, project_id=project_id) == before
    assert admin.get("/api/v1/hitl/reviews", params={"project_id": project_id}).json()["reviews"] == []


def test_the_feed_reads_on_after_an_id_filters_by_type_and_keeps_to_its_workspace(
    admin: httpx.Client, other_tenant: Tenant, settled: Callable[[], None]
) -> None:
    project_id = make_project(admin)
    other_project = make_project(admin, "other")
    ids = [enqueue(admin, project_id, span_id=f"s{i}")["id"] for i in range(5)]
    enqueue(admin, other_project)
    settled()  # events join the feed once sequenced, just after they commit

    first = admin.get("/api/v1/events", params={"project_id": project_id, "limit": 2}).json()
    assert [e["object_id"] for e in first["events"]] == ids[:2]
    rest = feed(admin, project_id=project_id, after=first["next_after"])
    assert [e["object_id"] for e in rest] == ids[2:]
    assert len(feed(admin)) == 6  # the whole workspace
    assert feed(admin, project_id=project_id, type="control.created") == []
    nothing_new = admin.get("/api/v1/events", params={"after": rest[-1]["id"], "project_id": project_id})
    assert nothing_new.json() == {"events": [], "next_after": rest[-1]["id"]}

    with other_tenant.client() as intruder:
        assert feed(intruder) == []
        refused = intruder.get("/api/v1/events", params={"after": rest[0]["id"]})
        assert (refused.status_code, refused.json()["error"]["code"]) == (422, "invalid_cursor")
        assert intruder.get("/api/v1/events", params={"project_id": project_id}).status_code == 404


def test_an_ambiguous_evaluation_writes_its_event(
    admin: httpx.Client, judge_server: Any, settled: Callable[[], None]
) -> None:
    from tests.judge_server import confident

    project_id = make_project(admin)
    admin.post("/api/v1/evaluators", json={**POLICY_EVALUATOR, "project_id": project_id})
    judge_server.reply = confident("ambiguous", 0.3)
    [evaluation] = admin.post(
        "/api/v1/evaluations",
        json={
            "project_id": project_id,
            "evaluators": ["policy-adherence"],
            "query": "My broker promised guaranteed returns. Can you confirm?",
            "response": "It is a popular product.",
        },
    ).json()["evaluations"]
    settled()
    events = feed(admin, project_id=project_id, type=["evaluation.completed", "review.created"])
    assert [e["type"] for e in events] == ["review.created", "evaluation.completed"]
    assert (
        events[1]["data"]["id"] == evaluation["id"]
        and events[1]["data"]["review_id"] == evaluation["review_id"]
    )


def test_the_audit_trail_filters_by_who_and_by_days(
    admin: httpx.Client, tenant: Tenant, database: Database
) -> None:
    project_id = make_project(admin)
    first, second = enqueue(admin, project_id, span_id="s1"), enqueue(admin, project_id, span_id="s2")
    with tenant.client("reviewer") as reviewer:
        assert decide(reviewer, second["id"]).status_code == 201

    def audit(**params: Any) -> list[str]:
        response = admin.get("/api/v1/audit", params={"project_id": project_id, **params})
        assert response.status_code == 200, response.text
        return [e["action"] for e in response.json()["events"]]

    everything = audit()
    assert len(everything) == 4  # as before: new parameters change nothing unless given
    # Who: part of the actor (a key's label or id, casework-memory...), in any case; % and _ are literal.
    assert audit(actor=f"REVIEWER@{tenant.name}") == ["review.resolved", "control.created"]
    assert audit(actor="admin@") == ["review.created", "review.created"]
    assert audit(actor="%") == []

    # Days (UTC), both included: one event moved back to a day of its own.
    with database.transaction() as session:
        session.execute(
            update(Event)
            .where(Event.object_id == first["id"], Event.type == "review.created")
            .values(created_at=datetime(2024, 1, 15, 23, 59, tzinfo=timezone.utc))
        )
    assert audit(**{"from": "2024-01-15", "to": "2024-01-15"}) == ["review.created"]
    assert audit(**{"to": "2024-01-14"}) == []
    assert len(audit(**{"from": "2024-01-16"})) == 3
    assert audit(**{"from": "2024-01-15", "to": "2024-01-15", "actor": "reviewer@"}) == []

    for params, field in (
        ({"from": "2024-01-16", "to": "2024-01-15"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"actor": "x" * 301}, "actor"),
    ):
        refused = admin.get("/api/v1/audit", params={"project_id": project_id, **params})
        assert refused.status_code == 422, (params, refused.text)
        assert refused.json()["error"]["code"] == "validation_error" and field in refused.text
