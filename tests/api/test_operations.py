from __future__ import annotations

import httpx

from casework.app import create_app
from casework.config import Settings
from casework.db.engine import Database
from casework.evaluators.judge import LLMJudge
from tests.support import LiveServer, Tenant


def test_health_and_readiness(anonymous: httpx.Client) -> None:
    assert anonymous.get("/healthz").json() == {"status": "ok"}
    ready = anonymous.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_metrics_count_requests_per_route_template(anonymous: httpx.Client, admin: httpx.Client) -> None:
    project = admin.post("/api/v1/projects", json={"name": "m"}).json()
    admin.get(f"/api/v1/projects/{project['id']}")
    text = anonymous.get("/metrics").text
    assert (
        'casework_http_requests_total{method="GET",route="/api/v1/projects/{project_id}",status="200"}'
        in text
    )
    assert (
        'casework_http_request_duration_seconds_bucket{le="0.01",method="POST",route="/api/v1/projects"}'
        in text
    )
    assert f"/api/v1/projects/{project['id']}" not in text  # the template, never the raw path


def test_openapi_and_docs_are_served(anonymous: httpx.Client) -> None:
    spec = anonymous.get("/openapi.json").json()
    assert "/api/v1/projects" in spec["paths"]
    assert anonymous.get("/docs").status_code == 200


def test_unknown_route_and_method_use_the_error_shape(admin: httpx.Client) -> None:
    missing = admin.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong_method = admin.delete("/api/v1/projects")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"


def test_malformed_json_is_400_and_writes_nothing(admin: httpx.Client, tenant: Tenant) -> None:
    response = admin.post(
        "/api/v1/projects", content=b'{"name": "half', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "bad_request"
    assert "not valid JSON" in error["message"]
    assert admin.get("/api/v1/projects").json() == {"projects": []}


def test_a_body_that_is_not_sent_as_json_is_415(admin: httpx.Client) -> None:
    for headers in (
        {"content-type": "text/plain"},
        {"content-type": "application/x-www-form-urlencoded"},
        {},
    ):
        response = admin.post("/api/v1/projects", content=b'{"name": "p"}', headers=headers)
        assert response.status_code == 415, (headers, response.text)
        assert response.json()["error"]["code"] == "unsupported_media_type"
    vendor_json = admin.post(
        "/api/v1/projects", content=b'{"name": "p"}', headers={"content-type": "application/vnd.api+json"}
    )
    assert vendor_json.status_code == 201
    assert admin.get("/api/v1/projects").json()["projects"][0]["name"] == "p"


def test_an_oversized_body_is_413_in_the_error_shape_declared_or_not(
    admin: httpx.Client, settings: Settings
) -> None:
    body = b'{"name": "' + b"x" * (settings.max_body_bytes + 10) + b'"}'
    declared = admin.post("/api/v1/projects", content=body, headers={"content-type": "application/json"})
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "payload_too_large"
    streamed = admin.post(
        "/api/v1/projects",
        content=iter([body[:1000], body[1000:]]),
        headers={"content-type": "application/json"},
    )
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "payload_too_large"
    assert admin.get("/api/v1/projects").json() == {"projects": []}


def test_metrics_can_require_a_bearer_token(settings: Settings, database: Database) -> None:
    settings = settings.model_copy(update={"metrics_token": "s3cret", "embedded_worker": False})
    with (
        LiveServer(create_app(settings, database=database, judge=LLMJudge(None))) as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Basic s3cret"}):
            refused = client.get("/metrics", headers=headers)
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "unauthenticated"
        allowed = client.get("/metrics", headers={"authorization": "Bearer s3cret"})
        assert allowed.status_code == 200 and "casework_http_requests_total" in allowed.text
