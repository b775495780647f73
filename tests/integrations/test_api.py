"""The integrations API (admin): secrets are write-only, config is validated per kind, changes merge, only admins
of the workspace see them, and "send a test" reaches the tool."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from casework.db.engine import Database
from tests.fakes.slack import CHANNEL, SIGNING_SECRET, TOKEN, FakeSlack
from tests.integrations.conftest import register
from tests.support import Tenant, make_project, wait_for

pytestmark = pytest.mark.storage


@pytest.fixture
def slack_config(slack: FakeSlack) -> dict[str, Any]:
    return {
        "bot_token": TOKEN,
        "signing_secret": SIGNING_SECRET,
        "channel": CHANNEL,
        "api_base_url": f"{slack.base_url}/api/",
    }


def test_secrets_are_write_only_and_sealed_at_rest(
    admin: httpx.Client, slack_config: dict[str, Any], database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    project_id = make_project(admin)
    created = register(admin, "slack", slack_config, project_id=project_id)
    assert created["secrets_set"] == ["bot_token", "signing_secret"]
    assert created["config"] == {
        "channel": CHANNEL,
        "api_base_url": slack_config["api_base_url"],
        "digest": True,
        "allowed_reviewers": [],
    }
    assert created["events"] == ["review.created", "review.resolved", "review.reopened"]
    assert created["inbound_url"].endswith(f"/api/v1/integrations/{created['id']}/inbound")
    for shown in (
        created,
        admin.get(f"/api/v1/integrations/{created['id']}").json(),
        admin.get("/api/v1/integrations").json(),
    ):
        assert TOKEN not in json.dumps(shown) and SIGNING_SECRET not in json.dumps(shown)
    with database.transaction(write=False) as session:
        stored = session.execute(text("SELECT config, secrets FROM integrations")).one()
    assert TOKEN not in str(stored) and SIGNING_SECRET not in str(stored)
    assert TOKEN not in caplog.text and SIGNING_SECRET not in caplog.text

    # A change merges: the channel changes, the token stays (and still works).
    changed = admin.patch(f"/api/v1/integrations/{created['id']}", json={"config": {"channel": "C0OTHER"}})
    assert changed.status_code == 200 and changed.json()["config"]["channel"] == "C0OTHER"
    assert changed.json()["secrets_set"] == ["bot_token", "signing_secret"]


def test_config_is_checked_by_kind(admin: httpx.Client, slack_config: dict[str, Any]) -> None:
    for body, where in (
        ({"kind": "myspace", "config": {}}, "kind"),
        ({"kind": "slack", "config": {**slack_config, "bot_token": "not-a-token"}}, "config.bot_token"),
        ({"kind": "slack", "config": {**slack_config, "colour": "red"}}, "config.colour"),
        ({"kind": "slack", "config": slack_config, "events": ["control.created"]}, "events"),
        (
            {
                "kind": "jira",
                "config": {
                    "base_url": "https://x.atlassian.net",
                    "project_key": "C",
                    "webhook_secret": "s" * 16,
                },
            },
            "config",
        ),
    ):
        response = admin.post("/api/v1/integrations", json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error"), body
        assert where in json.dumps(response.json()["error"]), (where, response.json())
    refused = admin.post("/api/v1/integrations", json={"kind": "slack", "config": slack_config})
    assert refused.status_code == 201  # the same, valid, is accepted


def test_only_admins_of_the_workspace_manage_integrations(
    tenant: Tenant, other_tenant: Tenant, admin: httpx.Client, slack_config: dict[str, Any]
) -> None:
    created = register(admin, "slack", slack_config)
    with tenant.client("reviewer") as reviewer:
        refused = reviewer.post("/api/v1/integrations", json={"kind": "slack", "config": slack_config})
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "permission_denied")
        assert reviewer.get("/api/v1/integrations").status_code == 403
    with other_tenant.client() as intruder:
        found = intruder.get(f"/api/v1/integrations/{created['id']}")
        assert (found.status_code, found.json()["error"]["code"]) == (404, "integration_not_found")
        assert intruder.get("/api/v1/integrations").json() == {"integrations": []}
    assert admin.delete(f"/api/v1/integrations/{created['id']}").status_code == 204
    assert admin.get(f"/api/v1/integrations/{created['id']}").status_code == 404


def test_send_a_test_reaches_the_tool_and_a_disabled_integration_sends_nothing(
    admin: httpx.Client, slack_config: dict[str, Any], slack: FakeSlack
) -> None:
    created = register(admin, "slack", slack_config)
    test = admin.post(f"/api/v1/integrations/{created['id']}/test")
    assert test.status_code == 202 and test.json()["action"] == "test"
    wait_for(lambda: any("A test message from Casework" in str(m["text"]) for m in slack.messages.values()))
    [delivery] = wait_for(
        lambda: [
            d
            for d in admin.get(f"/api/v1/integrations/{created['id']}/deliveries").json()["deliveries"]
            if d["status"] == "succeeded"
        ]
    )
    assert delivery["attempts"][0]["status_code"] == 200

    admin.patch(f"/api/v1/integrations/{created['id']}", json={"enabled": False}).raise_for_status()
    project_id = make_project(admin)
    admin.post(
        "/api/v1/hitl/reviews",
        json={
            "project_id": project_id,
            "evaluator_type": "e",
            "query": "q",
            "response": "r",
            "options": ["a", "b"],
        },
    ).raise_for_status()
    inbound = httpx.post(
        f"{admin.base_url}/api/v1/integrations/{created['id']}/inbound", content=b"payload=%7B%7D"
    )
    assert inbound.json()["error"]["code"] == "integration_not_found"
    assert len(slack.messages) == 1


def test_integration_changes_are_in_the_audit_trail_without_secrets(
    admin: httpx.Client, slack_config: dict[str, Any]
) -> None:
    project_id = make_project(admin)
    wide = register(admin, "slack", slack_config)
    own = register(admin, "slack", slack_config, project_id=project_id)
    changed = admin.patch(
        f"/api/v1/integrations/{wide['id']}",
        json={"config": {"channel": "C0OTHER", "bot_token": "xoxb-new-1"}},
    )
    assert changed.status_code == 200, changed.text
    assert admin.delete(f"/api/v1/integrations/{wide['id']}").status_code == 204

    workspace = admin.get("/api/v1/audit")
    events = workspace.json()["events"]
    assert [(e["action"], e["object_id"]) for e in events] == [
        ("integration.deleted", wide["id"]),
        ("integration.updated", wide["id"]),
        ("integration.created", wide["id"]),
    ]
    assert (events[1]["before"]["config"]["channel"], events[1]["after"]["config"]["channel"]) == (
        CHANNEL,
        "C0OTHER",
    )
    assert events[1]["after"]["secrets_set"] == ["bot_token", "signing_secret"]
    project = admin.get("/api/v1/audit", params={"project_id": project_id}).json()["events"]
    assert [(e["action"], e["object_id"]) for e in project] == [("integration.created", own["id"])]
    for shown in (workspace.text, json.dumps(project)):
        assert TOKEN not in shown and SIGNING_SECRET not in shown and "xoxb-new-1" not in shown
