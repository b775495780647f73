"""ServiceNow, end to end against a fake instance over real HTTP: records with the due time, closed on
resolution, and decisions from its outbound REST message."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from casework.db.engine import Database
from tests.fakes.servicenow import INBOUND_SECRET, PASSWORD, USER, FakeServiceNow
from tests.integrations.conftest import (
    inbound_url,
    pause_when_waiting,
    paused_after_sweep,
    register,
    wait_linked,
)
from tests.support import enqueue, make_project, table_counts, wait_for

pytestmark = pytest.mark.storage


def connect(admin: httpx.Client, servicenow: FakeServiceNow, **config: Any) -> dict[str, Any]:
    return register(
        admin,
        "servicenow",
        {
            "instance_url": servicenow.base_url,
            "username": USER,
            "password": PASSWORD,
            "inbound_secret": INBOUND_SECRET,
            **config,
        },
    )


def record_of(servicenow: FakeServiceNow, review_id: str) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(lambda: servicenow.record_for(review_id), message="no ServiceNow record")
    return found


def test_a_review_becomes_a_grc_issue_due_at_its_target_and_is_closed_when_decided(
    admin: httpx.Client, servicenow: FakeServiceNow
) -> None:
    project_id = make_project(admin)
    admin.patch(f"/api/v1/projects/{project_id}", json={"review_target_hours": 8}).raise_for_status()
    connect(admin, servicenow)
    review = enqueue(admin, project_id)
    record = record_of(servicenow, review["id"])
    assert record["table"] == "sn_grc_issue" and record["short_description"].startswith("Review needed")
    created = datetime.fromisoformat(review["created_at"].replace("Z", "+00:00"))
    due = datetime.strptime(record["due_date"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    assert abs(due - (created + timedelta(hours=8))) < timedelta(seconds=2)
    assert f"/reviews/{review['id']}" in record["description"]

    admin.post(
        f"/api/v1/hitl/reviews/{review['id']}/feedback",
        json={"classification": "compliant", "reasoning": "Fine.", "reviewer": "carla@bank.example"},
    ).raise_for_status()
    wait_for(lambda: servicenow.records[record["sys_id"]]["state"] == "3")
    assert "Decided by carla@bank.example: compliant" in servicenow.records[record["sys_id"]]["close_notes"]


def test_incidents_are_resolved_with_a_close_code(admin: httpx.Client, servicenow: FakeServiceNow) -> None:
    project_id = make_project(admin)
    connect(admin, servicenow, table="incident")
    review = enqueue(admin, project_id)
    record = record_of(servicenow, review["id"])
    admin.post(
        f"/api/v1/hitl/reviews/{review['id']}/feedback",
        json={"classification": "compliant", "reasoning": "Fine.", "reviewer": "carla@bank.example"},
    ).raise_for_status()
    wait_for(lambda: servicenow.records[record["sys_id"]]["state"] == "6")
    assert servicenow.records[record["sys_id"]]["close_code"] == "Solution provided"


def test_decisions_from_the_outbound_rest_message(
    admin: httpx.Client,
    servicenow: FakeServiceNow,
    base_url: str,
    database: Database,
    settled: Callable[[], None],
) -> None:
    project_id = make_project(admin)
    integration = connect(admin, servicenow)
    review = enqueue(admin, project_id)
    sys_id = record_of(servicenow, review["id"])["sys_id"]
    wait_linked(database, review["id"])
    url = inbound_url(base_url, integration)
    decision = {
        "sys_id": sys_id,
        "classification": "non_compliant",
        "reasoning": "The agent implied approval.",
        "tags": "credit-limit",
        "user_email": "ana@bank.example",
    }
    settled()
    before = table_counts(database)
    for token in ("wrong-secret-of-the-same-length", None):
        refused = servicenow.send(url, decision, token=token)
        assert (refused.status_code, refused.json()["error"]["code"]) == (401, "unauthenticated")
    assert table_counts(database) == before

    unknown = servicenow.send(url, {**decision, "user_email": None})
    assert unknown.json()["status"] == "refused"
    wait_for(lambda: any("could not tell who you are" in n for n in servicenow.records[sys_id]["notes"]))

    accepted = servicenow.send(url, decision)
    assert accepted.json()["status"] == "accepted"
    resolution = admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()["resolution"]
    assert (resolution["reviewer"], resolution["tags"]) == ("ana@bank.example", ["credit-limit"])
    assert servicenow.send(url, decision).json()["status"] == "accepted"  # a replay: the same decision

    changed = servicenow.send(
        url, {**decision, "classification": "compliant", "user_email": "ben@bank.example"}
    )
    assert changed.json() == {
        "status": "already_decided",
        "message": "Already decided by ana@bank.example: non_compliant.",
    }
    wait_for(lambda: servicenow.records[sys_id]["state"] == "3")


def test_a_review_waits_on_its_record_only_while_the_record_is_active(
    admin: httpx.Client, servicenow: FakeServiceNow, base_url: str, database: Database
) -> None:
    project_id = make_project(admin)
    pause_when_waiting(admin, project_id)
    integration = connect(admin, servicenow)
    review = enqueue(admin, project_id)
    sys_id = record_of(servicenow, review["id"])["sys_id"]
    wait_linked(database, review["id"])
    url = inbound_url(base_url, integration)
    assert paused_after_sweep(admin, database, review["id"])
    # The business rule on "active changes" sends the flag as its script reads it: text.
    closed = servicenow.send(url, {"sys_id": sys_id, "active": "false"})
    assert closed.json() == {"status": "noted", "message": f"{sys_id} is closed."}
    assert not paused_after_sweep(admin, database, review["id"])
    servicenow.send(url, {"sys_id": sys_id, "active": True})  # reopened
    assert paused_after_sweep(admin, database, review["id"])
    assert admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()["status"] == "pending"
