"""Jira, end to end against a fake Jira Cloud over real HTTP: issues created with an ADF description, decisions
from comments and transitions (signed webhooks), and Casework's decisions commented and transitioned."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from casework.db.engine import Database
from tests.fakes.jira import (
    API_TOKEN,
    EMAIL,
    PROJECT,
    WEBHOOK_SECRET,
    FakeJira,
    comment_event,
    status_event,
    text_of,
    transition_event,
)
from tests.integrations.conftest import (
    inbound_url,
    pause_when_waiting,
    paused_after_sweep,
    register,
    wait_linked,
)
from tests.support import enqueue, make_project, table_counts, wait_for

pytestmark = pytest.mark.storage


def connect(admin: httpx.Client, jira: FakeJira, **config: Any) -> dict[str, Any]:
    return register(
        admin,
        "jira",
        {
            "base_url": jira.base_url,
            "email": EMAIL,
            "api_token": API_TOKEN,
            "project_key": PROJECT,
            "webhook_secret": WEBHOOK_SECRET,
            "status_map": {"Compliant": "compliant"},
            "reasoning_field": "customfield_10050",
            **config,
        },
    )


def issue_of(jira: FakeJira, review_id: str, database: Database) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(lambda: jira.issue_for(review_id), message="no Jira issue")
    wait_linked(database, review_id)
    return found


def test_a_review_becomes_an_issue_and_a_comment_decides_it(
    admin: httpx.Client, jira: FakeJira, base_url: str, database: Database
) -> None:
    project_id = make_project(admin)
    integration = connect(admin, jira)
    review = enqueue(admin, project_id, evaluator_type="policy adherence")
    issue = issue_of(jira, review["id"], database)
    fields = issue["fields"]
    assert fields["summary"].startswith("Review needed: policy adherence")
    assert "casework" in fields["labels"] and "policy-adherence" in fields["labels"]
    description = text_of(fields["description"])
    assert review["query"] in description and "ambiguous (confidence 0.42)" in description
    assert f"/reviews/{review['id']}" in description

    comment = (
        "classification: non_compliant\nreasoning: Loyalty does not justify a promise.\ntags: credit-limit"
    )
    answer = jira.send(inbound_url(base_url, integration), comment_event(issue["key"], comment))
    assert answer.json() == {"status": "accepted", "message": "Decided: non_compliant (by ana@bank.example)."}
    resolution = admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()["resolution"]
    assert (resolution["reviewer"], resolution["tags"]) == ("ana@bank.example", ["credit-limit"])
    assert resolution["reasoning"] == "Loyalty does not justify a promise."

    # Casework's decision goes back: a comment, and the Done transition.
    wait_for(lambda: jira.issues[issue["key"]]["status"] == "Done")
    assert "Decided by ana@bank.example: non_compliant" in text_of(jira.issues[issue["key"]]["comments"][0])


def test_a_transition_to_a_mapped_status_decides_and_a_decision_in_casework_transitions(
    admin: httpx.Client, jira: FakeJira, base_url: str, database: Database
) -> None:
    project_id = make_project(admin)
    integration = connect(admin, jira)
    first, second = enqueue(admin, project_id, span_id="a"), enqueue(admin, project_id, span_id="b")
    key = issue_of(jira, first["id"], database)["key"]
    answer = jira.send(
        inbound_url(base_url, integration),
        transition_event(key, "Compliant", reasoning="Polite and no promise."),
    )
    assert answer.json()["status"] == "accepted"
    assert (
        admin.get(f"/api/v1/hitl/reviews/{first['id']}").json()["resolution"]["classification"] == "compliant"
    )

    other = issue_of(jira, second["id"], database)["key"]
    admin.post(
        f"/api/v1/hitl/reviews/{second['id']}/feedback",
        json={"classification": "non_compliant", "reasoning": "A promise.", "reviewer": "carla@bank.example"},
    ).raise_for_status()
    wait_for(lambda: jira.issues[other]["status"] == "Done")


def test_bad_signatures_are_refused_and_replays_change_nothing(
    admin: httpx.Client, jira: FakeJira, base_url: str, database: Database, settled: Callable[[], None]
) -> None:
    project_id = make_project(admin)
    integration = connect(admin, jira)
    review = enqueue(admin, project_id)
    key = issue_of(jira, review["id"], database)["key"]
    settled()
    before = table_counts(database)
    event = comment_event(key, "classification: compliant\nreasoning: fine")
    url = inbound_url(base_url, integration)
    for refused in (
        jira.send(url, event, secret="another-secret-entirely"),
        jira.send(url, event, signed=False),
    ):
        assert (refused.status_code, refused.json()["error"]["code"]) == (401, "unauthenticated")
    assert table_counts(database) == before

    assert jira.send(url, event).json()["status"] == "accepted"
    settled()
    after = table_counts(database)
    replayed = jira.send(url, event)  # the same delivery again: the same decision, nothing new
    assert replayed.json()["status"] == "accepted"
    settled()
    assert table_counts(database) == after


def test_unknown_users_and_already_decided_reviews_are_answered_on_the_issue(
    admin: httpx.Client, jira: FakeJira, base_url: str, database: Database
) -> None:
    project_id = make_project(admin)
    integration = connect(admin, jira)
    review = enqueue(admin, project_id)
    key = issue_of(jira, review["id"], database)["key"]
    url = inbound_url(base_url, integration)

    hidden = jira.send(
        url, comment_event(key, "classification: compliant\nreasoning: ok", account_id="acc-hidden")
    )
    assert hidden.json()["status"] == "refused" and "could not tell who you are" in hidden.json()["message"]
    wait_for(lambda: any("could not tell who you are" in text_of(c) for c in jira.issues[key]["comments"]))

    not_an_option = jira.send(url, comment_event(key, "classification: maybe\nreasoning: unsure"))
    assert not_an_option.json()["status"] == "refused" and "compliant" in not_an_option.json()["message"]

    admin.post(
        f"/api/v1/hitl/reviews/{review['id']}/feedback",
        json={"classification": "compliant", "reasoning": "Fine.", "reviewer": "carla@bank.example"},
    ).raise_for_status()
    late = jira.send(url, comment_event(key, "classification: non_compliant\nreasoning: no"))
    assert late.json() == {
        "status": "already_decided",
        "message": "Already decided by carla@bank.example: compliant.",
    }
    wait_for(lambda: any("Already decided by carla" in text_of(c) for c in jira.issues[key]["comments"]))
    assert jira.send(url, comment_event(key, "just a remark, not a decision")).json()["status"] == "ignored"


def test_the_automation_rule_body_the_docs_give_decides(
    admin: httpx.Client, jira: FakeJira, base_url: str, database: Database
) -> None:
    """docs/integrations/jira.md's Jira Automation body, with the smart values Jira would fill in, sent with
    the token header, decides as a system webhook does."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "integrations" / "jira.md").read_text()
    template = docs.split("*Custom data* exactly this body", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    project_id = make_project(admin)
    integration = connect(admin, jira)
    review = enqueue(admin, project_id)
    key = issue_of(jira, review["id"], database)["key"]
    filled = {
        "{{issue.key}}": key,
        "{{comment.body.jsonEncode}}": json.dumps('classification: compliant\nreasoning: "Fine" & polite.')[
            1:-1
        ],
        "{{comment.author.accountId}}": "acc-ana",
        "{{comment.author.emailAddress}}": "ana@bank.example",
    }
    for smart, value in filled.items():
        template = template.replace(smart, value)
    answer = httpx.post(
        inbound_url(base_url, integration),
        content=template.encode(),
        headers={"content-type": "application/json", "x-casework-token": WEBHOOK_SECRET},
    )
    assert answer.json()["status"] == "accepted", answer.text
    resolution = admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()["resolution"]
    assert (resolution["reviewer"], resolution["reasoning"]) == ("ana@bank.example", '"Fine" & polite.')


def test_a_review_waits_on_its_issue_only_while_the_issue_is_open(
    admin: httpx.Client, jira: FakeJira, base_url: str, database: Database
) -> None:
    project_id = make_project(admin)
    pause_when_waiting(admin, project_id)
    integration = connect(admin, jira)
    review = enqueue(admin, project_id)
    key = issue_of(jira, review["id"], database)["key"]
    url = inbound_url(base_url, integration)
    assert paused_after_sweep(admin, database, review["id"])
    closed = jira.send(url, status_event(key, "Won't do", "done"))  # closed in Jira, and no decision
    assert closed.json() == {"status": "noted", "message": f"{key} is closed."}
    assert not paused_after_sweep(admin, database, review["id"])
    jira.send(url, status_event(key, "In Progress", "indeterminate"))  # reopened: waiting on Jira again
    assert paused_after_sweep(admin, database, review["id"])
    deleted = jira.send(url, status_event(key, "In Progress", "indeterminate", event="jira:issue_deleted"))
    assert deleted.json()["status"] == "noted"
    assert not paused_after_sweep(admin, database, review["id"])
    assert admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()["status"] == "pending"
