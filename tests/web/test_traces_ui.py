"""The engineer's pages in a real headless Chromium: traces, spans, sessions, evaluations."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from casework.db.engine import Database
from tests.support import POLICY_EVALUATOR, Tenant
from tests.web.browser import login_link, shot

pytestmark = pytest.mark.storage


def otlp_span(trace_id: str, span_id: str, parent: str | None, name: str, **fields: Any) -> dict[str, Any]:
    """An OTLP/JSON span starting ``fields['start_ms']`` into a fixed second, with string attributes."""
    start = 1_700_000_000_000_000_000 + fields.get("start_ms", 0) * 1_000_000
    attributes = [{"key": k, "value": {"stringValue": v}} for k, v in fields.get("attributes", {}).items()]
    return {
        "traceId": trace_id,
        "spanId": span_id,
        **({"parentSpanId": parent} if parent else {}),
        "name": name,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + fields.get("duration_ms", 10) * 1_000_000),
        "attributes": attributes,
        **({"status": {"code": 2, "message": fields["error"]}} if "error" in fields else {}),
    }


def chat_turn(question: str, answer: str) -> dict[str, str]:
    return {
        "openinference.span.kind": "LLM",
        "session.id": "chat-9",
        "llm.model_name": "gpt-4o-mini",
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": "You are a bank agent.",
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.content": question,
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": answer,
    }


def test_an_engineer_follows_a_trace_to_its_session_and_the_judges_exact_prompts(
    page: Page, database: Database, tenant: Tenant, admin: httpx.Client, backend: str
) -> None:
    project = admin.post("/api/v1/projects", json={"name": "traced"}).json()
    admin.post("/api/v1/evaluators", json={**POLICY_EVALUATOR, "project_id": project["id"]})
    conversation, failed = "5bf92f3577b34da6a3ce929d0e0e4736", "6bf92f3577b34da6a3ce929d0e0e4736"
    spans = [
        otlp_span(conversation, "10f067aa0ba902b1", None, "agent", duration_ms=1000),
        otlp_span(
            conversation,
            "10f067aa0ba902b2",
            "10f067aa0ba902b1",
            "ChatCompletion",
            start_ms=100,
            duration_ms=300,
            attributes=chat_turn("Can I raise my **limit**?", "Yes, at once."),
        ),
        otlp_span(
            conversation,
            "10f067aa0ba902b3",
            "10f067aa0ba902b1",
            "ChatCompletion",
            start_ms=500,
            duration_ms=400,
            attributes=chat_turn("Are returns guaranteed?", "Mostly."),
        ),
        otlp_span(failed, "20f067aa0ba902b1", None, "lookup", error="account service timed out"),
    ]
    resource = {"attributes": [{"key": "casework.project_id", "value": {"stringValue": project["id"]}}]}
    body = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]}
    assert admin.post("/v1/traces", json=body).status_code == 200
    deadline = time.monotonic() + 20
    while admin.get("/api/v1/jobs/counts", params={"project_id": project["id"]}).json()["done"] < 2:
        assert time.monotonic() < deadline, "the two interactions were not evaluated"
        time.sleep(0.05)

    page.goto(login_link(database, tenant))
    page.goto(f"/projects/{project['id']}/traces")
    expect(page.locator("tbody tr")).to_have_count(2)
    page.get_by_label("with errors").check()
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_contain_text("lookup")
    page.goto(f"/projects/{project['id']}/traces?min_ms=500")
    expect(page.locator("tbody tr")).to_have_count(1)
    page.get_by_role("link", name="agent").click()

    rows = page.locator("[data-spans] tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(1).locator("td").first).to_have_class("depth-1")  # a child of the agent span
    turn = page.locator('[data-span="10f067aa0ba902b2"]')
    expect(turn.locator("[data-messages] li")).to_have_count(3)  # system, user, the assistant's answer
    expect(turn.locator("[data-messages] strong")).to_have_text("limit")  # Markdown, formatted
    expect(turn).to_contain_text("gpt-4o-mini")
    rect = turn.locator("svg.waterfall rect")
    assert (rect.get_attribute("x"), rect.get_attribute("width")) == ("100.0", "300.0")
    expect(turn.locator("[data-evaluations] li")).to_contain_text("policy-adherence")
    shot(page, "trace", backend)
    trace_url = page.url

    page.get_by_role("link", name="chat-9").click()
    expect(page.locator("[data-turns] > li")).to_have_count(2)
    session_url = page.url
    expect(page.locator("[data-turns] > li").first).to_contain_text("Can I raise my limit?")
    page.locator("[data-turns] > li").last.locator("[data-evaluations] a").first.click()

    first = page.locator('[data-judge-call="evaluation"]')
    expect(first.locator("[data-prompt]").last).to_contain_text(
        "Customer message: Are returns guaranteed?\nAgent response: Mostly."
    )
    expect(first.locator("[data-answer]")).to_contain_text('"classification": "ambiguous"')
    again = page.locator('[data-judge-call="reevaluation"]')  # ambiguous: judged again, with memories
    expect(again.locator("[data-prompt]").last).to_contain_text("No prior expert reviews.")
    shot(page, "evaluation", backend)
    evaluation_url = page.url

    page.goto(f"/projects/{project['id']}/evaluations?ambiguous=yes")
    expect(page.locator("tbody tr")).to_have_count(2)
    page.get_by_label("Re-evaluated").select_option("no")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr")).to_have_text("No evaluations match.")

    # On a phone, the engineer's detail pages fit the screen (long attribute names and ids wrap).
    page.set_viewport_size({"width": 375, "height": 740})
    for url in (trace_url, session_url, evaluation_url):
        page.goto(url)
        width = page.evaluate("document.documentElement.scrollWidth")
        offenders = page.evaluate(
            "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 376).slice(0, 12).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"
        )
        assert width <= 375, f"{url} is {width} px wide: {offenders}"
