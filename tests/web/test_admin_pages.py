"""The admin pages over plain HTTP (no browser needed): a new API key shown once after a redirect, evaluators
edited in the project settings, the audit trail's filters."""

from __future__ import annotations

import html
import json
import re
from datetime import datetime, timezone

import httpx
import pytest

from casework.db.engine import Database
from casework.services.auth import Role, create_key, list_keys
from tests.support import POLICY_EVALUATOR, Tenant, enqueue, make_project
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
        assert (
            httpx.get(f"{tenant.base_url}/api/v1/workspaces/current", headers={"x-api-key": secret}).json()[
                "name"
            ]
            == tenant.name
        )

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
            data={
                "label": "bo@bank.example",
                "role": "reviewer",
                "csrf": csrf_of(browser.get("/admin/keys")),
            },
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


def evaluator_form(page: httpx.Response, evaluator_id: str) -> str:
    """The JSON the settings page offers to edit for one evaluator (its PATCH body), as the textarea holds it."""
    found = re.search(
        rf'action="/projects/[^"]+/evaluators/{evaluator_id}".*?<textarea[^>]*>(.*?)</textarea>',
        page.text,
        re.S,
    )
    assert found is not None, page.text[:500]
    return html.unescape(found.group(1))


def test_an_admin_edits_an_evaluator_in_the_settings_with_the_api_s_rules(
    database: Database, tenant: Tenant, admin: httpx.Client
) -> None:
    project_id = make_project(admin)
    made = admin.post("/api/v1/evaluators", json={**POLICY_EVALUATOR, "project_id": project_id}).json()
    settings = f"/projects/{project_id}/settings"
    with signed_in(database, tenant, "admin") as browser:
        page = browser.get(settings)
        offered = json.loads(evaluator_form(page, made["id"]))
        assert offered["options"] == ["compliant", "non_compliant"] and offered["reeval"] == "ambiguous"
        action = f"/projects/{project_id}/evaluators/{made['id']}"

        # The API's schema and the service's rules, in the API's words, with what was typed kept.
        typed = json.dumps({**offered, "memory_k": 0})
        refused = browser.post(action, data={"definition": typed, "csrf": csrf_of(page)})
        assert refused.status_code == 422
        assert "memory_k: Input should be greater than or equal to 1" in refused.text
        assert json.loads(evaluator_form(refused, made["id"])) == json.loads(typed)
        wrong = {**offered, "evaluation_human_prompt": "Judge {nonsense}"}
        refused = browser.post(action, data={"definition": json.dumps(wrong), "csrf": csrf_of(page)})
        assert refused.status_code == 422 and "unknown placeholders" in refused.text
        refused = browser.post(action, data={"definition": "{not json", "csrf": csrf_of(page)})
        assert refused.status_code == 422 and "JSON" in refused.text
        assert admin.get(f"/api/v1/evaluators/{made['id']}/versions").json()["evaluators"][0]["version"] == 1

        changed = {**offered, "options": ["compliant", "non_compliant", "needs_context"], "memory_k": 7}
        saved = browser.post(action, data={"definition": json.dumps(changed), "csrf": csrf_of(page)})
        assert saved.status_code == 303 and saved.headers["location"].startswith(settings)
        shown = browser.get(saved.headers["location"])
        assert "needs_context" in shown.text and "v2" in shown.text

    [current] = admin.get("/api/v1/evaluators", params={"project_id": project_id}).json()["evaluators"]
    assert (current["version"], current["memory_k"]) == (2, 7)
    assert current["options"] == ["compliant", "non_compliant", "needs_context"]
    audit = admin.get("/api/v1/audit", params={"project_id": project_id, "action": "evaluator.updated"})
    assert audit.json()["events"][0]["actor"].startswith(f"admin@{tenant.name}")


@pytest.mark.parametrize("role", ["reviewer", "viewer"])
def test_reviewers_and_viewers_see_evaluators_read_only(
    database: Database, tenant: Tenant, admin: httpx.Client, role: str
) -> None:
    project_id = make_project(admin)
    made = admin.post("/api/v1/evaluators", json={**POLICY_EVALUATOR, "project_id": project_id}).json()
    with signed_in(database, tenant, role) as browser:
        page = browser.get(f"/projects/{project_id}/settings")
        assert page.status_code == 200 and "policy-adherence" in page.text
        assert 'name="definition"' not in page.text
        refused = browser.post(
            f"/projects/{project_id}/evaluators/{made['id']}",
            data={"definition": json.dumps({"memory_k": 3}), "csrf": csrf_of(page)},
        )
        assert refused.status_code == 403
    assert admin.get(f"/api/v1/evaluators/{made['id']}").json()["memory_k"] != 3


def test_the_audit_page_filters_by_who_and_days_and_says_what_it_cannot_apply(
    database: Database, tenant: Tenant, admin: httpx.Client
) -> None:
    project_id = make_project(admin)
    admin.post("/api/v1/evaluators", json={**POLICY_EVALUATOR, "project_id": project_id}).raise_for_status()
    review = enqueue(admin, project_id)
    with tenant.client("reviewer") as reviewer:
        reviewer.post(
            f"/api/v1/hitl/reviews/{review['id']}/feedback",
            json={"classification": "compliant", "reasoning": "Fine.", "reviewer": "bo@bank.example"},
        ).raise_for_status()
    audit = f"/projects/{project_id}/audit"
    today = datetime.now(timezone.utc).date().isoformat()
    with signed_in(database, tenant, "viewer") as browser:
        everything = browser.get(audit)
        assert everything.text.count("<tr>") - 1 == 4  # evaluator.updated, review.created/resolved, control
        mine = browser.get(audit, params={"actor": f"Reviewer@{tenant.name}", "from": today, "to": today})
        assert mine.status_code == 200
        assert mine.text.count("<tr>") - 1 == 2 and "review.resolved" in mine.text
        assert f'value="Reviewer@{tenant.name}"' in mine.text and f'value="{today}"' in mine.text
        assert "No events match" in browser.get(audit, params={"to": "2001-01-01"}).text
        for params, words in (
            ({"from": "15/01/2024"}, "from must be a day as YYYY-MM-DD"),
            ({"from": today, "to": "2001-01-01"}, "must not be after to"),
        ):
            refused = browser.get(audit, params=params)
            assert refused.status_code == 422 and words in refused.text and 'role="alert"' in refused.text


def test_key_changes_are_in_the_workspace_audit_trail_without_the_secret(
    database: Database, tenant: Tenant, admin: httpx.Client
) -> None:
    with signed_in(database, tenant, "admin") as browser:
        made = browser.post(
            "/admin/keys",
            data={"label": "cy@bank.example", "role": "viewer", "csrf": csrf_of(browser.get("/admin/keys"))},
        )
        shown = browser.get(made.headers["location"])
        secret = re.search(r"data-secret>(cw_sk_[^<]+)<", shown.text)
        assert secret is not None
        key_id = re.search(r'data-key="(key_[^"]+)"[^<]*<td>cy@bank.example', shown.text)
        assert key_id is not None
        browser.post(f"/admin/keys/{key_id.group(1)}/revoke", data={"csrf": csrf_of(shown)})

        trail = admin.get("/api/v1/audit")  # no project: the workspace's own changes
        assert trail.status_code == 200, trail.text
        events = trail.json()["events"]
        assert [(e["action"], e["object_id"]) for e in events] == [
            ("api_key.revoked", key_id.group(1)),
            ("api_key.created", key_id.group(1)),
        ]
        assert all(e["actor"].startswith(f"admin@{tenant.name}") and e["project_id"] is None for e in events)
        assert events[1]["after"]["label"] == "cy@bank.example" and events[1]["after"]["role"] == "viewer"
        assert events[0]["before"]["revoked_at"] is None and events[0]["after"]["revoked_at"]
        assert secret.group(1) not in trail.text and secret.group(1)[:10] not in trail.text
        assert admin.get("/api/v1/audit", params={"actor": "nobody"}).json()["events"] == []

        page = browser.get("/admin/audit", params={"action": "api_key.created"})
        assert page.status_code == 200 and key_id.group(1) in page.text
        assert '<td class="nowrap">api_key.created</td>' in page.text
        assert '<td class="nowrap">api_key.revoked</td>' not in page.text
        assert secret.group(1) not in page.text

    with signed_in(database, tenant, "reviewer") as browser:
        assert browser.get("/admin/audit").status_code == 403
    with tenant.client("reviewer") as reviewer:
        refused = reviewer.get("/api/v1/audit")
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "permission_denied")
