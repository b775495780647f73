"""Webhooks end to end: a real receiver over HTTP verifies every message with the standardwebhooks library.

The test server retries quickly (CASEWORK_WEBHOOK_RETRY_SCHEDULE 0.2,0.4,0.6: four attempts), times out after
1 s, and disables an endpoint after 2 deliveries in a row fail every retry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from casework.services.webhooks import address_allowed, check_url
from tests.support import Tenant, enqueue, make_project, wait_for
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.storage


def register(
    client: httpx.Client, receiver: WebhookReceiver, events: list[str] | None = None, **fields: Any
) -> dict[str, Any]:
    response = client.post(
        "/api/v1/webhooks",
        json={"url": f"{receiver.base_url}/hooks/casework", "events": events or ["*"], **fields},
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    receiver.secret = created["secret"]
    return created


def decide(client: httpx.Client, review_id: str) -> None:
    response = client.post(
        f"/api/v1/hitl/reviews/{review_id}/feedback",
        json={
            "classification": "non_compliant",
            "reasoning": "No guarantees.",
            "reviewer": "ana@bank.example",
        },
    )
    assert response.status_code == 201, response.text


def deliveries(client: httpx.Client, webhook_id: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/webhooks/{webhook_id}/deliveries", params=params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["deliveries"]
    return found


def test_events_arrive_signed_as_standard_webhooks_say(
    admin: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    project_id = make_project(admin)
    hook = register(admin, webhook_receiver, ["review.created", "review.resolved"], project_id=project_id)
    assert hook["secret"].startswith("whsec_") and hook["enabled"] is True
    assert "secret" not in admin.get(f"/api/v1/webhooks/{hook['id']}").json()

    review = enqueue(admin, project_id)
    decide(admin, review["id"])
    got = wait_for(lambda: len(webhook_receiver.verified()) == 2 and webhook_receiver.verified())

    assert [r.payload["type"] for r in got] == ["review.created", "review.resolved"]
    assert all(r.path == "/hooks/casework" for r in got)
    first = got[0]
    assert set(first.payload) == {"type", "timestamp", "data"}
    assert first.payload["data"]["id"] == review["id"]
    assert first.headers["webhook-id"].startswith("evt_")
    assert first.headers["webhook-signature"].startswith("v1,")
    # The same check any consumer makes, with the reference library: tampering fails it.
    assert Webhook(hook["secret"]).verify(first.body, first.headers)["type"] == "review.created"
    with pytest.raises(WebhookVerificationError):
        Webhook(hook["secret"]).verify(first.body.replace(b"pending", b"resolved"), first.headers)

    # Every attempt is recorded, with status, latency and the start of the reply.
    [resolved, created] = deliveries(admin, hook["id"])
    assert (created["status"], created["event_type"], len(created["attempts"])) == (
        "succeeded",
        "review.created",
        1,
    )
    assert created["attempts"][0]["status_code"] == 200
    assert created["attempts"][0]["response_excerpt"] == "answered 200"
    assert resolved["event_id"] == got[1].id


def test_filters_by_type_and_project(admin: httpx.Client, webhook_receiver: WebhookReceiver) -> None:
    project_id = make_project(admin)
    other_project = make_project(admin, "other")
    register(admin, webhook_receiver, ["control.created"], project_id=project_id)
    decide(admin, enqueue(admin, other_project)["id"])  # another project: not sent
    decide(admin, enqueue(admin, project_id)["id"])
    got = wait_for(webhook_receiver.verified)
    assert [r.payload["type"] for r in got] == ["control.created"]
    assert got[0].payload["data"]["project_id"] == project_id


def test_a_failing_receiver_gets_retries_until_it_answers(
    admin: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    project_id = make_project(admin)
    hook = register(admin, webhook_receiver, ["review.created"])
    webhook_receiver.plan = [500, "slow", 200]  # an error, then a timeout (1 s here), then success
    webhook_receiver.slow_seconds = 3
    enqueue(admin, project_id)
    wait_for(lambda: [r.answered for r in webhook_receiver.received] == [500, "slow", 200], timeout=30)
    ids = {r.id for r in webhook_receiver.received}
    assert len(ids) == 1  # every attempt is the same message
    [delivery] = wait_for(lambda: [d for d in deliveries(admin, hook["id"]) if d["status"] == "succeeded"])
    assert [a["status_code"] for a in delivery["attempts"]] == [500, None, 200]
    assert "in time" in delivery["attempts"][1]["error"]


def test_events_about_one_review_arrive_in_order_even_when_one_is_retried(
    admin: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    project_id = make_project(admin)
    register(admin, webhook_receiver, ["review.created", "review.resolved"])
    webhook_receiver.plan = [503, 503]
    review = enqueue(admin, project_id)
    decide(admin, review["id"])
    got = wait_for(lambda: len(webhook_receiver.verified()) == 4 and webhook_receiver.verified(), timeout=30)
    assert [(r.payload["type"], r.answered) for r in got] == [
        ("review.created", 503),
        ("review.created", 503),
        ("review.created", 200),
        ("review.resolved", 200),
    ]


def test_410_disables_the_endpoint_and_an_event_says_so(
    admin: httpx.Client, webhook_receiver: WebhookReceiver, settled: Callable[[], None]
) -> None:
    project_id = make_project(admin)
    watcher = register(admin, webhook_receiver, ["webhook.disabled"])
    secret = watcher["secret"]
    gone = admin.post(
        "/api/v1/webhooks", json={"url": f"{webhook_receiver.base_url}/gone", "events": ["review.created"]}
    ).json()
    webhook_receiver.plan = [410]
    enqueue(admin, project_id)
    wait_for(lambda: admin.get(f"/api/v1/webhooks/{gone['id']}").json()["enabled"] is False)
    assert "410" in admin.get(f"/api/v1/webhooks/{gone['id']}").json()["disabled_reason"]
    webhook_receiver.secret = secret
    notice = wait_for(lambda: [r for r in webhook_receiver.verified() if r.path == "/hooks/casework"])
    assert notice[0].payload["type"] == "webhook.disabled"
    assert notice[0].payload["data"]["id"] == gone["id"]

    # Disabled: new events are not sent to it; enabled again, they are.
    enqueue(admin, project_id, span_id="later")
    settled()
    assert len([r for r in webhook_receiver.received if r.path == "/gone"]) == 1
    enabled = admin.patch(f"/api/v1/webhooks/{gone['id']}", json={"enabled": True}).json()
    assert (enabled["enabled"], enabled["disabled_reason"], enabled["failed_in_a_row"]) == (True, None, 0)


def test_deliveries_that_fail_every_retry_disable_the_endpoint(
    admin: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    project_id = make_project(admin)
    hook = register(admin, webhook_receiver, ["review.created"])
    webhook_receiver.plan = [500] * 8  # two deliveries, four attempts each
    enqueue(admin, project_id, span_id="a")
    enqueue(admin, project_id, span_id="b")
    disabled = wait_for(
        lambda: (found := admin.get(f"/api/v1/webhooks/{hook['id']}").json())["enabled"] is False and found,
        timeout=30,
    )
    assert disabled["failed_in_a_row"] == 2 and "every retry" in disabled["disabled_reason"]
    failed = deliveries(admin, hook["id"], status="failed")
    assert len(failed) == 2 and all(len(d["attempts"]) == 4 for d in failed)


def test_redelivery_sends_the_same_message_again(
    admin: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    project_id = make_project(admin)
    hook = register(admin, webhook_receiver, ["review.created"])
    enqueue(admin, project_id)
    [first] = wait_for(webhook_receiver.verified)
    [delivery] = wait_for(lambda: [d for d in deliveries(admin, hook["id"]) if d["status"] == "succeeded"])
    again = admin.post(f"/api/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}/redeliver")
    assert again.status_code == 202, again.text
    second = wait_for(lambda: len(webhook_receiver.verified()) == 2 and webhook_receiver.verified()[1])
    assert (second.id, second.body) == (first.id, first.body)
    assert wait_for(lambda: len(deliveries(admin, hook["id"])[0]["attempts"]) == 2)


def test_a_rotated_secret_signs_beside_the_old_one_for_a_day(
    admin: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    hook = register(admin, webhook_receiver, ["webhook.test"])
    old = hook["secret"]
    new = admin.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret").json()["secret"]
    assert new != old and new.startswith("whsec_")
    assert admin.post(f"/api/v1/webhooks/{hook['id']}/test").status_code == 202
    [message] = wait_for(lambda: webhook_receiver.received)
    assert len(message.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):  # receivers with either secret accept it
        assert Webhook(secret).verify(message.body, message.headers)["type"] == "webhook.test"


def test_only_admins_manage_webhooks_and_only_their_own(
    tenant: Tenant, other_tenant: Tenant, admin: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    hook = register(admin, webhook_receiver)
    with tenant.client("reviewer") as reviewer:
        refused = reviewer.post("/api/v1/webhooks", json={"url": "https://example.com/x", "events": ["*"]})
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "permission_denied")
        assert reviewer.get("/api/v1/webhooks").status_code == 403
    with other_tenant.client() as intruder:
        assert intruder.get(f"/api/v1/webhooks/{hook['id']}").json()["error"]["code"] == "webhook_not_found"
        assert intruder.get("/api/v1/webhooks").json() == {"webhooks": []}
    for body in (
        {"url": "ftp://example.com", "events": ["*"]},
        {"url": "https://example.com/x", "events": ["review.exploded"]},
        {"url": "https://user:pw@example.com/x", "events": ["*"]},
        {"url": "https://example.com/x", "events": []},
    ):
        response = admin.post("/api/v1/webhooks", json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error"), body
    assert admin.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 204
    assert admin.get(f"/api/v1/webhooks/{hook['id']}").status_code == 404


def test_private_and_loopback_addresses_are_refused_unless_allowed() -> None:
    for url in (
        "http://127.0.0.1:9/x",
        "http://localhost/x",
        "http://10.0.0.8/x",
        "http://169.254.169.254/x",
        "http://[::1]/x",
        "http://192.168.1.1/x",
    ):
        with pytest.raises(Exception, match="private, loopback or link-local"):
            check_url(url, allow_private=False)
        assert check_url(url, allow_private=True) == url
    assert check_url(
        "https://hooks.example.com/casework", allow_private=False
    )  # a name: checked when sending
    assert address_allowed("93.184.216.34", allow_private=False)
    assert not address_allowed("0.0.0.0", allow_private=True)


def test_endpoint_changes_are_in_the_audit_trail_without_the_secret(
    admin: httpx.Client, tenant: Tenant, webhook_receiver: WebhookReceiver
) -> None:
    project_id = make_project(admin)
    wide = register(admin, webhook_receiver, ["review.created"])
    own = register(admin, webhook_receiver, ["review.created"], project_id=project_id)
    assert admin.patch(f"/api/v1/webhooks/{wide['id']}", json={"enabled": False}).status_code == 200
    rotated = admin.post(f"/api/v1/webhooks/{wide['id']}/rotate-secret").json()["secret"]
    assert admin.delete(f"/api/v1/webhooks/{wide['id']}").status_code == 204
    assert admin.delete(f"/api/v1/webhooks/{own['id']}").status_code == 204

    workspace = admin.get("/api/v1/audit")
    assert [(e["action"], e["object_id"]) for e in workspace.json()["events"]] == [
        ("webhook.deleted", wide["id"]),
        ("webhook.secret_rotated", wide["id"]),
        ("webhook.updated", wide["id"]),
        ("webhook.created", wide["id"]),
    ]
    updated = workspace.json()["events"][2]
    assert (updated["before"]["enabled"], updated["after"]["enabled"]) == (True, False)
    assert updated["actor"].startswith("admin@")
    project = admin.get("/api/v1/audit", params={"project_id": project_id})
    assert [e["action"] for e in project.json()["events"]] == ["webhook.deleted", "webhook.created"]
    for text in (workspace.text, project.text):
        assert all(s not in text for s in (wide["secret"], own["secret"], rotated, "whsec_"))

    # Endpoint URLs can carry a receiver's token: only admin keys read these events, in the feed or the trail.
    def fed() -> set[str]:  # the feed lists events once the log has given them their place
        return {e["type"] for e in admin.get("/api/v1/events", params={"limit": 1000}).json()["events"]}

    wait_for(lambda: {"webhook.created", "webhook.deleted"} <= fed())
    for role in ("reviewer", "viewer"):
        with tenant.client(role) as other:
            feed = other.get("/api/v1/events", params={"limit": 1000})
            assert feed.status_code == 200 and not any(
                e["type"].startswith("webhook.") for e in feed.json()["events"]
            )
            trail = other.get("/api/v1/audit", params={"project_id": project_id})
            assert trail.status_code == 200 and trail.json()["events"] == []
            assert webhook_receiver.base_url not in feed.text + trail.text
