"""The review page with hostile data behind it, read over plain HTTP (no browser needed): it never shows another
workspace's controls, whatever a review's metadata names, and it renders span trees of any depth."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from casework.db.engine import Database
from casework.services.web_auth import create_login_link_token
from tests.support import Tenant, enqueue, make_project
from tests.tracing.test_span_trees import chain
from tests.tracing.test_untrusted_exports import TRACE_ID, export

pytestmark = pytest.mark.storage


@pytest.fixture
def browser(database: Database, tenant: Tenant) -> Iterator[httpx.Client]:
    """A signed-in browser session of the tenant's reviewer."""
    with database.transaction() as session:
        token = create_login_link_token(session, key_label=f"reviewer@{tenant.name}")
    with httpx.Client(base_url=tenant.base_url, headers={"accept": "text/html"}, timeout=30) as client:
        assert client.get("/login", params={"token": token}).status_code == 303
        yield client


def write_control(client: httpx.Client, project_id: str, reasoning: str) -> str:
    response = client.post(
        "/api/v1/controls",
        json={
            "project_id": project_id,
            "evaluator_type": "policy-adherence",
            "classification": "compliant",
            "reasoning": reasoning,
            "reviewer": "expert@bank.example",
        },
    )
    assert response.status_code == 201, response.text
    control_id: str = response.json()["id"]
    return control_id


def test_memories_named_in_metadata_are_shown_only_from_the_review_s_own_project(
    browser: httpx.Client, admin: httpx.Client, other_tenant: Tenant
) -> None:
    project_id = make_project(admin)
    own = write_control(admin, project_id, "Our own precedent, seen by the judge.")
    with other_tenant.client() as other:
        secret = write_control(
            other, make_project(other, "theirs"), "Another workspace's confidential reasoning."
        )
    review = enqueue(admin, project_id, metadata={"memory_control_ids": [own, secret]})
    page = browser.get(f"/reviews/{review['id']}")
    assert page.status_code == 200
    assert "Our own precedent" in page.text
    assert "confidential reasoning" not in page.text
    assert secret not in page.text


@pytest.mark.parametrize(
    "memory_control_ids", [7, "ctl_x", {"id": "ctl_x"}, [{"id": "ctl_x"}, 3, None, ["ctl_x"]], [True]]
)
def test_malformed_memory_ids_in_metadata_do_not_break_the_page(
    browser: httpx.Client, admin: httpx.Client, memory_control_ids: Any
) -> None:
    project_id = make_project(admin)
    review = enqueue(admin, project_id, metadata={"memory_control_ids": memory_control_ids})
    page = browser.get(f"/reviews/{review['id']}")
    assert page.status_code == 200, page.text[:300]
    assert "No prior expert reviews." in page.text


def test_a_review_on_a_1000_deep_span_tree_renders(browser: httpx.Client, admin: httpx.Client) -> None:
    project_id = make_project(admin)
    spans = chain(1000)
    assert admin.post("/v1/traces", json=export(project_id, spans)).status_code == 200
    review = enqueue(admin, project_id, trace_id=TRACE_ID, span_id=spans[-1]["spanId"])
    page = browser.get(f"/reviews/{review['id']}")
    assert page.status_code == 200, page.text[:300]
    assert page.text.count("<summary>") == 1000


def test_a_decision_with_a_nul_in_its_reasoning_is_refused_on_both_databases(
    browser: httpx.Client, admin: httpx.Client
) -> None:
    project_id = make_project(admin)
    review = enqueue(admin, project_id)
    page = browser.get(f"/reviews/{review['id']}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    decided = browser.post(
        f"/reviews/{review['id']}/decide",
        data={"classification": "compliant", "reasoning": "Fine\x00.", "csrf": csrf.group(1)},
    )
    assert decided.status_code == 422, decided.text[:300]
    assert "NUL" in decided.text
    assert admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()["status"] == "pending"


@pytest.mark.parametrize(
    "form",
    [
        {"classification": "compliant", "tags": "credit-limit, Bad Tag!"},  # the API's tag rule refuses it
        {"classification": "", "tags": "credit-limit"},  # no choice made
    ],
)
def test_a_refused_decision_keeps_the_reasoning_out_of_every_url(
    browser: httpx.Client, admin: httpx.Client, form: dict[str, str]
) -> None:
    """What a reviewer typed comes back in the page, never in a URL: a redirect's Location lands in browser
    history, and every URL asked for lands in the access log."""
    reasoning = "Told the customer about account 4471 without checking identity."
    project_id = make_project(admin)
    review = enqueue(admin, project_id)
    page = browser.get(f"/reviews/{review['id']}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    asked: list[str] = []
    locations: list[str] = []
    browser.event_hooks["request"].append(lambda request: asked.append(str(request.url)))
    browser.event_hooks["response"].append(lambda reply: locations.append(reply.headers.get("location", "")))
    decided = browser.post(
        f"/reviews/{review['id']}/decide",
        data={**form, "reasoning": reasoning, "csrf": csrf.group(1)},
        follow_redirects=True,
    )
    assert decided.status_code == 422, decided.text[:300]
    assert 'role="alert"' in decided.text
    assert f">{reasoning}</textarea>" in decided.text and form["tags"].replace("!", "") in decided.text
    assert not any("4471" in url for url in asked + locations), (asked, locations)
    assert admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()["status"] == "pending"
