"""Policy ambiguity: controls that decided near-identical cases differently are listed, and shown."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from casework.db.engine import Database
from casework.services.web_auth import create_login_link_token
from tests.support import Tenant, make_project

pytestmark = pytest.mark.storage

QUERY = "Can you raise my credit limit? I have been a loyal customer for fifteen years."
RESPONSE = "I appreciate your loyalty, I can certainly raise your credit limit today."


def write(client: httpx.Client, project_id: str, classification: str, **fields: Any) -> str:
    body = {
        "project_id": project_id,
        "evaluator_type": "policy-adherence",
        "classification": classification,
        "reasoning": f"Decided {classification}.",
        "reviewer": f"{classification}@bank.example",
        "query": QUERY,
        "response": RESPONSE,
        **fields,
    }
    created = client.post("/api/v1/controls", json=body)
    assert created.status_code == 201, created.text
    control_id: str = created.json()["id"]
    return control_id


def test_near_identical_controls_that_disagree_are_listed_and_shown(
    admin: httpx.Client, database: Database, tenant: Tenant
) -> None:
    project_id = make_project(admin)
    first = write(admin, project_id, "compliant")
    second = write(admin, project_id, "non_compliant", response=RESPONSE + " Thanks!")
    write(
        admin, project_id, "compliant", query="What are your branch opening hours?", response="Nine to five."
    )
    write(
        admin, project_id, "non_compliant", evaluator_type="other-evaluator"
    )  # another evaluator: no conflict
    found = admin.get("/api/v1/controls/conflicts", params={"project_id": project_id})
    assert found.status_code == 200, found.text
    (conflict,) = found.json()["conflicts"]
    assert conflict["evaluator_type"] == "policy-adherence"
    assert conflict["similarity"] >= 0.9
    assert [c["id"] for c in conflict["controls"]] == [first, second]
    with database.transaction() as session:
        token = create_login_link_token(session, key_label=f"reviewer@{tenant.name}")
    with httpx.Client(base_url=tenant.base_url, timeout=30) as browser:
        browser.get("/login", params={"token": token})
        page = browser.get(f"/projects/{project_id}/controls")
        assert "Policy ambiguity" in page.text
        assert f"/controls/{first}" in page.text and f"/controls/{second}" in page.text
    admin.delete(f"/api/v1/controls/{second}").raise_for_status()
    assert (
        admin.get("/api/v1/controls/conflicts", params={"project_id": project_id}).json()["conflicts"] == []
    )
