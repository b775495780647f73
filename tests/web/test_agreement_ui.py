"""The overview's agreement chart: reviewers' alpha and the judge's kappa per week, with intervals and n."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest
from playwright.sync_api import Page, expect

from casework.db.engine import Database
from tests.api.test_agreement import _judged_rows, _two_decisions
from tests.api.test_calibration import overlapped_project
from tests.support import Tenant, make_project
from tests.web.browser import login_link, shot

pytestmark = pytest.mark.storage


def test_the_overview_charts_agreement_over_time(
    page: Page, database: Database, tenant: Tenant, admin: httpx.Client, backend: str
) -> None:
    project_id = overlapped_project(admin, reviewers=2)
    c, n = "compliant", "non_compliant"
    monday = datetime.now(timezone.utc) - timedelta(days=21)
    monday -= timedelta(days=monday.weekday())
    for week, rows in enumerate(
        [
            [(c, n, n), (n, None, n), (c, c, n), (n, c, c), (c, None, n)],
            [(n, c, c), (n, n, n), (c, None, c), (c, n, n), (n, None, c)],
            [(n, c, c), (n, None, n), (c, None, c), (c, n, n), (n, n, n)],
        ]
    ):
        _judged_rows(database, project_id, monday + timedelta(days=7 * week), rows)
    _two_decisions(tenant, admin, project_id, [(c, c), (n, n), (c, n), (n, n)])
    page.goto(login_link(database, tenant))
    page.goto(f"/projects/{project_id}/overview")
    chart = page.locator("svg[data-agreement-chart]")
    expect(chart).to_be_visible()
    # Three weeks of the judge (first verdict, with memory) and this week's overlapped reviews.
    expect(chart.locator("[data-series=first] circle")).to_have_count(3)
    expect(chart.locator("[data-series=memory] circle")).to_have_count(3)
    expect(chart.locator("[data-series=alpha] circle")).to_have_count(1)
    expect(chart.locator("[data-series=first] polygon.band")).to_have_count(1)
    titles = chart.locator("[data-series=first] circle title").all_text_contents()
    assert "n = 5" in titles[0] and "controls by then" in titles[0] and "95%" in titles[0]
    assert "n = 4 reviews" in chart.locator("[data-series=alpha] circle title").text_content() or ""
    expect(page.locator("[data-agreement-legend]")).to_contain_text("Krippendorff's alpha")
    expect(page.locator("[data-agreement-table] tbody tr")).to_have_count(4)
    shot(page, "overview-agreement", backend)

    empty = make_project(admin, name="fresh")
    page.goto(f"/projects/{empty}/overview")
    expect(page.locator("[data-agreement-empty]")).to_be_visible()
    expect(page.locator("svg[data-agreement-chart]")).to_have_count(0)
