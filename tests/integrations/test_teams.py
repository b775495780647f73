"""Microsoft Teams against a fake incoming webhook over real HTTP: Adaptive Cards with a link back, and no
inbound decisions (those need a bot registration)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from casework.db.engine import Database
from casework.services.integration_deliveries import queue_digests
from tests.fakes.teams import KEY, FakeTeams
from tests.integrations.conftest import inbound_url, register
from tests.support import Clock, enqueue, make_project, wait_for

pytestmark = pytest.mark.storage


def connect(admin: httpx.Client, teams: FakeTeams, path: str = KEY) -> dict[str, Any]:
    return register(admin, "teams", {"webhook_url": f"{teams.base_url}/{path}"})


def test_reviews_decisions_and_digests_arrive_as_adaptive_cards(
    admin: httpx.Client, teams: FakeTeams, base_url: str, database: Database, settled: Callable[[], None]
) -> None:
    project_id = make_project(admin)
    integration = connect(admin, teams)
    assert "webhook_url" not in integration["config"] and integration["secrets_set"] == ["webhook_url"]
    review = enqueue(admin, project_id)
    [card] = wait_for(lambda: teams.cards)
    text = json.dumps(card)
    assert review["query"] in text and "ambiguous (confidence 0.42)" in text
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open in Casework", "url": card["actions"][0]["url"]}
    ]
    assert card["actions"][0]["url"].endswith(f"/reviews/{review['id']}")

    admin.post(
        f"/api/v1/hitl/reviews/{review['id']}/feedback",
        json={"classification": "compliant", "reasoning": "Polite.", "reviewer": "carla@bank.example"},
    ).raise_for_status()
    wait_for(lambda: len(teams.cards) == 2)
    assert "Decided by carla@bank.example: compliant" in json.dumps(teams.cards[1])

    enqueue(admin, project_id, span_id="another")  # a digest is posted when something is waiting
    wait_for(lambda: len(teams.cards) == 3)
    with database.transaction() as session:
        queue_digests(session, tick=2_000_000.0)
    settled()
    assert "today's review queue" in json.dumps(teams.cards[-1])

    refused = httpx.post(inbound_url(base_url, integration), json={"type": "message"})
    assert refused.status_code == 400 and "bot registration" in refused.json()["error"]["message"]


def test_a_removed_webhook_fails_the_delivery_with_what_teams_said(
    admin: httpx.Client, teams: FakeTeams
) -> None:
    project_id = make_project(admin)
    integration = connect(admin, teams, path="webhookb2/removed")
    enqueue(admin, project_id)
    [delivery] = wait_for(
        lambda: [
            d
            for d in admin.get(f"/api/v1/integrations/{integration['id']}/deliveries").json()["deliveries"]
            if d["status"] == "failed"
        ]
    )
    assert (
        delivery["attempts"][0]["status_code"] == 404
        and "does not exist" in delivery["attempts"][0]["response_excerpt"]
    )


def test_a_review_due_soon_is_a_card_with_the_time_left_and_a_link_to_it(
    admin: httpx.Client, teams: FakeTeams, database: Database, clock: Clock, settled: Callable[[], None]
) -> None:
    from casework.services import sla_sweep

    project_id = make_project(admin)
    admin.put(f"/api/v1/projects/{project_id}/sla", json={"target_hours": 2}).raise_for_status()
    integration = register(
        admin, "teams", {"webhook_url": f"{teams.base_url}/{KEY}"}, events=["review.due_soon"]
    )
    assert integration["events"] == ["review.due_soon"]
    review = enqueue(admin, project_id, query="Is this fund guaranteed to grow?")
    settled()
    clock.advance(minutes=100)
    with database.transaction() as session:
        assert sla_sweep.announce_due_soon(session) == 1
    [card] = wait_for(lambda: teams.cards)
    text = json.dumps(card)
    assert "Due soon: policy-adherence review due in" in text and "guaranteed to grow" in text
    assert card["actions"][0]["url"].endswith(f"/reviews/{review['id']}")
