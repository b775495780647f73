"""Several reviewers per case in the web UI: blind until you decide, a lead adjudicates, "Assigned to me"."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from casework.db.engine import Database
from casework.services.web_auth import create_login_link_token
from tests.api.test_calibration import decision, overlapped_project
from tests.support import Tenant, enqueue

pytestmark = pytest.mark.storage


def signed_in(database: Database, tenant: Tenant, role: str) -> httpx.Client:
    with database.transaction() as session:
        token = create_login_link_token(session, key_label=f"{role}@{tenant.name}")
    client = httpx.Client(base_url=tenant.base_url, headers={"accept": "text/html"}, timeout=30)
    assert client.get("/login", params={"token": token}).status_code == 303
    return client


@pytest.fixture
def reviewer_browser(database: Database, tenant: Tenant) -> Iterator[httpx.Client]:
    client = signed_in(database, tenant, "reviewer")
    yield client
    client.close()


@pytest.fixture
def lead_browser(database: Database, tenant: Tenant) -> Iterator[httpx.Client]:
    client = signed_in(database, tenant, "admin")
    yield client
    client.close()


def decide(browser: httpx.Client, review_id: str, classification: str, reasoning: str) -> httpx.Response:
    page = browser.get(f"/reviews/{review_id}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    return browser.post(
        f"/reviews/{review_id}/decide",
        data={"classification": classification, "reasoning": reasoning, "csrf": csrf.group(1)},
    )


def test_the_page_is_blind_until_you_decide_and_a_lead_adjudicates(
    reviewer_browser: httpx.Client, lead_browser: httpx.Client, admin: httpx.Client, tenant: Tenant
) -> None:
    project_id = overlapped_project(admin, reviewers=2)
    review = enqueue(admin, project_id)
    secret = "Private reasoning of the first reviewer about the credit limit."
    admin.post(
        f"/api/v1/hitl/reviews/{review['id']}/feedback", json=decision("ana", "compliant", secret)
    ).raise_for_status()
    before = reviewer_browser.get(f"/reviews/{review['id']}")
    assert "data-blind" in before.text and secret not in before.text
    assert "1 of 2" in before.text
    decided = decide(reviewer_browser, review["id"], "non_compliant", "Never promise a limit increase.")
    assert decided.status_code == 303, decided.text[:300]
    after = reviewer_browser.get(f"/reviews/{review['id']}")
    assert "needs_adjudication" in after.text
    assert secret in after.text and "data-awaiting-lead" in after.text
    assert "data-decision" not in after.text
    lead = lead_browser.get(f"/reviews/{review['id']}")
    assert "data-decision" in lead.text and "adjudication" in lead.text
    ruled = decide(lead_browser, review["id"], "non_compliant", "Policy 4.2 settles it.")
    assert ruled.status_code == 303, ruled.text[:300]
    final = admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()
    assert final["status"] == "resolved"
    assert final["resolution"]["reasoning"] == "Policy 4.2 settles it."


def test_assigned_to_me_filter_and_next_review_respect_assignment(
    reviewer_browser: httpx.Client, admin: httpx.Client, tenant: Tenant
) -> None:
    project_id = overlapped_project(admin, reviewers=1)
    someone_elses, mine, current = (
        enqueue(admin, project_id, span_id=f"n{i}", priority=9 - i) for i in range(3)
    )
    admin.patch(f"/api/v1/hitl/reviews/{someone_elses['id']}", json={"assignee": "dora"}).raise_for_status()
    admin.patch(
        f"/api/v1/hitl/reviews/{mine['id']}", json={"assignee": f"reviewer@{tenant.name}"}
    ).raise_for_status()
    queue = reviewer_browser.get(f"/projects/{project_id}/queue", params={"assigned": "me"})
    assert queue.status_code == 200
    assert f"/reviews/{mine['id']}" in queue.text
    assert f"/reviews/{someone_elses['id']}" not in queue.text
    decided = decide(reviewer_browser, current["id"], "compliant", "Fine.")
    assert decided.status_code == 303
    assert decided.headers["location"] == f"/reviews/{mine['id']}"
