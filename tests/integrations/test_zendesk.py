"""Zendesk, end to end against a fake Zendesk over real HTTP: a note on the customer's ticket (or a new ticket),
the decision as a second note, and decisions from a signed Zendesk webhook."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from casework.db.engine import Database
from tests.fakes.zendesk import API_TOKEN, CUSTOMER_TICKET, EMAIL, SIGNING_SECRET, FakeZendesk
from tests.integrations.conftest import (
    inbound_url,
    pause_when_waiting,
    paused_after_sweep,
    register,
    wait_linked,
)
from tests.support import POLICY_EVALUATOR, enqueue, make_project, table_counts, wait_for

pytestmark = pytest.mark.storage


def connect(admin: httpx.Client, zendesk: FakeZendesk) -> dict[str, Any]:
    return register(
        admin,
        "zendesk",
        {
            "base_url": zendesk.base_url,
            "email": EMAIL,
            "api_token": API_TOKEN,
            "webhook_secret": SIGNING_SECRET,
        },
    )


def test_a_note_on_the_named_ticket_then_the_decision_as_a_second_note(
    admin: httpx.Client, zendesk: FakeZendesk
) -> None:
    project_id = make_project(admin)
    connect(admin, zendesk)
    review = enqueue(admin, project_id, metadata={"zendesk.ticket_id": str(CUSTOMER_TICKET)})
    comments = zendesk.tickets[CUSTOMER_TICKET]["comments"]
    wait_for(lambda: len(comments) == 1)
    assert comments[0]["public"] is False and "ambiguous (confidence 0.42)" in comments[0]["body"]
    assert f"/reviews/{review['id']}" in comments[0]["body"]

    admin.post(
        f"/api/v1/hitl/reviews/{review['id']}/feedback",
        json={"classification": "compliant", "reasoning": "Polite.", "reviewer": "carla@bank.example"},
    ).raise_for_status()
    wait_for(lambda: len(comments) == 2)
    assert (
        comments[1]["public"] is False and "Decided by carla@bank.example: compliant" in comments[1]["body"]
    )


def test_a_review_naming_no_ticket_opens_one(admin: httpx.Client, zendesk: FakeZendesk) -> None:
    project_id = make_project(admin)
    connect(admin, zendesk)
    review = enqueue(admin, project_id, metadata={"zendesk": {"ticket_id": None}})
    created = wait_for(lambda: [t for t in zendesk.tickets.values() if t.get("external_id") == review["id"]])
    assert created[0]["comments"][0]["public"] is False and "casework" in created[0]["tags"]


def test_decisions_from_a_signed_webhook(
    admin: httpx.Client, zendesk: FakeZendesk, base_url: str, database: Database, settled: Callable[[], None]
) -> None:
    project_id = make_project(admin)
    integration = connect(admin, zendesk)
    review = enqueue(admin, project_id, metadata={"zendesk.ticket_id": CUSTOMER_TICKET})
    comments = zendesk.tickets[CUSTOMER_TICKET]["comments"]
    wait_for(lambda: len(comments) == 1)
    wait_linked(database, review["id"])
    url = inbound_url(base_url, integration)
    decision = {
        "ticket_id": str(CUSTOMER_TICKET),
        "comment": f"review: {review['id']}\nclassification: non_compliant\nreasoning: It promised a refund.",
        "author_email": "ana@bank.example",
    }
    settled()
    before = table_counts(database)
    stale = (datetime.now(timezone.utc) - timedelta(minutes=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for refused in (
        zendesk.send(url, decision, secret="not-the-secret"),
        zendesk.send(url, decision, timestamp=stale),
    ):
        assert (refused.status_code, refused.json()["error"]["code"]) == (401, "unauthenticated")
    assert table_counts(database) == before

    no_author = zendesk.send(url, {**decision, "author_email": ""})
    assert no_author.json()["status"] == "refused"
    accepted = zendesk.send(url, decision)
    assert accepted.json()["status"] == "accepted"
    assert (
        admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()["resolution"]["reviewer"]
        == "ana@bank.example"
    )
    late = zendesk.send(
        url, {**decision, "comment": decision["comment"].replace("non_compliant", "compliant")}
    )
    assert late.json()["status"] == "already_decided"
    wait_for(lambda: any("Already decided by ana@bank.example" in c["body"] for c in comments))


def test_decisions_on_a_review_several_people_decide_are_answered_in_the_tool(
    admin: httpx.Client, zendesk: FakeZendesk, base_url: str, database: Database
) -> None:
    project_id = make_project(admin)
    created = admin.post(
        "/api/v1/evaluators",
        json={**POLICY_EVALUATOR, "name": "overlap", "project_id": project_id, "reviewers_required": 2},
    )
    assert created.status_code in (200, 201), created.text
    integration = connect(admin, zendesk)
    review = enqueue(
        admin, project_id, evaluator_type="overlap", metadata={"zendesk.ticket_id": CUSTOMER_TICKET}
    )
    comments = zendesk.tickets[CUSTOMER_TICKET]["comments"]
    wait_for(lambda: len(comments) == 1)
    wait_linked(database, review["id"])
    url = inbound_url(base_url, integration)

    def decide(author: str, classification: str) -> dict[str, Any]:
        comment = (
            f"review: {review['id']}\nclassification: {classification}\nreasoning: As I read the policy."
        )
        answer = zendesk.send(
            url, {"ticket_id": str(CUSTOMER_TICKET), "comment": comment, "author_email": author}
        )
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    first = decide("ana@bank.example", "compliant")
    assert first["status"] == "accepted" and "1 of 2 decisions are in" in first["message"]
    again = decide("ana@bank.example", "non_compliant")  # one decision per reviewer
    assert again["status"] == "refused"
    second = decide("ben@bank.example", "non_compliant")
    assert second["status"] == "accepted" and "a lead will rule" in second["message"]
    late = decide("carol@bank.example", "compliant")  # only a lead rules now, in Casework
    assert late["status"] == "refused"
    wait_for(lambda: sum("lead" in c["body"] or "already" in c["body"].lower() for c in comments) >= 2)
    assert admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()["status"] == "needs_adjudication"


def test_a_review_waits_on_its_ticket_only_while_the_ticket_is_open(
    admin: httpx.Client, zendesk: FakeZendesk, base_url: str, database: Database
) -> None:
    project_id = make_project(admin)
    pause_when_waiting(admin, project_id)
    integration = connect(admin, zendesk)
    review = enqueue(admin, project_id, metadata={"zendesk.ticket_id": CUSTOMER_TICKET})
    wait_linked(database, review["id"])
    url = inbound_url(base_url, integration)
    ticket = str(CUSTOMER_TICKET)
    assert paused_after_sweep(admin, database, review["id"])
    solved = zendesk.send(url, {"ticket_id": ticket, "status": "Solved"})  # the trigger's {{ticket.status}}
    assert solved.json() == {"status": "noted", "message": f"{ticket} is closed."}
    assert not paused_after_sweep(admin, database, review["id"])
    zendesk.send(url, {"ticket_id": ticket, "status": "Open"})  # the customer wrote again
    assert paused_after_sweep(admin, database, review["id"])
    elsewhere = zendesk.send(
        url, {"ticket_id": "999999", "status": "Solved"}
    )  # a ticket Casework never noted
    assert elsewhere.json() == {"status": "ignored", "message": "999999 has no Casework review."}
    assert admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()["status"] == "pending"
