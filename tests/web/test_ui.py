"""The reviewer UI in a real headless Chromium (Debian's chromium, driven by Playwright; no browser download).

Screenshots of each page are saved to test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from casework.db.engine import Database
from casework.services.web_auth import create_login_link_token
from tests.support import POLICY_EVALUATOR, Tenant

pytestmark = pytest.mark.storage

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            "The UI tests drive Debian's Chromium at /usr/bin/chromium: install it with "
            "`apt-get install chromium` (.ci/run does this itself).",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    context = browser.new_context(base_url=base_url)
    page = context.new_page()
    page.on("dialog", lambda dialog: pytest.fail(f"a dialog opened: {dialog.message}"))
    yield page
    context.close()


def shot(page: Page, name: str, backend: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"ui-{name}-{backend}.png"), full_page=True)


def login_link(database: Database, tenant: Tenant, role: str = "reviewer") -> str:
    with database.transaction() as session:
        return f"/login?token={create_login_link_token(session, key_label=f'{role}@{tenant.name}')}"


@pytest.fixture
def project(admin: httpx.Client) -> dict[str, Any]:
    """A project whose judge found three cases ambiguous (one with a hostile response), so they wait in the
    queue, and whose evaluations give the overview a day of ambiguity rate."""
    project = admin.post("/api/v1/projects", json={"name": "bank"}).json()
    admin.post("/api/v1/evaluators", json={**POLICY_EVALUATOR, "project_id": project["id"]})
    for query, response in [
        ("Can I get a higher credit limit?", "I can certainly look into that for you."),
        ("My advisor promised guaranteed returns. True?", "It is a popular product."),
        ("Is this page safe?", HOSTILE),
    ]:
        admin.post(
            "/api/v1/evaluations",
            json={
                "project_id": project["id"],
                "evaluators": ["policy-adherence"],
                "query": query,
                "response": response,
            },
        ).raise_for_status()
    return dict(project)


def test_a_reviewer_signs_in_and_works_the_queue_with_the_keyboard(
    page: Page, database: Database, tenant: Tenant, project: dict[str, Any], backend: str
) -> None:
    page.goto(login_link(database, tenant))
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()
    expect(page.get_by_role("link", name="bank")).to_be_visible()
    shot(page, "projects", backend)

    page.get_by_role("link", name="bank").click()
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    expect(page.locator("[data-pending]")).to_have_text("3")
    shot(page, "queue", backend)

    page.keyboard.press("j")  # select the first (oldest) review, open it
    page.keyboard.press("Enter")
    expect(page.get_by_role("group", name="Your decision")).to_be_visible()
    expect(page.locator("pre.text").first).to_have_text("Can I get a higher credit limit?")
    first_url = page.url
    shot(page, "review", backend)

    page.keyboard.press("1")  # compliant
    expect(page.locator('[data-option="1"]')).to_be_checked()
    page.keyboard.type("Offered a review of the limit and sent the customer to the right channel.")
    page.keyboard.press("Control+Enter")
    page.wait_for_url(lambda url: "/reviews/" in url and url != first_url)
    expect(page.locator("pre.text").first).to_have_text("My advisor promised guaranteed returns. True?")

    page.get_by_role("link", name="Controls").click()
    row = page.locator("tbody tr").first
    expect(row).to_contain_text("compliant")
    expect(row).to_contain_text("Offered a review of the limit")
    shot(page, "controls", backend)
    row.get_by_role("link").click()
    expect(page.get_by_role("heading", name="History")).to_be_visible()
    page.locator("#reasoning").fill("Offered a review of the limit; should have mentioned the hard inquiry.")
    page.locator("#tags").fill("credit-limit, disclosure-gap")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("ol.history li")).to_have_count(2)
    shot(page, "control", backend)


def test_untrusted_text_is_shown_and_never_run(
    page: Page, database: Database, tenant: Tenant, project: dict[str, Any], admin: httpx.Client, backend: str
) -> None:
    hostile = next(
        r
        for r in admin.get("/api/v1/hitl/reviews", params={"project_id": project["id"]}).json()["reviews"]
        if r["response"] == HOSTILE
    )
    page.goto(login_link(database, tenant))
    page.goto(f"/reviews/{hostile['id']}")
    expect(page.locator("[data-response]")).to_have_text(HOSTILE)
    page.wait_for_timeout(300)  # an onerror handler would have fired by now
    assert page.evaluate("window.__pwned") is None
    assert page.locator("[data-response] img, [data-response] script").count() == 0
    shot(page, "hostile", backend)


def test_the_overview_charts_ambiguity_per_day(
    page: Page, database: Database, tenant: Tenant, project: dict[str, Any], backend: str
) -> None:
    page.goto(login_link(database, tenant))
    page.goto(f"/projects/{project['id']}/overview")
    expect(page.locator("svg[data-chart] rect")).to_have_count(1)  # one day of verdicts
    expect(page.locator(".tiles")).to_contain_text("Pending now")
    assert "100.0%" in page.locator("table.list").inner_text()  # every verdict today was ambiguous
    shot(page, "overview", backend)


def test_reading_and_deciding_work_without_javascript(
    browser: Browser, base_url: str, database: Database, tenant: Tenant, project: dict[str, Any]
) -> None:
    context = browser.new_context(base_url=base_url, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(login_link(database, tenant))
        page.get_by_role("link", name="bank").click()
        page.locator("tbody tr a").first.click()
        first_url = page.url
        page.get_by_label("non_compliant").check()
        page.locator("#reasoning").fill("No product has guaranteed returns.")
        page.get_by_role("button", name="Submit").click()
        page.wait_for_url(lambda url: url != first_url)
        assert "/reviews/" in page.url
    finally:
        context.close()


def test_sign_in_with_a_key_links_work_once_and_forms_need_their_token(
    page: Page, database: Database, tenant: Tenant, project: dict[str, Any], base_url: str
) -> None:
    page.goto(f"/projects/{project['id']}/queue")
    expect(page).to_have_url(f"{base_url}/login?next=%2Fprojects%2F{project['id']}%2Fqueue")
    page.get_by_label("API key").fill("cw_sk_wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    page.get_by_label("API key").fill(tenant.keys["viewer"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()  # back where it was going

    link = login_link(database, tenant)
    assert httpx.get(f"{base_url}{link}").status_code == 303
    assert httpx.get(f"{base_url}{link}").status_code == 401  # used already

    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    review_id = page.locator("tbody tr a").first.get_attribute("href").rsplit("/", 1)[-1]
    forged = httpx.post(
        f"{base_url}/reviews/{review_id}/decide",
        data={"classification": "compliant", "reasoning": "forged", "csrf": "wrong"},
        cookies=cookies,
        headers={"accept": "text/html"},
    )
    assert forged.status_code == 403 and "CSRF" in forged.text

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_review_from_a_trace_shows_its_span_tree_and_conversation(
    page: Page, database: Database, tenant: Tenant, admin: httpx.Client, backend: str
) -> None:
    project = admin.post("/api/v1/projects", json={"name": "traced"}).json()
    admin.post("/api/v1/evaluators", json={**POLICY_EVALUATOR, "project_id": project["id"]})

    def span(
        span_id: str, parent: str | None, name: str, kind: str, question: str, answer: str
    ) -> dict[str, Any]:
        attributes = [
            {"key": "openinference.span.kind", "value": {"stringValue": kind}},
            {"key": "session.id", "value": {"stringValue": "chat-7"}},
            {"key": "input.value", "value": {"stringValue": question}},
            {"key": "output.value", "value": {"stringValue": answer}},
        ]
        return {
            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
            "spanId": span_id,
            **({"parentSpanId": parent} if parent else {}),
            "name": name,
            "startTimeUnixNano": str(1_700_000_000_000_000_000 + int(span_id[-1])),
            "endTimeUnixNano": str(1_700_000_001_000_000_000),
            "attributes": attributes,
        }

    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "casework.project_id", "value": {"stringValue": project["id"]}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            span("00f067aa0ba902b1", None, "agent", "CHAIN", "hi", "done"),
                            span(
                                "00f067aa0ba902b2",
                                "00f067aa0ba902b1",
                                "ChatCompletion",
                                "LLM",
                                "Hello?",
                                "Hi.",
                            ),
                            span(
                                "00f067aa0ba902b3",
                                "00f067aa0ba902b1",
                                "ChatCompletion",
                                "LLM",
                                "Are returns guaranteed?",
                                "Mostly.",
                            ),
                        ]
                    }
                ],
            }
        ]
    }
    assert admin.post("/v1/traces", json=body).status_code == 200
    deadline = time.monotonic() + 20
    while True:
        reviews = admin.get("/api/v1/hitl/reviews", params={"project_id": project["id"]}).json()["reviews"]
        if len(reviews) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    review = next(r for r in reviews if r["query"] == "Are returns guaranteed?")
    page.goto(login_link(database, tenant))
    page.goto(f"/reviews/{review['id']}")
    expect(page.locator("[data-trace]")).to_contain_text("agent")
    expect(page.locator("[data-trace] summary")).to_have_count(3)
    expect(page.locator("ol.conversation li")).to_have_count(2)
    expect(page.locator("ol.conversation li.current")).to_contain_text("Are returns guaranteed?")
    shot(page, "review-trace", backend)
