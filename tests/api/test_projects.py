from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.support import Tenant


def test_create_project_returns_it_and_is_idempotent(admin: httpx.Client, tenant: Tenant) -> None:
    first = admin.post("/api/v1/projects", json={"name": "hitl-demo"})
    assert first.status_code == 201
    body = first.json()
    assert body["name"] == "hitl-demo"
    assert body["workspace_id"] == tenant.workspace_id
    assert body["id"].startswith("prj_")
    assert body["created_at"].endswith("Z")

    again = admin.post("/api/v1/projects", json={"name": "hitl-demo"})
    assert again.status_code == 200
    assert again.json() == body


def test_get_and_list_projects(admin: httpx.Client) -> None:
    created = admin.post("/api/v1/projects", json={"name": "b"}).json()
    admin.post("/api/v1/projects", json={"name": "a"})
    assert admin.get(f"/api/v1/projects/{created['id']}").json() == created
    assert [p["name"] for p in admin.get("/api/v1/projects").json()["projects"]] == ["a", "b"]


def test_get_or_create_under_twenty_concurrent_requests_makes_one_project(tenant: Tenant) -> None:
    def create(_: int) -> httpx.Response:
        with tenant.client("reviewer") as client:
            return client.post("/api/v1/projects", json={"name": "raced"})

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(create, range(20)))

    assert sorted({r.status_code for r in responses}) in ([200, 201], [201])
    assert sum(r.status_code == 201 for r in responses) == 1
    assert len({r.json()["id"] for r in responses}) == 1
    with tenant.client() as client:
        assert [p["name"] for p in client.get("/api/v1/projects").json()["projects"]] == ["raced"]


def test_runs_are_get_or_create_per_project(admin: httpx.Client) -> None:
    project = admin.post("/api/v1/projects", json={"name": "p"}).json()
    run = admin.post(f"/api/v1/projects/{project['id']}/runs", json={"name": "feedback-loop-demo"})
    assert run.status_code == 201
    assert run.json()["project_id"] == project["id"]
    assert run.json()["id"].startswith("run_")
    again = admin.post(f"/api/v1/projects/{project['id']}/runs", json={"name": "feedback-loop-demo"})
    assert again.status_code == 200
    assert again.json() == run.json()
    admin.post(f"/api/v1/projects/{project['id']}/runs", json={"name": "second"})
    names = [r["name"] for r in admin.get(f"/api/v1/projects/{project['id']}/runs").json()["runs"]]
    assert names == ["second", "feedback-loop-demo"]


def test_current_workspace(admin: httpx.Client, tenant: Tenant) -> None:
    assert admin.get("/api/v1/workspaces/current").json() == {"id": tenant.workspace_id, "name": tenant.name}


def test_project_name_is_required_and_trimmed(admin: httpx.Client) -> None:
    for bad in ({}, {"name": ""}, {"name": "   "}, {"name": "x" * 201}, {"name": "ok", "extra": 1}):
        response = admin.post("/api/v1/projects", json=bad)
        assert response.status_code == 422, bad
        assert response.json()["error"]["code"] == "validation_error"
    assert admin.get("/api/v1/projects").json() == {"projects": []}
    assert admin.post("/api/v1/projects", json={"name": "  spaced  "}).json()["name"] == "spaced"
