"""Administration in a real headless Chromium: API keys, the audit trail, project settings."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from casework.db.engine import Database
from casework.services.auth import list_keys
from tests.support import Tenant, wait_for
from tests.web.browser import login_link

pytestmark = pytest.mark.storage


def test_an_admin_manages_the_workspaces_keys_in_the_browser(
    page: Page, database: Database, tenant: Tenant, other_tenant: Tenant, base_url: str
) -> None:
    page.goto(login_link(database, tenant, role="admin"))
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Label").fill("ana@bank.example")
    page.get_by_label("Role").select_option("viewer")
    page.get_by_role("button", name="Create a key").click()
    secret = page.locator("[data-secret]").inner_text().strip()
    assert secret.startswith("cw_sk_")
    as_ana = {"x-api-key": secret}
    assert httpx.get(f"{base_url}/api/v1/workspaces/current", headers=as_ana).json()["name"] == tenant.name
    page.goto("/admin/keys")
    expect(page.locator("[data-secret]")).to_have_count(0)  # shown once
    expect(page.locator("[data-keys] tbody tr")).to_have_count(4)  # the tenant's three, and ana's
    assert other_tenant.name not in page.locator("[data-keys]").inner_text()

    row = page.locator("[data-keys] tbody tr", has_text="ana@bank.example")
    row.get_by_text("Revoke…").click()
    row.get_by_role("button", name="Revoke ana@bank.example's key").click()
    expect(page.locator("[data-keys] tbody tr", has_text="ana@bank.example")).to_contain_text("revoked")
    assert httpx.get(f"{base_url}/api/v1/workspaces/current", headers=as_ana).status_code == 401

    with database.transaction(write=False) as session:
        stranger = next(k.id for k, _ in list_keys(session, workspace_id=other_tenant.workspace_id))
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    reply = page.request.post(f"/admin/keys/{stranger}/revoke", form={"csrf": str(csrf)}, max_redirects=0)
    assert reply.status == 404  # another workspace's key is as absent as one that never was

    page.goto(login_link(database, tenant, role="reviewer"))
    expect(page.get_by_role("link", name="API keys")).to_have_count(0)
    page.goto("/admin/keys")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()


def test_the_audit_trail_and_project_settings(
    page: Page, database: Database, tenant: Tenant, project: dict[str, Any], admin: httpx.Client
) -> None:
    review = admin.get("/api/v1/hitl/reviews", params={"project_id": project["id"]}).json()["reviews"][0]
    admin.post(
        f"/api/v1/hitl/reviews/{review['id']}/feedback",
        json={"classification": "compliant", "reasoning": "Fine.", "reviewer": "ana@bank.example"},
    ).raise_for_status()
    page.goto(login_link(database, tenant))
    page.goto(f"/projects/{project['id']}/audit")
    expect(page.locator("tbody tr", has_text="review.created")).to_have_count(3)
    page.get_by_label("Action").select_option("review.resolved")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_contain_text(review["id"])

    page.get_by_role("link", name="Settings").click()
    expect(page.locator("[data-evaluators]")).to_contain_text("policy-adherence")
    page.get_by_label("How long a review may wait, in hours").fill("abc")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("review_target_hours")
    page.get_by_label("How long a review may wait, in hours").fill("2")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_label("How long a review may wait, in hours")).to_have_value("2.0")
    assert admin.get(f"/api/v1/projects/{project['id']}").json()["review_target_hours"] == 2.0


def test_an_admin_previews_and_saves_risk_tiers_and_a_wrong_policy_keeps_what_was_typed(
    page: Page, database: Database, tenant: Tenant, project: dict[str, Any], admin: httpx.Client
) -> None:
    page.goto(login_link(database, tenant, role="admin"))
    page.goto(f"/projects/{project['id']}/settings")
    page.get_by_role("link", name="Risk tiers").click()
    expect(page.locator("main")).to_contain_text("No tiers yet")
    editor = page.get_by_label("The policy, as JSON")
    example = editor.input_value()
    assert '"reviewers_required": 2' in example and '"target_hours": 4' in example
    wrong = '{"tiers": [{"name": "high"}], "rules": [{"tier": "urgent"}], "default_tier": "high"}'
    editor.fill(wrong)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("rules[0].tier: 'urgent' is not one of the tiers")
    expect(page.get_by_label("The policy, as JSON")).to_have_value(wrong)
    assert admin.get("/api/v1/risk-tiers", params={"project_id": project["id"]}).json()["version"] == 0

    everything = '{"tiers": [{"name": "all", "review": "always"}], "default_tier": "all"}'
    page.get_by_label("The policy, as JSON").fill(everything)
    page.get_by_role("button", name="Preview on the last 30 days").click()
    expect(page.locator("[data-impact]")).to_contain_text("would have gone to people")
    assert admin.get("/api/v1/risk-tiers", params={"project_id": project["id"]}).json()["version"] == 0
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    saved = admin.get("/api/v1/risk-tiers", params={"project_id": project["id"]}).json()
    assert (saved["version"], saved["default_tier"]) == (1, "all")
    given = page.locator("[data-tier-settings] tbody tr")
    expect(given).to_have_count(1)
    expect(given).to_contain_text("the evaluator's")
    expect(given).to_contain_text("24 h")

    page.goto(login_link(database, tenant, role="reviewer"))
    page.goto(f"/projects/{project['id']}/risk-tiers")
    expect(page.get_by_label("The policy, as JSON")).to_have_count(0)
    expect(page.locator("main")).to_contain_text("Only an admin key changes the tiers")


def test_the_golden_sets_page_shows_each_set_s_runs_side_by_side(
    page: Page,
    database: Database,
    tenant: Tenant,
    project: dict[str, Any],
    admin: httpx.Client,
    judge_server: Any,
) -> None:
    items = [
        {"query": f"case {i}", "response": "answer", "expected": expected}
        for i, expected in enumerate(["compliant", "non_compliant"])
    ]
    golden = admin.post(
        "/api/v1/golden-sets",
        json={
            "project_id": project["id"],
            "name": "policy",
            "items": items,
            "thresholds": {"accuracy": {">=": 0.9}},
        },
    ).json()
    judge_server.reply = lambda body: {"classification": "compliant", "confidence": 0.95, "explanation": "x"}
    started = admin.post(
        f"/api/v1/golden-sets/{golden['id']}/runs", json={"evaluators": ["policy-adherence"], "memory": False}
    ).json()
    wait_for(
        lambda: (
            admin.get(f"/api/v1/golden-sets/{golden['id']}/runs/{started['id']}").json()["status"]
            == "completed"
        )
    )
    page.goto(login_link(database, tenant))
    page.goto(f"/projects/{project['id']}/queue")
    page.get_by_role("link", name="Golden sets").click()
    section = page.locator("[data-golden-set=policy]")
    expect(section).to_contain_text("v1 · 2 items")
    expect(section).to_contain_text("accuracy >= 0.9")
    row = section.locator("[data-golden-runs] tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("policy-adherence:")
    expect(row).to_contain_text("0.500")  # one of two right
    expect(row).to_contain_text("fail")


def test_two_runs_of_a_golden_set_are_compared_side_by_side(
    page: Page,
    database: Database,
    tenant: Tenant,
    project: dict[str, Any],
    admin: httpx.Client,
    judge_server: Any,
) -> None:
    items = [
        {"query": f"case {i}", "response": "answer", "expected": expected}
        for i, expected in enumerate(["compliant", "non_compliant", "non_compliant"])
    ]
    golden = admin.post(
        "/api/v1/golden-sets", json={"project_id": project["id"], "name": "policy", "items": items}
    ).json()

    def run(verdicts: list[str], evaluator: Any) -> dict[str, Any]:
        judge_server.reply = lambda body: {
            "classification": verdicts[int(str(body["messages"][-1]["content"]).split("case ")[1][0])],
            "confidence": 0.95,
            "explanation": "x",
        }
        started = admin.post(
            f"/api/v1/golden-sets/{golden['id']}/runs", json={"evaluators": [evaluator], "memory": False}
        ).json()
        url = f"/api/v1/golden-sets/{golden['id']}/runs/{started['id']}"
        finished: dict[str, Any] = wait_for(
            lambda: (r := admin.get(url).json())["status"] == "completed" and r
        )
        return finished

    run(["compliant", "compliant", "non_compliant"], "policy-adherence")  # 2 of 3 right
    run(["non_compliant", "non_compliant", "non_compliant"], {"name": "policy-adherence", "model": "other"})
    page.goto(login_link(database, tenant))
    page.goto(f"/projects/{project['id']}/golden")
    section = page.locator("[data-golden-set=policy]")
    expect(section.locator("[data-golden-runs] tbody tr").first).to_contain_text("policy-adherence:1 @ other")
    section.get_by_role("button", name="Side by side").click()
    pair = page.locator("[data-compare-pair]")
    expect(pair).to_have_count(1)
    expect(pair.locator("h2")).to_contain_text("policy-adherence:1 → policy-adherence:1 @ other")
    accuracy = pair.locator("[data-metric=accuracy]")
    expect(accuracy).to_contain_text("0.6667")
    expect(accuracy).to_contain_text("0.6667")  # the same share right, on other items
    expect(pair.locator("[data-compare-items]")).to_contain_text("1 better, 1 worse, 1 the same")
    expect(pair.locator("[data-worse-items]")).to_contain_text("case 0")
    expect(pair.locator("[data-better-items]")).to_contain_text("case 1")
