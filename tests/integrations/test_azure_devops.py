"""Azure DevOps Boards against a fake over real HTTP: work items created with a JSON Patch document, decisions
from comments and state changes (service hooks with Basic authentication), Casework's decisions written back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from casework.db.engine import Database
from tests.fakes.azure_devops import (
    HOOK_SECRET,
    ORGANIZATION,
    PAT,
    PROJECT,
    FakeAzureDevOps,
    commented,
    updated,
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


def connect(admin: httpx.Client, azure_devops: FakeAzureDevOps) -> dict[str, Any]:
    return register(
        admin,
        "azure_devops",
        {
            "organization_url": f"{azure_devops.base_url}/{ORGANIZATION}",
            "project": PROJECT,
            "personal_access_token": PAT,
            "hook_secret": HOOK_SECRET,
            "state_map": {"Compliant": "compliant"},
        },
    )


def item_of(azure_devops: FakeAzureDevOps, review_id: str, database: Database) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(lambda: azure_devops.item_for(review_id), message="no work item")
    wait_linked(database, review_id)
    return found


def test_a_review_becomes_a_work_item_and_a_comment_decides_it(
    admin: httpx.Client, azure_devops: FakeAzureDevOps, base_url: str, database: Database
) -> None:
    project_id = make_project(admin)
    integration = connect(admin, azure_devops)
    review = enqueue(admin, project_id, query="Can I get a <b>higher</b> limit?")
    item = item_of(azure_devops, review["id"], database)
    assert item["System.Title"].startswith("Review needed: policy-adherence")
    assert "Can I get a &lt;b&gt;higher&lt;/b&gt; limit?" in item["System.Description"]  # escaped HTML
    assert item["System.Tags"].startswith("casework; policy-adherence; casework-")

    note = "<div>classification: non_compliant</div><div>reasoning: The agent implied approval &amp; a promise.</div>"
    answer = azure_devops.send(inbound_url(base_url, integration), commented(item["id"], note))
    assert answer.json() == {"status": "accepted", "message": "Decided: non_compliant (by ana@bank.example)."}
    resolution = admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()["resolution"]
    assert resolution["reasoning"] == "The agent implied approval & a promise."
    wait_for(lambda: azure_devops.items[item["id"]]["System.State"] == "Done")
    assert "Decided by ana@bank.example: non_compliant" in azure_devops.items[item["id"]]["comments"][0]


def test_a_mapped_state_decides_and_bad_credentials_are_refused(
    admin: httpx.Client,
    azure_devops: FakeAzureDevOps,
    base_url: str,
    database: Database,
    settled: Callable[[], None],
) -> None:
    project_id = make_project(admin)
    integration = connect(admin, azure_devops)
    review = enqueue(admin, project_id)
    item = item_of(azure_devops, review["id"], database)
    url = inbound_url(base_url, integration)
    event = updated(item["id"], "Compliant", "<p>Polite, no promise made.</p>")
    settled()
    before = table_counts(database)
    refused = azure_devops.send(url, event, password="not-the-hook-secret")
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "unauthenticated")
    assert table_counts(database) == before

    not_a_decision = azure_devops.send(url, updated(item["id"], "Doing", "")).json()
    assert not_a_decision == {"status": "noted", "message": f"{item['id']} is open."}
    assert azure_devops.send(url, event).json()["status"] == "accepted"
    stored = admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()["resolution"]
    assert (stored["classification"], stored["reasoning"]) == ("compliant", "Polite, no promise made.")
    late = azure_devops.send(
        url, commented(item["id"], "<div>classification: non_compliant</div><div>reasoning: no</div>")
    )
    assert late.json()["status"] == "already_decided"
    wait_for(
        lambda: any(
            "Already decided by ana@bank.example" in c for c in azure_devops.items[item["id"]]["comments"]
        )
    )


def test_a_review_waits_on_its_work_item_only_while_the_work_item_is_open(
    admin: httpx.Client, azure_devops: FakeAzureDevOps, base_url: str, database: Database
) -> None:
    project_id = make_project(admin)
    pause_when_waiting(admin, project_id)
    integration = connect(admin, azure_devops)
    review = enqueue(admin, project_id)
    item = item_of(azure_devops, review["id"], database)
    url = inbound_url(base_url, integration)
    assert paused_after_sweep(admin, database, review["id"])
    removed = azure_devops.send(url, updated(item["id"], "Removed", ""))  # closed, and no decision
    assert removed.json() == {"status": "noted", "message": f"{item['id']} is closed."}
    assert not paused_after_sweep(admin, database, review["id"])
    azure_devops.send(url, updated(item["id"], "Doing", ""))  # back on the board: waiting again
    assert paused_after_sweep(admin, database, review["id"])
    deleted = azure_devops.send(url, {"eventType": "workitem.deleted", "resource": {"id": item["id"]}})
    assert deleted.json()["status"] == "noted"
    assert not paused_after_sweep(admin, database, review["id"])
    assert admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()["status"] == "pending"
