"""401 without a valid key, 403 for a viewer that writes, 404 for another workspace's objects."""

from __future__ import annotations

import httpx
import pytest

from casework.db.engine import Database
from casework.services import auth
from tests.support import Tenant


def test_no_key_is_401_in_the_error_shape(anonymous: httpx.Client) -> None:
    response = anonymous.get("/api/v1/projects")
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "unauthenticated"
    assert "x-api-key" in error["message"]
    assert error["details"] == {}


@pytest.mark.parametrize(
    "headers",
    [{"x-api-key": "cw_sk_not-a-real-key"}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}],
)
def test_bad_key_is_401(anonymous: httpx.Client, tenant: Tenant, headers: dict[str, str]) -> None:
    response = anonymous.get("/api/v1/projects", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_bearer_token_works_like_x_api_key(anonymous: httpx.Client, tenant: Tenant) -> None:
    response = anonymous.get("/api/v1/projects", headers={"Authorization": f"Bearer {tenant.keys['viewer']}"})
    assert response.status_code == 200


def test_viewer_reads_but_cannot_write(tenant: Tenant, admin: httpx.Client) -> None:
    project = admin.post("/api/v1/projects", json={"name": "p"}).json()
    with tenant.client("viewer") as viewer:
        assert viewer.get("/api/v1/projects").status_code == 200
        denied = viewer.post("/api/v1/projects", json={"name": "new"})
        assert denied.status_code == 403
        assert denied.json()["error"]["code"] == "permission_denied"
        assert viewer.post(f"/api/v1/projects/{project['id']}/runs", json={"name": "r"}).status_code == 403
    assert [p["name"] for p in admin.get("/api/v1/projects").json()["projects"]] == ["p"]


def test_reviewer_can_create_projects(tenant: Tenant) -> None:
    with tenant.client("reviewer") as reviewer:
        assert reviewer.post("/api/v1/projects", json={"name": "p"}).status_code == 201


def test_other_workspace_objects_are_404_and_never_listed(tenant: Tenant, other_tenant: Tenant) -> None:
    with tenant.client() as mine, other_tenant.client() as theirs:
        secret = theirs.post("/api/v1/projects", json={"name": "their-project"}).json()
        mine.post("/api/v1/projects", json={"name": "my-project"})

        assert [p["name"] for p in mine.get("/api/v1/projects").json()["projects"]] == ["my-project"]
        for response in (
            mine.get(f"/api/v1/projects/{secret['id']}"),
            mine.get(f"/api/v1/projects/{secret['id']}/runs"),
            mine.post(f"/api/v1/projects/{secret['id']}/runs", json={"name": "r"}),
        ):
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "project_not_found"
            assert "their-project" not in response.text
        assert theirs.get(f"/api/v1/projects/{secret['id']}/runs").json() == {"runs": []}


def test_revoked_key_is_401(database: Database, tenant: Tenant) -> None:
    with tenant.client("reviewer") as client:
        assert client.get("/api/v1/projects").status_code == 200
        with database.transaction() as session:
            key_id = next(
                k.id
                for k, _ in auth.list_keys(session, workspace_id=tenant.workspace_id)
                if k.role == "reviewer"
            )
            auth.revoke_key(session, key_id=key_id)
        assert client.get("/api/v1/projects").status_code == 401
