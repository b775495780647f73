"""The OpenAPI document tells the truth: every error status with the one error shape, success statuses as the
server answers them. (The fuzzing stage, tests/api/test_fuzzing.py, checks every reply against it.)"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import POLICY_EVALUATOR, make_project

ERROR = {"$ref": "#/components/schemas/ErrorBody"}


@pytest.fixture
def spec(anonymous: httpx.Client) -> dict[str, Any]:
    document: dict[str, Any] = anonymous.get("/openapi.json").json()
    return document


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in spec["paths"].items() for method, op in ops.items()]


def test_every_error_status_has_the_one_error_shape(spec: dict[str, Any]) -> None:
    assert spec["components"]["schemas"]["ErrorBody"]["required"] == ["error"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for method, path, operation in operations(spec):
        responses = operation["responses"]
        assert "500" in responses, (method, path)
        for status, response in responses.items():
            if int(status) >= 400:
                assert response["content"] == {"application/json": {"schema": ERROR}}, (method, path, status)
        if "503" in responses:
            assert "Retry-After" in responses["503"]["headers"]


def test_each_kind_of_operation_lists_the_errors_it_can_answer(spec: dict[str, Any]) -> None:
    def statuses(method: str, path: str) -> set[str]:
        return set(spec["paths"][path][method.lower()]["responses"])

    assert statuses("GET", "/healthz") == {"200", "500"}
    assert statuses("GET", "/api/v1/projects") == {"200", "401", "500", "503"}
    assert statuses("POST", "/api/v1/projects") == {
        "200", "201", "400", "401", "403", "413", "415", "422", "500", "503",
    }  # fmt: skip
    assert statuses("GET", "/api/v1/hitl/reviews") == {"200", "401", "404", "422", "500", "503"}
    assert {"404", "409"} <= statuses("POST", "/api/v1/hitl/reviews/{review_id}/feedback")
    assert {"400", "404", "413", "415", "422", "503"} <= statuses("POST", "/v1/traces")
    assert set(spec["paths"]["/v1/traces"]["post"]["requestBody"]["content"]) == {
        "application/x-protobuf",
        "application/json",
    }


def test_created_and_existing_are_both_documented_and_answered(
    spec: dict[str, Any], admin: httpx.Client
) -> None:
    project_id = make_project(admin)
    calls = [
        ("/api/v1/projects", "/api/v1/projects", {"name": "again"}),
        ("/api/v1/projects/{project_id}/runs", f"/api/v1/projects/{project_id}/runs", {"name": "r1"}),
        ("/api/v1/evaluators", "/api/v1/evaluators", {**POLICY_EVALUATOR, "project_id": project_id}),
    ]
    for documented, path, body in calls:
        responses = spec["paths"][documented]["post"]["responses"]
        assert {"200", "201"} <= set(responses)
        assert responses["200"]["content"] == responses["201"]["content"]
        assert [admin.post(path, json=body).status_code for _ in range(2)] == [201, 200], path


def test_the_export_documents_each_format_it_answers(spec: dict[str, Any], admin: httpx.Client) -> None:
    project_id = make_project(admin)
    content = spec["paths"]["/api/v1/hitl/reviews/export"]["get"]["responses"]["200"]["content"]
    for format, media_type in (
        ("json", "application/json"),
        ("jsonl", "application/x-ndjson"),
        ("csv", "text/csv"),
    ):
        reply = admin.get("/api/v1/hitl/reviews/export", params={"project_id": project_id, "format": format})
        assert reply.headers["content-type"].split(";")[0] == media_type
        assert media_type in content


def test_operations_that_need_a_key_say_so(spec: dict[str, Any], anonymous: httpx.Client) -> None:
    assert spec["components"]["securitySchemes"]["apiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
    }
    for method, path, operation in operations(spec):
        needs_key = "401" in operation["responses"]
        assert bool(operation.get("security")) == needs_key, (method, path)
    assert anonymous.get("/api/v1/projects").status_code == 401
    assert anonymous.get("/healthz").status_code == 200
