"""Trustworthy memory in the reviewer UI, in a real headless Chromium: claims, memory's suggestions, a review
memory decided while a person had it open, overturning memory, and what a control did."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from casework.db.engine import Database
from casework.db.models import Control, Review
from casework.db.types import utcnow
from casework.services.reviews import MemoryDecision, settle_by_memory
from tests.support import POLICY_EVALUATOR, Tenant, enqueue, give_evidence, make_project, wait_for
from tests.web.browser import HOSTILE, login_link, shot

pytestmark = pytest.mark.storage


@pytest.fixture
def project_id(admin: httpx.Client, settled: Any) -> str:
    return make_project(admin)


@pytest.fixture
def other_page(browser: Browser, base_url: str, database: Database, tenant: Tenant) -> Iterator[Page]:
    """A second person (the tenant's admin) in a browser of their own, signed in."""
    context = browser.new_context(base_url=base_url)
    page = context.new_page()
    page.goto(login_link(database, tenant, role="admin"))
    yield page
    context.close()


def review(admin: httpx.Client, review_id: str) -> dict[str, Any]:
    found: dict[str, Any] = admin.get(f"/api/v1/hitl/reviews/{review_id}").json()
    return found


def write_control(admin: httpx.Client, project_id: str, classification: str, reasoning: str) -> str:
    response = admin.post(
        "/api/v1/controls",
        json={
            "project_id": project_id,
            "evaluator_type": "policy-adherence",
            "classification": classification,
            "reasoning": reasoning,
            "reviewer": "expert@bank.example",
        },
    )
    assert response.status_code == 201, response.text
    control_id: str = response.json()["id"]
    return control_id


def memory_concludes(
    database: Database,
    review_id: str,
    classification: str,
    *,
    confidence: float,
    calibrated: bool = True,
    decides_alone: bool = False,
    control_id: str | None = None,
    explanation: str | None = None,
) -> str:
    """What the memory pass does with its conclusion: resolve the review, or attach it as a suggestion. The
    control votes with what it says (memory settles nothing on a vote its control no longer backs)."""
    votes = []
    if control_id:
        with database.transaction(write=False) as session:
            said = session.get_one(Control, control_id).classification
        votes = [{"control_id": control_id, "score": confidence, "classification": said}]
    decision = MemoryDecision(
        classification,
        confidence,
        confidence,
        explanation or f"Like the precedent: {classification}.",
        votes,
        decides_alone=decides_alone,
        calibrated=calibrated,
    )
    with database.transaction() as session:
        return settle_by_memory(session, review_id=review_id, decision=decision)


def claim_runs_out(database: Database, review_id: str) -> None:
    """As when a reviewer's laptop slept with the page open: the claim expired, memory may decide."""
    with database.transaction() as session:
        session.get_one(Review, review_id).claim_expires_at = utcnow() - timedelta(minutes=1)


def test_opening_a_review_claims_it_others_see_who_and_next_skips_it(
    page: Page,
    other_page: Page,
    database: Database,
    tenant: Tenant,
    admin: httpx.Client,
    project_id: str,
    backend: str,
) -> None:
    first, second, third = (enqueue(admin, project_id, query=f"Question {i}")["id"] for i in range(3))
    page.goto(login_link(database, tenant))
    page.goto(f"/reviews/{first}")
    expect(page.get_by_role("group", name="Your decision")).to_be_visible()
    claimed = review(admin, first)
    assert claimed["claimed_by"].startswith(f"reviewer@{tenant.name}")
    assert claimed["claim_expires_at"]

    other_page.goto(f"/reviews/{first}")
    notice = other_page.locator("[data-claimed-by]")
    expect(notice).to_contain_text(f"reviewer@{tenant.name} is deciding this (until")
    assert review(admin, first)["claimed_by"] == claimed["claimed_by"]  # no claim taken over
    shot(other_page, "review-claimed", backend)

    # The second person's queue says who has it open, and goes around it.
    other_page.goto(f"/projects/{project_id}/queue")
    expect(other_page.locator("[data-deciding]")).to_have_count(1)
    expect(other_page.locator(f'tr[data-href="/reviews/{first}"] [data-deciding]')).to_have_text(
        f"reviewer@{tenant.name} is deciding this"
    )
    other_page.goto(f"/reviews/{second}")
    expect(other_page.locator("[data-prev]")).to_have_count(0)
    expect(other_page.locator("[data-next]")).to_have_attribute("href", f"/reviews/{third}")
    other_page.locator('[data-option="1"]').check()
    other_page.locator("#reasoning").fill("Fine: offered to look into it.")
    other_page.get_by_role("button", name="Submit").click()
    other_page.wait_for_url(f"**/reviews/{third}")

    # Leaving the page without deciding lets the claim go.
    page.goto("/")
    wait_for(lambda: review(admin, first)["claimed_by"] is None, message="the claim was not released")


def test_memory_s_suggestion_is_shown_pre_selected_only_when_strong_and_accepted_with_one_key(
    page: Page, database: Database, tenant: Tenant, admin: httpx.Client, project_id: str, settled: Any
) -> None:
    control_id = write_control(admin, project_id, "compliant", "Offering to look into a limit is fine.")
    strong, weak, raw = (enqueue(admin, project_id, query=f"Question {i}")["id"] for i in range(3))
    settled()  # the memory pass has had its say; what follows is what it would conclude
    assert (
        memory_concludes(database, strong, "compliant", confidence=0.91, control_id=control_id) == "suggested"
    )
    memory_concludes(database, weak, "non_compliant", confidence=0.7, control_id=control_id)
    memory_concludes(database, raw, "non_compliant", confidence=0.95, calibrated=False)

    page.goto(login_link(database, tenant))
    page.goto(f"/reviews/{strong}")
    suggestion = page.locator("[data-suggestion]")
    expect(suggestion).to_contain_text("compliant, confidence 0.91")
    expect(suggestion).to_contain_text("(calibrated)")
    expect(suggestion).to_contain_text("Like the precedent: compliant.")
    expect(suggestion.get_by_role("link")).to_have_attribute("href", f"/controls/{control_id}")
    expect(page.locator('[data-option="1"]')).to_be_checked()

    page.goto(f"/reviews/{weak}")
    expect(page.locator("[data-suggestion]")).to_contain_text("non_compliant, confidence 0.70")
    expect(page.locator("input[name=classification]:checked")).to_have_count(0)

    page.goto(f"/reviews/{raw}")
    expect(page.locator("[data-suggestion]")).to_contain_text("(raw vote score)")
    expect(page.locator("input[name=classification]:checked")).to_have_count(0)
    page.keyboard.press("a")
    expect(page.locator('[data-option="2"]')).to_be_checked()
    expect(page.locator("#reasoning")).to_be_focused()
    # Memory's reasoning is offered, selected: Ctrl+Enter keeps it, typing replaces it.
    expect(page.locator("#reasoning")).to_have_value("Agree with memory: Like the precedent: non_compliant.")
    page.keyboard.type("Promising returns breaks the policy.")
    page.keyboard.press("Control+Enter")
    page.wait_for_url(lambda url: raw not in url)
    assert review(admin, raw)["resolution"]["classification"] == "non_compliant"
    page.keyboard.press("?")
    expect(page.locator("#shortcuts")).to_contain_text("accept memory's suggestion")


def test_a_suggestion_that_arrives_while_the_review_is_open_appears_and_the_queue_marks_it(
    page: Page, database: Database, tenant: Tenant, admin: httpx.Client, project_id: str, settled: Any
) -> None:
    waiting, other = (enqueue(admin, project_id, query=f"Question {i}")["id"] for i in range(2))
    settled()
    page.goto(login_link(database, tenant))
    page.goto(f"/reviews/{waiting}")
    expect(page.get_by_role("group", name="Your decision")).to_be_visible()
    expect(page.locator("[data-suggestion]")).to_have_count(0)
    page.locator("#reasoning").fill("Still reading")

    # A colleague's decision on a look-alike: the memory pass attaches its suggestion to the open review.
    control_id = write_control(admin, project_id, "non_compliant", "Promising returns breaks the policy.")
    memory_concludes(database, waiting, "non_compliant", confidence=0.7, control_id=control_id)
    memory_concludes(database, other, "non_compliant", confidence=0.64, control_id=control_id)
    suggestion = page.locator("[data-suggestion]")
    expect(suggestion).to_contain_text("non_compliant, confidence 0.70")  # without a reload
    expect(suggestion.get_by_role("link")).to_have_attribute("href", f"/controls/{control_id}")
    expect(page.locator("input[name=classification]:checked")).to_have_count(
        0
    )  # not strong: not pre-selected
    expect(page.locator("#reasoning")).to_have_value("Still reading")  # what was typed stays
    page.locator("#reasoning").blur()
    page.keyboard.press("a")
    expect(page.locator('[data-option="2"]')).to_be_checked()
    expect(page.locator("label.option").nth(1)).to_contain_text("memory's suggestion")

    page.goto(f"/projects/{project_id}/queue")
    expect(page.locator(f'tr[data-href="/reviews/{other}"] [data-queue-suggestion]')).to_have_text(
        "memory suggests non_compliant 0.64"
    )


def test_typed_reasoning_survives_memory_deciding_while_the_page_is_open(
    page: Page,
    database: Database,
    tenant: Tenant,
    admin: httpx.Client,
    project_id: str,
    settled: Any,
    backend: str,
) -> None:
    control_id = write_control(admin, project_id, "compliant", "Offering to look into a limit is fine.")
    overturned, agreed = (enqueue(admin, project_id, query=f"Question {i}")["id"] for i in range(2))
    settled()
    page.goto(login_link(database, tenant))

    page.goto(f"/reviews/{overturned}")
    page.keyboard.press("2")
    page.keyboard.type("The agent implied the limit would go up: a promise it cannot make.")
    claim_runs_out(database, overturned)
    assert (
        memory_concludes(
            database, overturned, "compliant", confidence=0.97, decides_alone=True, control_id=control_id
        )
        == "resolved"
    )
    page.keyboard.press("Control+Enter")
    expect(page.locator("[data-overtaken]")).to_contain_text(
        "Memory decided this review while you had it open"
    )
    expect(page.locator("[data-resolved-as]")).to_have_text("compliant")
    expect(page.locator("#reasoning")).to_have_value(
        "The agent implied the limit would go up: a promise it cannot make."
    )
    expect(page.locator('[data-overturn-form] [data-option="2"]')).to_be_checked()
    shot(page, "review-overtaken", backend)
    page.get_by_role("button", name="Overturn with my reasoning").click()
    page.wait_for_url(lambda url: overturned not in url)
    resolution = review(admin, overturned)["resolution"]
    assert (resolution["resolved_by"], resolution["classification"]) == ("human", "non_compliant")
    assert resolution["reasoning"] == "The agent implied the limit would go up: a promise it cannot make."
    history = admin.get(f"/api/v1/hitl/reviews/{overturned}/decisions").json()["decisions"]
    assert [(d["by"], d["status"]) for d in history] == [("memory", "overturned"), ("human", "current")]

    page.goto(f"/reviews/{agreed}")
    page.keyboard.press("2")
    page.keyboard.type("Looks wrong to me at first sight.")
    claim_runs_out(database, agreed)
    memory_concludes(
        database, agreed, "compliant", confidence=0.97, decides_alone=True, control_id=control_id
    )
    page.keyboard.press("Control+Enter")
    expect(page.locator("#reasoning")).to_have_value("Looks wrong to me at first sight.")
    page.get_by_role("button", name="Agree (compliant)").click()
    page.wait_for_url(lambda url: agreed not in url)
    history = admin.get(f"/api/v1/hitl/reviews/{agreed}/decisions").json()["decisions"]
    assert [(d["by"], d["status"], d["classification"]) for d in history] == [
        ("memory", "confirmed", "compliant"),
        ("human", "current", "compliant"),
    ]


def test_a_person_overturns_memory_from_a_resolved_review_s_page(
    page: Page, database: Database, tenant: Tenant, admin: httpx.Client, project_id: str, settled: Any
) -> None:
    control_id = write_control(admin, project_id, "compliant", "Offering to look into a limit is fine.")
    decided = enqueue(admin, project_id)["id"]
    settled()
    memory_concludes(
        database, decided, "compliant", confidence=0.97, decides_alone=True, control_id=control_id
    )
    page.goto(login_link(database, tenant))
    page.goto(f"/reviews/{decided}")
    expect(page.get_by_role("heading", name="Resolved by memory")).to_be_visible()
    form = page.locator("[data-overturn-form]")
    expect(form.get_by_role("group")).to_contain_text("Overturn memory's decision")
    page.keyboard.press("2")
    page.locator("#reasoning").fill("A promise of a higher limit: not compliant.")
    form.get_by_role("button", name="Overturn", exact=True).click()
    page.wait_for_url(lambda url: decided not in url)
    resolution = review(admin, decided)["resolution"]
    assert (resolution["resolved_by"], resolution["classification"]) == ("human", "non_compliant")
    assert resolution["control_id"] and resolution["control_id"] != control_id  # the person's own control


def test_retiring_a_control_says_how_many_reviews_re_open_and_asks_first(
    page: Page,
    database: Database,
    tenant: Tenant,
    admin: httpx.Client,
    project_id: str,
    settled: Any,
    backend: str,
) -> None:
    control_id = write_control(admin, project_id, "compliant", "Offering to look into a limit is fine.")
    ids = [enqueue(admin, project_id, query=f"Question {i}")["id"] for i in range(3)]
    settled()
    for review_id in ids[:2]:
        memory_concludes(
            database, review_id, "compliant", confidence=0.97, decides_alone=True, control_id=control_id
        )
    page.goto(login_link(database, tenant))
    page.goto(f"/controls/{control_id}")
    expect(page.locator("[data-usage-reviews]")).to_contain_text("Memory resolved 2 reviews with it")
    expect(page.locator(".resolved-reviews a")).to_have_count(2)
    expect(page.locator("[data-usage-evaluations]")).to_contain_text("It informed 0 evaluations")

    page.get_by_role("button", name="Retire").click()
    confirm = page.locator("[data-confirm-retire]")
    expect(confirm.locator("[data-reopening]")).to_contain_text(
        "the 2 reviews memory resolved with it will re-open"
    )
    assert admin.get(f"/api/v1/controls/{control_id}").json()["status"] == "active"  # asked, not done
    shot(page, "control-retire", backend)
    confirm.get_by_role("button", name="Retire and re-open 2").click()
    expect(page.locator("h1 .status")).to_have_text("retired")
    settled()
    assert [review(admin, i)["status"] for i in ids] == ["pending", "pending", "pending"]


def test_a_control_s_conflicts_are_shown_and_cleared_and_its_classification_changed(
    page: Page, database: Database, tenant: Tenant, admin: httpx.Client, project_id: str, settled: Any
) -> None:
    admin.post("/api/v1/evaluators", json={**POLICY_EVALUATOR, "project_id": project_id}).raise_for_status()
    control_id = write_control(admin, project_id, "compliant", "Offering to look into a limit is fine.")
    decided = enqueue(admin, project_id)["id"]
    settled()
    memory_concludes(
        database, decided, "compliant", confidence=0.97, decides_alone=True, control_id=control_id
    )
    admin.post(
        f"/api/v1/hitl/reviews/{decided}/feedback",
        json={
            "classification": "non_compliant",
            "reasoning": "A promise of a higher limit.",
            "reviewer": "lead@bank.example",
            "overturn": True,
        },
    ).raise_for_status()
    settled()
    page.goto(login_link(database, tenant))
    page.goto(f"/controls/{control_id}")
    attention = page.locator("[data-attention]")
    expect(attention).to_contain_text("memory decided as compliant with this control was overturned")
    expect(attention).to_contain_text("by lead@bank.example to non_compliant")
    attention.get_by_role("button", name="Clear").click()
    expect(page.locator("[data-attention]")).to_have_count(0)
    assert admin.get(f"/api/v1/controls/{control_id}").json()["attention"] == []

    page.get_by_label("Classification").select_option("non_compliant")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("h1")).to_contain_text("non_compliant")
    expect(page.locator("ol.history li").first).to_contain_text("non_compliant")
    assert admin.get(f"/api/v1/controls/{control_id}").json()["version"] == 2


def test_the_overview_shows_memory_s_evidence_per_evaluator_in_plain_words(
    page: Page,
    database: Database,
    tenant: Tenant,
    admin: httpx.Client,
    project_id: str,
    runner: Any,
    backend: str,
) -> None:
    evaluator = admin.post("/api/v1/evaluators", json={**POLICY_EVALUATOR, "project_id": project_id}).json()
    give_evidence(database, project_id, "policy-adherence", "non_compliant", 130, score=0.5)
    runner.evidence_changed(project_id, "policy-adherence")
    expected = admin.get(f"/api/v1/evaluators/{evaluator['id']}/memory").json()["memory"]["summary"]
    page.goto(login_link(database, tenant))
    page.goto(f"/projects/{project_id}/overview")
    found = page.locator('[data-evidence="policy-adherence"]')
    expect(found.locator("[data-memory-mode]")).to_have_text("resolve")
    expect(found.locator("[data-precision-target]")).to_have_text("0.97")
    summary = found.locator("[data-evidence-summary]")
    expect(summary).to_have_text(expected)  # the API's words, not a second way of saying it
    expect(summary).to_contain_text("memory decides non_compliant alone above")
    expect(summary).to_contain_text("on 130 past decisions")
    expect(summary).to_contain_text("memory only suggests compliant")
    expect(found).to_contain_text("130 past decisions measured, 100.0% of them decided alone")
    shot(page, "overview-evidence", backend)


def test_the_open_page_renews_its_claim_and_a_decision_ends_it(
    page: Page, database: Database, tenant: Tenant, admin: httpx.Client, project_id: str
) -> None:
    first, _ = (enqueue(admin, project_id, query=f"Question {i}")["id"] for i in range(2))
    page.clock.install()
    page.goto(login_link(database, tenant))
    page.goto(f"/reviews/{first}")
    expect(page.get_by_role("group", name="Your decision")).to_be_visible()
    opened = review(admin, first)["claim_expires_at"]
    page.clock.run_for(3 * 60 * 1000 + 1000)  # the page's timer: a renewal is due every three minutes
    wait_for(lambda: review(admin, first)["claim_expires_at"] > opened, message="the claim was not renewed")
    assert review(admin, first)["claimed_by"].startswith(f"reviewer@{tenant.name}")
    page.keyboard.press("1")
    page.keyboard.type("Fine.")
    page.keyboard.press("Control+Enter")
    page.wait_for_url(lambda url: first not in url)
    decided = review(admin, first)
    assert decided["status"] == "resolved" and decided["claimed_by"] is None


@pytest.fixture
def reviewer(database: Database, tenant: Tenant) -> Iterator[httpx.Client]:
    """The tenant's reviewer signed in, without a browser (what a page without JavaScript can do)."""
    with httpx.Client(base_url=tenant.base_url, headers={"accept": "text/html"}, timeout=30) as client:
        assert client.get(login_link(database, tenant)).status_code == 303
        yield client


def test_claim_renewal_and_release_need_the_page_s_csrf_token(
    reviewer: httpx.Client, admin: httpx.Client, project_id: str
) -> None:
    review_id = enqueue(admin, project_id)["id"]
    opened = reviewer.get(f"/reviews/{review_id}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', opened.text)
    assert csrf is not None
    assert review(admin, review_id)["claimed_by"] is not None
    assert reviewer.post(f"/reviews/{review_id}/release", data={"csrf": "forged"}).status_code == 403
    assert review(admin, review_id)["claimed_by"] is not None
    seen = re.search(r'data-until="([^"]+)"', opened.text)
    assert seen is not None and seen.group(1) == review(admin, review_id)["claim_expires_at"]
    renewed = reviewer.post(f"/reviews/{review_id}/claim", data={"csrf": csrf.group(1)})
    assert renewed.status_code == 200
    until = renewed.json()["claim_expires_at"]
    assert until == review(admin, review_id)["claim_expires_at"] and until > seen.group(1)
    # A page left after the claim was renewed elsewhere (a reload: the new page claimed first) lets nothing go.
    stale = {"csrf": csrf.group(1), "until": seen.group(1)}
    assert reviewer.post(f"/reviews/{review_id}/release", data=stale).status_code == 204
    assert review(admin, review_id)["claimed_by"] is not None
    current = {"csrf": csrf.group(1), "until": until}
    assert reviewer.post(f"/reviews/{review_id}/release", data=current).status_code == 204
    assert review(admin, review_id)["claimed_by"] is None


def test_a_viewer_opening_a_review_claims_nothing(
    database: Database, tenant: Tenant, admin: httpx.Client, project_id: str
) -> None:
    review_id = enqueue(admin, project_id)["id"]
    with httpx.Client(base_url=tenant.base_url, headers={"accept": "text/html"}, timeout=30) as viewer:
        assert viewer.get(login_link(database, tenant, role="viewer")).status_code == 303
        opened = viewer.get(f"/reviews/{review_id}")
    assert opened.status_code == 200
    assert "data-read-only" in opened.text
    assert review(admin, review_id)["claimed_by"] is None


def test_memory_s_explanation_is_shown_as_text_never_run(
    page: Page, database: Database, tenant: Tenant, admin: httpx.Client, project_id: str, settled: Any
) -> None:
    control_id = write_control(admin, project_id, "compliant", HOSTILE)
    suggested, decided = (enqueue(admin, project_id, query=f"Question {i}")["id"] for i in range(2))
    settled()
    memory_concludes(
        database, suggested, "compliant", confidence=0.9, control_id=control_id, explanation=HOSTILE
    )
    memory_concludes(
        database,
        decided,
        "compliant",
        confidence=0.97,
        decides_alone=True,
        control_id=control_id,
        explanation=HOSTILE,
    )
    page.goto(login_link(database, tenant))
    for path, shown in [
        (f"/reviews/{suggested}", "[data-suggestion] .explanation"),
        (f"/reviews/{decided}", "[data-resolution] .markdown"),
    ]:
        page.goto(path)
        expect(page.locator(shown)).to_contain_text("window.__pwned = 1")
        # Shown as text: no element was made of it, so there is nothing that could run.
        assert page.locator("main img, main script").count() == 0
        assert page.evaluate("window.__pwned") is None
