"""Review targets as the UI writes them: a target under an hour in minutes (or seconds), never rounded to 0."""

from __future__ import annotations

import httpx
import pytest

from casework.db.engine import Database
from casework.web.common import target
from tests.support import Tenant, make_project
from tests.web.test_hardening import signed_in


def test_a_target_is_written_in_the_unit_that_keeps_it() -> None:
    assert [target(hours) for hours in (0.02, 0.5, 0.0001, 1, 1.5, 10, 0.25, 8760)] == [
        "1.2 min",
        "30 min",
        "0.36 s",
        "1 h",
        "1.5 h",
        "10 h",
        "15 min",
        "8760 h",
    ]


@pytest.mark.storage
def test_the_overview_and_the_queue_show_a_small_target_as_it_is(
    database: Database, tenant: Tenant, admin: httpx.Client
) -> None:
    project_id = make_project(admin, "fast-lane")
    admin.put(f"/api/v1/projects/{project_id}/sla", json={"target_hours": 0.02}).raise_for_status()
    with signed_in(database, tenant) as browser:
        overview = browser.get(f"/projects/{project_id}/overview").text
        queue = browser.get(f"/projects/{project_id}/queue").text
        settings = browser.get(f"/projects/{project_id}/settings").text
    assert "target 1.2 min," in overview and "0.0 h" not in overview
    assert "target 1.2 min</p>" in queue and "0.0 h" not in queue
    assert "Now 1.2 min." in settings
