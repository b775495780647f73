"""An evaluator's definition is checked before anything is written: a threshold is a confidence in [0, 1] or
"auto", on registration and on change alike."""

from __future__ import annotations

import httpx
import pytest

from tests.support import POLICY_EVALUATOR, make_project

pytestmark = pytest.mark.storage


def test_an_ambiguity_threshold_outside_0_to_1_is_refused_and_nothing_is_written(admin: httpx.Client) -> None:
    project_id = make_project(admin)
    for bad in (2, -0.1, "high"):
        made = admin.post(
            "/api/v1/evaluators",
            json={**POLICY_EVALUATOR, "project_id": project_id, "ambiguity_threshold": bad},
        )
        assert (made.status_code, made.json()["error"]["code"]) == (422, "validation_error"), bad
        assert "ambiguity_threshold" in made.text
    assert admin.get("/api/v1/evaluators", params={"project_id": project_id}).json()["evaluators"] == []

    good = admin.post("/api/v1/evaluators", json={**POLICY_EVALUATOR, "project_id": project_id}).json()
    for bad in (1.5, -1):
        changed = admin.patch(f"/api/v1/evaluators/{good['id']}", json={"ambiguity_threshold": bad})
        assert (changed.status_code, changed.json()["error"]["code"]) == (422, "validation_error"), bad
    assert admin.get(f"/api/v1/evaluators/{good['id']}").json()["version"] == 1
    for fine in (0, 1, 0.35, "auto"):
        fields = {"name": f"t{fine}", "ambiguity_threshold": fine}
        if fine == "auto":
            fields["target_agreement"] = 0.9
        made = admin.post("/api/v1/evaluators", json={**POLICY_EVALUATOR, "project_id": project_id, **fields})
        assert made.status_code == 201, made.text
