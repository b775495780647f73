"""Slack, end to end against a fake Slack over real HTTP: a review is posted with a button per option, a button
opens a modal, its submission decides the review, and the message is updated in place."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from casework.db.engine import Database
from casework.events import EventType
from casework.services import events
from casework.services.integration_deliveries import queue_digests
from tests.fakes.slack import CHANNEL, SIGNING_SECRET, TOKEN, FakeSlack
from tests.integrations.conftest import inbound_url, register
from tests.support import Clock, Tenant, enqueue, make_project, table_counts, wait_for

pytestmark = pytest.mark.storage


def connect(admin: httpx.Client, slack: FakeSlack, **fields: Any) -> dict[str, Any]:
    config = {
        "bot_token": TOKEN,
        "signing_secret": SIGNING_SECRET,
        "channel": CHANNEL,
        "api_base_url": f"{slack.base_url}/api/",
    }
    return register(admin, "slack", config, **fields)


def posted(slack: FakeSlack, review_id: str) -> dict[str, Any]:
    message: dict[str, Any] = wait_for(lambda: slack.message_for(review_id), message="no Slack message")
    return message


def succeeded(admin: httpx.Client, integration: dict[str, Any]) -> list[dict[str, Any]]:
    found = admin.get(f"/api/v1/integrations/{integration['id']}/deliveries").json()["deliveries"]
    return [d for d in found if d["status"] == "succeeded"]


def text_of(message: dict[str, Any]) -> str:
    return json.dumps(message["blocks"])


def test_round_trip_button_modal_feedback_and_the_message_updated_in_place(
    admin: httpx.Client, slack: FakeSlack, base_url: str
) -> None:
    project_id = make_project(admin)
    integration = connect(admin, slack, project_id=project_id)
    review = enqueue(admin, project_id, query="My broker promised guaranteed returns. True?")

    message = posted(slack, review["id"])
    blocks = text_of(message)
    assert "guaranteed returns" in blocks and "ambiguous (confidence 0.42)" in blocks
    [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
    assert [e["text"]["text"] for e in actions["elements"]] == [
        "compliant",
        "non_compliant",
        "Open in Casework",
    ]
    assert actions["elements"][-1]["url"].endswith(f"/reviews/{review['id']}")

    clicked = slack.click(inbound_url(base_url, integration), message, "non_compliant")
    assert clicked.status_code == 200, clicked.text
    [view] = slack.views
    assert view["callback_id"] == "casework_decision" and "non_compliant" in json.dumps(view["blocks"])

    submitted = slack.submit(
        inbound_url(base_url, integration),
        view,
        reasoning="No investment has guaranteed returns; the agent must correct this.",
        tags="guaranteed-returns, investments",
    )
    assert submitted.json() == {"response_action": "clear"}

    stored = admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()
    assert stored["status"] == "resolved"
    resolution = stored["resolution"]
    assert (resolution["classification"], resolution["reviewer"]) == ("non_compliant", "ana@bank.example")
    assert resolution["tags"] == ["guaranteed-returns", "investments"]
    assert resolution["submitted_by"] == f"slack integration ({integration['id']})"
    control = admin.get(f"/api/v1/controls/{resolution['control_id']}").json()
    assert control["reasoning"].startswith("No investment")

    updated = wait_for(
        lambda: "Decided by" in text_of(slack.messages[message["ts"]]) and slack.messages[message["ts"]]
    )
    assert "Decided by ana@bank.example: non_compliant" in text_of(updated)
    assert not [b for b in updated["blocks"] if b["type"] == "actions"]  # no buttons left to press
    assert len(slack.called("chat.postMessage")) == 1  # updated in place, not posted again


def test_a_reopened_review_gets_its_buttons_back(
    admin: httpx.Client, slack: FakeSlack, tenant: Tenant, database: Database
) -> None:
    project_id = make_project(admin)
    connect(admin, slack)
    review = enqueue(admin, project_id)
    message = posted(slack, review["id"])
    admin.post(
        f"/api/v1/hitl/reviews/{review['id']}/feedback",
        json={"classification": "compliant", "reasoning": "Fine.", "reviewer": "carla@bank.example"},
    ).raise_for_status()
    wait_for(lambda: "Decided by" in text_of(slack.messages[message["ts"]]))
    with database.transaction() as session:  # as the memory issue's reopening will record it
        events.emit(
            session,
            EventType.review_reopened,
            workspace_id=tenant.workspace_id,
            project_id=project_id,
            actor="test",
            object_type="review",
            object_id=review["id"],
            data={**review, "status": "pending", "resolution": None},
        )
    wait_for(lambda: [b for b in slack.messages[message["ts"]]["blocks"] if b["type"] == "actions"])
    assert "Decided by" not in text_of(slack.messages[message["ts"]])


def test_a_decision_made_elsewhere_updates_the_message_and_a_late_click_is_told(
    admin: httpx.Client, slack: FakeSlack, base_url: str
) -> None:
    project_id = make_project(admin)
    integration = connect(admin, slack)
    review = enqueue(admin, project_id)
    message = posted(slack, review["id"])
    stale_copy = json.loads(json.dumps(message))  # as a client that has not refreshed still shows it
    slack.click(inbound_url(base_url, integration), message, "compliant", user="U0BEN")

    decided = admin.post(
        f"/api/v1/hitl/reviews/{review['id']}/feedback",
        json={
            "classification": "compliant",
            "reasoning": "Loyalty is fine.",
            "reviewer": "carla@bank.example",
        },
    )
    assert decided.status_code == 201
    wait_for(lambda: "Decided by carla@bank.example: compliant" in text_of(slack.messages[message["ts"]]))

    late = slack.submit(
        inbound_url(base_url, integration), slack.views[0], reasoning="Too late", user="U0BEN"
    )
    answer = late.json()
    assert answer["response_action"] == "update"
    assert "Already decided by carla@bank.example: compliant." in json.dumps(answer["view"])
    assert (
        admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()["resolution"]["reviewer"]
        == "carla@bank.example"
    )

    # A button pressed on a message that still shows them (an old copy) says so at once, with no form to fill.
    slack.click(inbound_url(base_url, integration), stale_copy, "non_compliant", user="U0BEN")
    notice = slack.views[-1]
    assert notice.get("callback_id") is None and "submit" not in notice
    assert "Already decided by carla@bank.example: compliant." in json.dumps(notice["blocks"])


def test_unknown_users_bad_tags_and_disallowed_reviewers_are_answered_in_the_modal(
    admin: httpx.Client, slack: FakeSlack, base_url: str
) -> None:
    project_id = make_project(admin)
    integration = connect(admin, slack, project_id=project_id)
    admin.patch(
        f"/api/v1/integrations/{integration['id']}", json={"config": {"allowed_reviewers": ["@bank.example"]}}
    ).raise_for_status()
    review = enqueue(admin, project_id)
    message = posted(slack, review["id"])
    url = inbound_url(base_url, integration)
    slack.click(url, message, "compliant")
    view = slack.views[0]

    no_email = slack.submit(url, view, reasoning="Fine.", user="U0NOMAIL").json()
    assert no_email["response_action"] == "errors"
    assert "could not tell who you are" in no_email["errors"]["reasoning"]

    bad_tag = slack.submit(url, view, reasoning="Fine.", tags="Not A Slug!!").json()
    assert bad_tag["response_action"] == "errors" and "tag" in bad_tag["errors"]["reasoning"]

    admin.patch(
        f"/api/v1/integrations/{integration['id']}",
        json={"config": {"allowed_reviewers": ["ben@bank.example"]}},
    ).raise_for_status()
    refused = slack.submit(url, view, reasoning="Fine.").json()
    assert "not allowed" in refused["errors"]["reasoning"]
    assert admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()["status"] == "pending"


def test_requests_without_slacks_signature_or_replayed_later_are_refused(
    admin: httpx.Client, slack: FakeSlack, base_url: str, database: Database, settled: Callable[[], None]
) -> None:
    project_id = make_project(admin)
    integration = connect(admin, slack)
    review = enqueue(admin, project_id)
    message = posted(slack, review["id"])
    url = inbound_url(base_url, integration)
    slack.click(url, message, "compliant")
    view = slack.views[0]
    settled()
    before = table_counts(database)
    submission = {
        "type": "view_submission",
        "user": {"id": "U0ANA"},
        "view": {
            "id": view["id"],
            "callback_id": "casework_decision",
            "private_metadata": view["private_metadata"],
            "state": {"values": {"reasoning": {"reasoning": {"value": "Fine."}}}},
        },
    }
    for attempt in (
        {"secret": "not-the-signing-secret"},
        {"timestamp": int(time.time()) - 6 * 60},  # a captured request, replayed six minutes later
        {"signature": "v0=" + "0" * 64},
    ):
        refused = slack.send(url, submission, **attempt)  # type: ignore[arg-type]
        assert refused.status_code == 401, attempt
        assert refused.json()["error"]["code"] == "unauthenticated"
    unknown = slack.send(f"{base_url}/api/v1/integrations/int_nope/inbound", submission)
    assert unknown.json()["error"]["code"] == "integration_not_found"
    assert table_counts(database) == before
    assert admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()["status"] == "pending"


def test_a_rate_limited_post_is_retried_and_the_daily_digest_counts_the_queue(
    admin: httpx.Client, slack: FakeSlack, database: Database, settled: Callable[[], None]
) -> None:
    project_id = make_project(admin)
    integration = connect(admin, slack, project_id=project_id)
    with database.transaction() as session:
        assert queue_digests(session, tick=999_000.0) == 0  # nothing waiting: no digest
    slack.plan = [429, 503]
    review = enqueue(admin, project_id)
    posted(slack, review["id"])
    [delivery] = wait_for(lambda: succeeded(admin, integration))
    assert [a["status_code"] for a in delivery["attempts"]] == [429, 503, 200]

    with database.transaction() as session:
        assert queue_digests(session, tick=1_000_000.0) == 1
        assert queue_digests(session, tick=1_000_000.0) == 0  # once per tick, however many workers ask
    settled()
    [digest] = [m for m in slack.messages.values() if "today's review queue" in text_of(m)]
    assert "*Pending reviews:* 1" in text_of(digest) and f"/projects/{project_id}/queue" in text_of(digest)


def test_a_wrong_token_fails_the_delivery_at_once_with_slacks_words(
    admin: httpx.Client, slack: FakeSlack
) -> None:
    project_id = make_project(admin)
    integration = connect(admin, slack)
    admin.patch(
        f"/api/v1/integrations/{integration['id']}", json={"config": {"bot_token": "xoxb-revoked"}}
    ).raise_for_status()
    enqueue(admin, project_id)
    [delivery] = wait_for(
        lambda: [
            d
            for d in admin.get(f"/api/v1/integrations/{integration['id']}/deliveries").json()["deliveries"]
            if d["status"] == "failed"
        ]
    )
    assert len(delivery["attempts"]) == 1 and "invalid_auth" in delivery["last_error"]


def test_sla_alerts_are_posted_under_the_review_and_in_the_channel(
    admin: httpx.Client, slack: FakeSlack, database: Database, clock: Clock, settled: Callable[[], None]
) -> None:
    from casework.services import sla_sweep

    project_id = make_project(admin)
    admin.put(
        f"/api/v1/projects/{project_id}/sla",
        json={
            "target_hours": 1,
            "escalation_contact": "lead@bank.example",
            "queue_thresholds": {"pending_count": 1},
        },
    ).raise_for_status()
    connect(admin, slack, events=["review.created", "review.overdue", "queue.threshold_crossed"])
    review = enqueue(admin, project_id)
    message = posted(slack, review["id"])
    # The delivery's job finishes before time jumps: two hours on, a job still running looks like one whose
    # worker died (its lease ran out), and it would be posted again.
    settled()
    clock.advance(hours=2)
    with database.transaction() as session:
        sla_sweep.announce_overdue(session)
    with database.transaction() as session:
        sla_sweep.check_thresholds(session)
    overdue = wait_for(
        lambda: [
            m for m in slack.messages.values() if str(m.get("text", "")).startswith(":alarm_clock: Overdue")
        ]
    )
    assert overdue[0]["thread_ts"] == message["ts"] and "lead@bank.example" in overdue[0]["text"]
    crossed = wait_for(
        lambda: [m for m in slack.messages.values() if "Queue alert" in str(m.get("text", ""))]
    )
    assert "1 pending reviews (threshold 1)" in crossed[0]["text"] and crossed[0]["thread_ts"] is None


def test_a_review_due_soon_is_posted_under_its_message_with_the_time_left(
    admin: httpx.Client, slack: FakeSlack, database: Database, clock: Clock, settled: Callable[[], None]
) -> None:
    from casework.services import sla_sweep

    project_id = make_project(admin)
    admin.put(f"/api/v1/projects/{project_id}/sla", json={"target_hours": 2}).raise_for_status()
    connect(admin, slack, events=["review.created", "review.due_soon"])
    review = enqueue(admin, project_id, query="Is this fund guaranteed to grow?")
    message = posted(slack, review["id"])
    settled()
    clock.advance(minutes=100)  # past the warning point (75% of 2 hours): 20 minutes left
    with database.transaction() as session:
        assert sla_sweep.announce_due_soon(session) == 1
    (due_soon,) = wait_for(
        lambda: [m for m in slack.messages.values() if "Due soon" in str(m.get("text", ""))]
    )
    assert due_soon["thread_ts"] == message["ts"]
    assert due_soon["text"].startswith(":hourglass_flowing_sand: Due soon: policy-adherence review")
    assert "due in 19 min" in due_soon["text"] or "due in 20 min" in due_soon["text"]
    assert "Is this fund guaranteed to grow?" in due_soon["text"]
