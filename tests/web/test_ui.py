"""The reviewer UI in a real headless Chromium: signing in, the queue, reviews, controls, the overview.

Screenshots of each page are saved to test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from casework.db.engine import Database
from tests.support import POLICY_EVALUATOR, Tenant, enqueue
from tests.web.browser import HOSTILE, login_link, shot

pytestmark = pytest.mark.storage


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
    nav = page.get_by_role("navigation", name="Project")
    expect(nav.locator('[aria-current="page"]')).to_have_text("Controls")  # the project's header stays
    expect(page.get_by_label("Evaluator")).to_contain_text("policy-adherence")  # a choice, not free text
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
    expect(page.locator(".tiles").first).to_contain_text("Pending now")
    assert "100.0%" in page.locator("table.list").inner_text()  # every verdict today was ambiguous
    # The trends from the kept roll-ups: the evaluator's ambiguity today, three reviews queued, none decided.
    ambiguity = page.locator("[data-trend=ambiguity] [data-series=policy-adherence] circle title")
    expect(ambiguity).to_have_count(1)
    expect(ambiguity).to_contain_text("policy-adherence: 100.0%")
    created = page.locator("[data-trend=reviews] [data-series=created] circle title")
    expect(created).to_have_count(30)
    expect(created.last).to_contain_text("created: 3")
    expect(page.locator("[data-trend=decision-time] [data-trend-empty]")).to_be_visible()
    expect(page.locator("[data-trend=breach-rate] [data-trend-empty]")).to_be_visible()
    expect(page.locator("[data-trend=agreement] [data-trend-empty]")).to_be_visible()
    shot(page, "overview", backend)


def test_reading_and_deciding_work_without_javascript(
    browser: Browser,
    base_url: str,
    database: Database,
    tenant: Tenant,
    project: dict[str, Any],
    admin: httpx.Client,
) -> None:
    context = browser.new_context(base_url=base_url, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(login_link(database, tenant))
        page.get_by_role("link", name="bank").click()
        page.locator("tbody tr a").first.click()
        decided_id = page.url.rsplit("/", 1)[-1]
        decided_query = page.locator("pre.text").first.inner_text()
        page.get_by_label("non_compliant").check()
        page.locator("#reasoning").fill("No product has guaranteed returns.")
        page.get_by_role("button", name="Submit").click()
        # The plain form post resolved the review and opened the next pending one.
        page.wait_for_url(lambda url: "/reviews/" in url and not url.endswith(decided_id))
        expect(page.get_by_role("group", name="Your decision")).to_be_visible()
        expect(page.locator("pre.text").first).not_to_have_text(decided_query)
    finally:
        context.close()
    decided = admin.get(f"/api/v1/hitl/reviews/{decided_id}").json()
    assert decided["status"] == "resolved"
    resolution = decided["resolution"]
    assert (resolution["classification"], resolution["reasoning"], resolution["resolved_by"]) == (
        "non_compliant",
        "No product has guaranteed returns.",
        "human",
    )
    assert resolution["reviewer"] == f"reviewer@{tenant.name}"
    controls = admin.get("/api/v1/controls", params={"project_id": project["id"]}).json()["controls"]
    assert [(c["review_id"], c["reasoning"]) for c in controls] == [
        (decided_id, "No product has guaranteed returns.")
    ]
    pending = admin.get("/api/v1/hitl/reviews", params={"project_id": project["id"]}).json()["reviews"]
    assert decided_id not in {r["id"] for r in pending}


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


@pytest.mark.any_backend  # the OpenAPI document and Swagger UI's assets, nothing stored
def test_the_api_docs_work_offline(page: Page, base_url: str) -> None:
    elsewhere: list[str] = []

    def only_this_server(route: Route) -> None:
        if route.request.url.startswith(base_url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.goto("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Casework")
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/hitl/reviews").first).to_be_visible()
    assert elsewhere == []


MARKDOWN_WITH_HOSTILE_HTML = """**Guaranteed** returns are `not` a thing.

<script>window.__pwned = 1</script>

<img src=x onerror="window.__pwned = 2"> <svg onload="window.__pwned = 3"></svg>

[details](javascript:window.__pwned=4) and [the policy](https://bank.example/policy)

<a href="javascript:window.__pwned=5">click</a> <iframe src="javascript:window.__pwned=6"></iframe>

```html
<script>window.__pwned = 7</script>
```
"""


def test_markdown_is_formatted_and_hostile_html_inside_it_never_runs(
    page: Page, database: Database, tenant: Tenant, admin: httpx.Client
) -> None:
    project_id = admin.post("/api/v1/projects", json={"name": "md"}).json()["id"]
    long_context = "A long policy excerpt. " * 1000  # 23,000 characters
    review = enqueue(admin, project_id, response=MARKDOWN_WITH_HOSTILE_HTML, context=long_context)
    page.goto(login_link(database, tenant))
    page.goto(f"/reviews/{review['id']}")
    response = page.locator("[data-response]")
    expect(response.locator("strong")).to_have_text("Guaranteed")
    expect(response.locator("pre code")).to_contain_text("<script>window.__pwned = 7</script>")
    expect(response.locator('a[href="https://bank.example/policy"]')).to_have_attribute(
        "rel", "noopener noreferrer nofollow"
    )
    assert response.locator("script, img, svg, iframe, [onerror], [onload]").count() == 0
    assert response.locator('a[href^="javascript"]').count() == 0
    page.get_by_role("link", name="the policy").hover()  # nothing fires on hover either
    assert page.evaluate("window.__pwned") is None

    page.get_by_role("button", name="Raw text").first.click()  # the text exactly as it came in
    raw = page.locator("[data-text-block]", has=page.locator("[data-response]")).locator("[data-raw]")
    expect(raw).to_be_visible()
    expect(raw).to_have_text(MARKDOWN_WITH_HOSTILE_HTML)
    expect(response).to_be_hidden()
    page.reload()  # the choice holds across pages
    expect(raw).to_be_visible()
    page.get_by_role("button", name="Raw text").first.click()

    context = page.locator("[data-text-block]", has_text="Context")
    expect(context.locator("[data-length]")).to_have_text("23,000 characters")
    box = context.locator("[data-rendered]")
    collapsed = box.bounding_box()["height"]
    context.get_by_role("button", name="Show all").click()
    expect(box).to_have_class("markdown clamp expanded")
    assert box.bounding_box()["height"] > collapsed * 3
    assert page.evaluate("window.__pwned") is None


def test_the_queue_shows_what_is_judged_why_and_how_it_ended(
    page: Page, database: Database, tenant: Tenant, project: dict[str, Any], admin: httpx.Client
) -> None:
    reviews = admin.get("/api/v1/hitl/reviews", params={"project_id": project["id"]}).json()["reviews"]
    credit = next(r for r in reviews if "credit limit" in r["query"])
    admin.post(
        f"/api/v1/hitl/reviews/{credit['id']}/feedback",
        json={"classification": "compliant", "reasoning": "Fine.", "reviewer": "ana@bank.example"},
    ).raise_for_status()
    page.goto(login_link(database, tenant))
    page.goto(f"/projects/{project['id']}/queue")
    row = page.locator("tbody tr", has_text="guaranteed returns")
    expect(row.locator("[data-excerpt]")).to_have_text("It is a popular product.")
    expect(row.locator("[data-routing]")).to_have_text("judge said ambiguous")

    page.get_by_label("Search").fill("popular")
    page.get_by_label("Search").press("Enter")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_contain_text("guaranteed returns")

    page.goto(f"/projects/{project['id']}/queue?status=resolved")
    expect(page.locator("tbody tr [data-resolution]")).to_have_text("compliant by ana@bank.example")
    page.get_by_label("Resolved by").select_option("memory")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr")).to_have_text("Nothing here.")
    assert page.locator("select[name=status] option", has_text="dismissed").count() == 0


def test_a_viewer_sees_no_decision_form(
    page: Page, database: Database, tenant: Tenant, project: dict[str, Any]
) -> None:
    page.goto(login_link(database, tenant, role="viewer"))
    page.goto(f"/projects/{project['id']}/queue")
    page.locator("tbody tr a").first.click()
    expect(page.locator("[data-read-only]")).to_contain_text("read-only")
    expect(page.locator("form[data-decision]")).to_have_count(0)


def test_the_decision_form_checks_tags_as_the_api_does_and_keeps_what_was_typed(
    page: Page, database: Database, tenant: Tenant, project: dict[str, Any], admin: httpx.Client
) -> None:
    page.goto(login_link(database, tenant))
    page.goto(f"/projects/{project['id']}/queue")
    page.locator("tbody tr a").first.click()
    review_url = page.url
    page.get_by_label("non_compliant").check()
    page.locator("#reasoning").fill("Promised an increase without the hard inquiry disclosure.")
    page.locator("#tags").fill("credit-limit, Bad Tag!")
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_role("alert")).to_contain_text("'Bad Tag!' is not a short slug")
    expect(page.locator("#reasoning")).to_have_value(
        "Promised an increase without the hard inquiry disclosure."
    )
    expect(page.locator("#tags")).to_have_value("credit-limit, Bad Tag!")
    expect(page.get_by_label("non_compliant")).to_be_checked()
    review_id = review_url.rsplit("/", 1)[-1]
    assert admin.get(f"/api/v1/hitl/reviews/{review_id}").json()["status"] == "pending"


def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio of two CSS rgb() colours."""

    def luminance(color: str) -> float:
        channels = [int(c) / 255 for c in color[color.index("(") + 1 : color.index(")")].split(",")[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    lighter, darker = sorted((luminance(first), luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_a_phone_in_the_dark_sees_every_page_whole(
    browser: Browser, base_url: str, database: Database, tenant: Tenant, project: dict[str, Any], backend: str
) -> None:
    context = browser.new_context(
        base_url=base_url, viewport={"width": 375, "height": 740}, color_scheme="dark", is_mobile=True
    )
    page = context.new_page()
    try:
        page.goto(login_link(database, tenant))
        review_path = None
        for path in [
            "/",
            f"/projects/{project['id']}/queue",
            f"/projects/{project['id']}/controls",
            f"/projects/{project['id']}/overview",
            f"/projects/{project['id']}/traces",
            f"/projects/{project['id']}/evaluations",
            f"/projects/{project['id']}/audit",
            f"/projects/{project['id']}/settings",
            "review",
        ]:
            if path == "review":
                page.goto(f"/projects/{project['id']}/queue")
                review_path = page.locator("tbody tr a").first.get_attribute("href")
                path = str(review_path)
            page.goto(path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"{path} is {width} px wide"
            sign_out = page.get_by_role("button", name="Sign out").bounding_box()
            assert sign_out is not None and sign_out["x"] + sign_out["width"] <= 375, path
            # Text on a background of its own (key hints, notices) stays readable in the dark.
            boxes = page.evaluate(
                """[...document.querySelectorAll('kbd, .notice, .attention')].map((el) => {
                    const style = getComputedStyle(el);
                    return [el.tagName + '.' + el.className, style.color, style.backgroundColor];
                }).filter(([, , background]) => background !== 'rgba(0, 0, 0, 0)')"""
            )
            for name, color, background in boxes:
                assert contrast(color, background) >= 4.5, (path, name, color, background)
        shot(page, "phone-dark-review", backend)
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert contrast(background, "rgb(0, 0, 0)") < 1.5  # dark
        for scheme in ("dark", "light"):
            page.emulate_media(color_scheme=scheme)
            page.locator("a.brand").focus()
            page.keyboard.press("Tab")
            page.keyboard.press("Shift+Tab")  # focus by keyboard: :focus-visible applies
            ring = page.evaluate("getComputedStyle(document.activeElement).outlineColor")
            around = page.evaluate("getComputedStyle(document.querySelector('header.top')).backgroundColor")
            assert contrast(ring, around) >= 3, (scheme, ring, around)
        favicon = httpx.get(f"{base_url}/static/favicon.svg")
        assert favicon.status_code == 200 and page.locator('link[rel="icon"]').count() == 1
    finally:
        context.close()
