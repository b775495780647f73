"""The database-built export record (casework.db.review_json) must equal the API's record, field for field."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx
import pytest

from casework.db.engine import Database
from casework.services.auth import Principal, Role
from casework.services.review_queries import ReviewFilters, export_review_json, export_reviews
from tests.support import Tenant, enqueue, make_project


def normalised(record: dict[str, Any]) -> dict[str, Any]:
    """Times compared as instants, ages to the second (they are counted up to slightly different moments)."""
    record = dict(record)
    for name in ("created_at", "due_at", "paused_at"):
        if record.get(name):
            record[name] = datetime.fromisoformat(record[name].replace("Z", "+00:00"))
    record["age_seconds"] = round(record["age_seconds"])
    if record["resolution"]:
        resolution = dict(record["resolution"])
        resolution["resolved_at"] = datetime.fromisoformat(resolution["resolved_at"].replace("Z", "+00:00"))
        record["resolution"] = resolution
    return record


@pytest.mark.parametrize("status", ["pending", "resolved", "all"])
def test_database_json_matches_the_api_record(
    admin: httpx.Client, tenant: Tenant, database: Database, status: str
) -> None:
    project_id = make_project(admin)
    enqueue(
        admin,
        project_id,
        query='Quote " backslash \\ tab \t newline \n émoji 🙂 <script>',
        context=None,
        confidence=None,
        metadata={"nested": {"list": [1, 2.5, None, True]}, "ünï": "ok"},
        priority=3,
    )
    enqueue(
        admin,
        project_id,
        context="policy v3",
        explanation="borderline",
        trace_id="t",
        span_id="s",
        confidence=0.1,
    )
    resolved = enqueue(admin, project_id, query="to resolve")
    admin.post(
        f"/api/v1/hitl/reviews/{resolved['id']}/feedback",
        json={
            "classification": "compliant",
            "reasoning": 'Fine "as" is.\nSecond line.',
            "reviewer": "[email protected]",
            "tags": ["a-b", "c_d"],
        },
    )
    api = admin.get("/api/v1/hitl/reviews", params={"project_id": project_id, "status": status}).json()[
        "reviews"
    ]

    principal = Principal(key_id="k", workspace_id=tenant.workspace_id, role=Role.viewer, label="test")
    filters = ReviewFilters(project_id=project_id, status=status)
    with database.transaction(write=False) as session:
        from_database = [
            json.loads(line)
            for batch in export_review_json(session, principal=principal, filters=filters)
            for line in batch
        ]
        from_python = [
            record
            for batch in export_reviews(session, principal=principal, filters=filters)
            for record in batch
        ]

    assert [r["id"] for r in from_database] == [r["id"] for r in api]
    assert [normalised(r) for r in from_database] == [normalised(r) for r in api]
    assert [normalised(r) for r in from_python] == [normalised(r) for r in api]
