"""The stored agreement reports: served with how stale they are, refreshed in the background after new
decisions, equal to a fresh computation, and never replaced by an older one."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from casework.db.engine import Database
from casework.db.models import Job
from casework.services import agreement_days, agreement_reports
from casework.services.agreement_reports import Scope
from tests.api.test_calibration import decision, overlapped_project
from tests.support import Clock, Tenant, enqueue

FRESHNESS = ("as_of", "stale", "events_since")


def _decide(tenant: Tenant, admin: httpx.Client, project_id: str, votes: list[tuple[str, str]]) -> None:
    with tenant.client("reviewer") as reviewer:
        for first, second in votes:
            review = enqueue(admin, project_id, span_id=f"s-{uuid.uuid4().hex[:8]}")
            for name, choice in (("ana", first), ("ben", second)):
                reviewer.post(
                    f"/api/v1/hitl/reviews/{review['id']}/feedback", json=decision(name, choice)
                ).raise_for_status()


def _figures(answer: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in answer.items() if key not in FRESHNESS}


def at_window_start(clock: Clock) -> None:
    """Move the clock just past the start of a refresh window, so the window's end is ~15 s of real time
    away: a refresh queued now stays waiting until the test moves the clock on."""
    now = clock.now().timestamp()
    window = agreement_reports.REFRESH_SECONDS
    clock.advance(seconds=window - now % window + 0.05)


def _refreshes(database: Database, project_id: str) -> int:
    with database.transaction(write=False) as session:
        return int(
            session.execute(
                select(func.count()).where(
                    Job.project_id == project_id, Job.kind == agreement_reports.REFRESH
                )
            ).scalar_one()
        )


def _fresh(database: Database, project_id: str, scope: Scope) -> dict[str, Any]:
    """What the report is computed as from the data now, as JSON reads it."""
    with database.transaction(write=False) as session:
        report = agreement_reports.compute(session, project_id, scope).report
    return dict(json.loads(json.dumps(report)))


@pytest.mark.storage
def test_the_stored_report_is_refreshed_after_new_decisions(
    tenant: Tenant, admin: httpx.Client, database: Database, clock: Clock, settled: Callable[[], None]
) -> None:
    project_id = overlapped_project(admin, reviewers=2)
    c, n = "compliant", "non_compliant"
    _decide(tenant, admin, project_id, [(c, c), (n, n)])
    settled()
    # Nobody asked for a report yet, but people decided: a refresh is queued to count the days' tallies, so that
    # a lead's first question is answered from them.
    assert _refreshes(database, project_id) >= 1
    report_path = f"/api/v1/projects/{project_id}/agreement"
    trend_path = f"/api/v1/projects/{project_id}/agreement/trend"
    first = admin.get(report_path).json()  # the first time: computed on request, then stored
    assert first["stale"] is False and first["events_since"] == 0
    assert first["inter_reviewer"]["items"] == 2
    assert _figures(first) == _fresh(database, project_id, Scope("report"))
    first_trend = admin.get(trend_path).json()
    assert _figures(first_trend) == _fresh(database, project_id, Scope("trend"))
    # Asked again with nothing changed: the stored report, as of the same time.
    assert admin.get(report_path).json() == first

    at_window_start(clock)
    settled()  # a refresh the earlier events queued (their dispatch may follow the first request) runs now
    _decide(tenant, admin, project_id, [(c, n)])
    settled()
    stale = admin.get(report_path).json()
    assert stale["stale"] is True and stale["events_since"] >= 3  # a review queued, two decisions
    assert stale["as_of"] == first["as_of"] and _figures(stale) == _figures(first)
    assert admin.get(trend_path).json()["stale"] is True

    assert _refreshes(database, project_id) >= 1  # one per window the burst of events fell in
    clock.advance(seconds=agreement_reports.REFRESH_SECONDS + 1)  # the debounce window ends
    settled()
    with database.transaction(write=False) as session:
        assert not agreement_days.needs_refresh(
            session, project_id
        )  # the refresh counted the changed day first
    refreshed = admin.get(report_path).json()
    assert refreshed["stale"] is False and refreshed["events_since"] == 0
    assert datetime.fromisoformat(refreshed["as_of"]) > datetime.fromisoformat(first["as_of"])
    assert refreshed["inter_reviewer"]["items"] == 3
    assert refreshed["inter_reviewer"]["percent_agreement"]["value"] == pytest.approx(2 / 3, abs=1e-4)
    assert _figures(refreshed) == _fresh(database, project_id, Scope("report"))
    trend = admin.get(trend_path).json()
    assert trend["stale"] is False
    assert _figures(trend) == _fresh(database, project_id, Scope("trend"))
    assert trend["inter_reviewer"][0]["items"] == 3


@pytest.mark.storage
def test_an_older_computation_never_replaces_a_newer_one(
    tenant: Tenant, admin: httpx.Client, database: Database, clock: Clock
) -> None:
    """Two processes refreshing at once: whichever stores last, the report computed from the newer data stays."""
    project_id = overlapped_project(admin, reviewers=2)
    _decide(tenant, admin, project_id, [("compliant", "compliant")])
    scope = Scope("report", pairs=False)
    with database.transaction(write=False) as session:
        older = agreement_reports.compute(session, project_id, scope)
    _decide(tenant, admin, project_id, [("compliant", "non_compliant")])
    clock.advance(seconds=1)
    with database.transaction(write=False) as session:
        newer = agreement_reports.compute(session, project_id, scope)
    assert newer.report["inter_reviewer"]["items"] == 2 and older.report["inter_reviewer"]["items"] == 1
    with database.transaction() as session:
        assert agreement_reports.store(
            session, project_id=project_id, scope=scope, computed=newer, requested=True
        )
    with database.transaction() as session:
        assert not agreement_reports.store(
            session, project_id=project_id, scope=scope, computed=older, requested=False
        )
    served = admin.get(f"/api/v1/projects/{project_id}/agreement", params={"pairs": "false"}).json()
    assert served["inter_reviewer"]["items"] == 2 and served["inter_reviewer"]["pairs"] == []
    assert datetime.fromisoformat(served["as_of"]) == newer.as_of


@pytest.mark.storage
def test_each_scope_is_its_own_report(tenant: Tenant, admin: httpx.Client) -> None:
    project_id = overlapped_project(admin, reviewers=2)
    _decide(tenant, admin, project_id, [("compliant", "compliant")])
    path = f"/api/v1/projects/{project_id}/agreement"
    assert admin.get(path).json()["inter_reviewer"]["items"] == 1
    later = admin.get(path, params={"from": "2100-01-01T00:00:00Z"}).json()
    assert later["inter_reviewer"]["items"] == 0 and later["stale"] is False
    other = admin.get(path, params={"evaluator_type": "nobody"}).json()
    assert other["evaluator_type"] == "nobody" and other["inter_reviewer"]["items"] == 0
