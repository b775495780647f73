"""The SLA in the reviewer UI, in a real headless Chromium: the queue sorted by due time with the time left,
the overview's SLA state and overdue list, the projects page's overdue counts."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from casework.db.engine import Database
from tests.support import Clock, Tenant, enqueue, make_project
from tests.web.browser import login_link, shot

pytestmark = pytest.mark.storage


def test_the_queue_sorts_by_due_time_and_the_overview_lists_what_is_overdue(
    page: Page, database: Database, tenant: Tenant, admin: httpx.Client, clock: Clock, backend: str
) -> None:
    project_id = make_project(admin, "sla-ui")
    admin.put(
        f"/api/v1/projects/{project_id}/sla",
        json={"target_hours": 10, "evaluators": {"fast": {"target_hours": 1}}},
    ).raise_for_status()
    slow = enqueue(admin, project_id, query="Can I close my account today?", priority=5)
    fast = enqueue(admin, project_id, evaluator_type="fast", query="Is this fund guaranteed?", span_id="f")
    clock.advance(hours=2)
    page.goto(login_link(database, tenant))

    page.goto(f"/projects/{project_id}/queue")
    rows = page.locator("tbody tr")
    expect(rows.first).to_contain_text("close my account")  # priority first
    page.get_by_label("Order").select_option("due")
    page.get_by_role("button", name="Filter").click()
    expect(rows.first).to_contain_text("guaranteed")
    expect(rows.first.locator("[data-due]")).to_have_text("overdue 1.0 h")
    expect(rows.nth(1).locator("[data-due]")).to_have_text("8.0 h left")
    expect(page.locator(".health [data-overdue]")).to_have_text("1")
    page.get_by_label("Overdue only").check()
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    shot(page, "queue-by-due-time", backend)

    page.goto(f"/projects/{project_id}/overview")
    expect(page.locator("[data-overdue-count]")).to_have_text("1")
    expect(page.locator("[data-overdue-list] tbody tr")).to_have_count(1)
    expect(page.locator("[data-overdue-list]")).to_contain_text("guaranteed")
    shot(page, "overview-sla", backend)
    page.locator("[data-overdue-list] a").click()
    expect(page).to_have_url(f"/reviews/{fast['id']}")

    page.goto("/")
    expect(page.locator("tr", has_text="sla-ui").locator("[data-overdue]")).to_have_text("1")
    assert slow["id"]
