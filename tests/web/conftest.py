"""The browser for the web UI's tests: Debian's Chromium, driven by Playwright (no browser download)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support import POLICY_EVALUATOR
from tests.web.browser import CHROMIUM, HOSTILE

# Assertions wait for their condition; on a loaded 2-core machine a page (Swagger UI's, above all) can take more
# than Playwright's default 5 s to render. A longer bound costs nothing when the page is quick.
expect.set_options(timeout=20_000)


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
    refused: list[str] = []  # what the content security policy blocked: the pages must need no exception
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    yield page
    context.close()
    assert refused == []


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
