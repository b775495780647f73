"""The admin pages over plain HTTP (no browser needed): a new API key shown once after a redirect, evaluators
edited in the project settings, the audit trail's filters."""

from __future__ import annotations

import re

import httpx
import pytest

from casework.db.engine import Database
from casework.services.auth import Role, create_key, list_keys
from tests.support import Tenant
from tests.web.test_hardening import signed_in

pytestmark = pytest.mark.storage


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None, page.text[:300]
    return found.group(1)


def test_a_new_key_is_shown_once_after_a_redirect_and_a_reload_makes_no_other(
    database: Database, tenant: Tenant
) -> None:
    with signed_in(database, tenant, "admin") as browser:
        form = browser.get("/admin/keys")
        made = browser.post(
            "/admin/keys", data={"label": "ana@bank.example", "role": "viewer", "csrf": csrf_of(form)}
        )
        assert made.status_code == 303  # Post/Redirect/Get: reloading what follows posts nothing
        assert made.headers["location"] == "/admin/keys"

        shown = browser.get(made.headers["location"])
        assert shown.status_code == 200
        assert shown.headers["cache-control"] == "no-store"
        found = re.search(r"data-secret>(cw_sk_[^<]+)<", shown.text)
        assert found is not None, shown.text[:500]
        secret = found.group(1)
        # The secret travelled in no URL and no cookie as it is: only sealed, for this one page.
        assert secret not in made.headers["location"] and secret not in made.headers.get("set-cookie", "")
        assert httpx.get(f"{tenant.base_url}/api/v1/workspaces/current", headers={"x-api-key": secret}).json()[
            "name"
        ] == tenant.name

        again = browser.get("/admin/keys")  # the reload: the list, without the secret
        assert again.status_code == 200
        assert "data-secret" not in again.text and secret not in again.text

        refused = browser.post("/admin/keys", data={"label": " ", "role": "viewer", "csrf": csrf_of(form)})
        assert refused.status_code == 422 and "Give the key a label" in refused.text

    with database.transaction(write=False) as session:
        labels = [key.label for key, _ in list_keys(session, workspace_id=tenant.workspace_id)]
    assert labels.count("ana@bank.example") == 1


def test_a_new_key_s_secret_is_shown_to_no_other_key_s_session(database: Database, tenant: Tenant) -> None:
    with database.transaction() as session:
        create_key(session, workspace_id=tenant.workspace_id, role=Role.admin, label=f"lead@{tenant.name}")
    with signed_in(database, tenant, "admin") as browser:
        made = browser.post(
            "/admin/keys",
            data={"label": "bo@bank.example", "role": "reviewer", "csrf": csrf_of(browser.get("/admin/keys"))},
        )
        sealed = browser.cookies.get("casework_new_key")
        assert made.status_code == 303 and sealed
    with signed_in(database, tenant, "admin", label=f"lead@{tenant.name}") as lead:
        lead.cookies.set("casework_new_key", sealed, domain="127.0.0.1", path="/admin/keys")
        page = lead.get("/admin/keys")
        assert page.status_code == 200 and "data-secret" not in page.text
        lead.cookies.set("casework_new_key", "not-sealed-by-casework", domain="127.0.0.1", path="/admin/keys")
        page = lead.get("/admin/keys")
        assert page.status_code == 200 and "data-secret" not in page.text
