"""Rolling an evaluator back: version N becomes current again as a new version with N's definition, recorded in
its history and the event log, and used by the next evaluation."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.judge_server import JudgeServer, confident, system_message
from tests.support import POLICY_EVALUATOR, make_project

pytestmark = pytest.mark.storage


def test_a_rollback_makes_an_old_definition_current_as_a_new_version(
    admin: httpx.Client, judge_server: JudgeServer, settled: Callable[[], None]
) -> None:
    project_id = make_project(admin)
    first = admin.post("/api/v1/evaluators", json={"project_id": project_id, **POLICY_EVALUATOR}).json()
    second = admin.patch(
        f"/api/v1/evaluators/{first['id']}",
        json={
            "evaluation_system_prompt": "A stricter auditor. Options: {evaluation_options}",
            "ambiguity_threshold": 0.8,
        },
    ).json()
    assert second["version"] == 2

    rolled = admin.post(f"/api/v1/evaluators/{second['id']}/rollback", json={"version": 1})
    assert rolled.status_code == 201, rolled.text
    third = rolled.json()
    assert (third["version"], third["restored_from"]) == (3, 1)
    assert third["evaluation_system_prompt"] == POLICY_EVALUATOR["evaluation_system_prompt"]
    assert third["ambiguity_threshold"] == first["ambiguity_threshold"]
    current = admin.get("/api/v1/evaluators", params={"project_id": project_id}).json()["evaluators"]
    assert [(e["name"], e["version"]) for e in current] == [("policy-adherence", 3)]

    history = admin.get(f"/api/v1/evaluators/{first['id']}/versions").json()["evaluators"]
    assert [(e["version"], e["restored_from"]) for e in history] == [(3, 1), (2, None), (1, None)]
    assert (
        admin.get(f"/api/v1/evaluators/{first['id']}").json()["evaluation_system_prompt"]
        == first["evaluation_system_prompt"]
    )

    # The next evaluation uses the restored definition.
    judge_server.reply = confident("compliant")
    evaluated = admin.post(
        "/api/v1/evaluations",
        json={"project_id": project_id, "evaluators": ["policy-adherence"], "query": "q", "response": "r"},
    ).json()["evaluations"][0]
    assert evaluated["evaluator_version"] == 3
    assert system_message(judge_server.requests[-1]).startswith(
        "You are a financial services compliance auditor"
    )

    # Rolling back to what is already current changes nothing.
    same = admin.post(f"/api/v1/evaluators/{third['id']}/rollback", json={"version": 1})
    assert same.status_code == 200 and same.json()["version"] == 3

    settled()
    events = admin.get(
        "/api/v1/events", params={"project_id": project_id, "type": "evaluator.updated"}
    ).json()["events"]
    assert [e["data"]["version"] for e in events] == [1, 2, 3]
    assert events[-1]["data"]["restored_from"] == 1


def test_a_rollback_to_a_version_that_does_not_exist_is_refused(admin: httpx.Client) -> None:
    project_id = make_project(admin)
    first = admin.post("/api/v1/evaluators", json={"project_id": project_id, **POLICY_EVALUATOR}).json()
    missing = admin.post(f"/api/v1/evaluators/{first['id']}/rollback", json={"version": 7})
    assert missing.status_code == 422 and missing.json()["error"]["details"]["latest"] == 1
    assert admin.post("/api/v1/evaluators/evl_nope/rollback", json={"version": 1}).status_code == 404
