"""The admin page: every integration with its last deliveries and errors, and a "send a test" button."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from casework.db.engine import Database
from casework.services.web_auth import create_login_link_token
from tests.fakes.slack import CHANNEL, SIGNING_SECRET, TOKEN, FakeSlack
from tests.fakes.teams import FakeTeams
from tests.integrations.conftest import register
from tests.support import Tenant, enqueue, make_project, wait_for

pytestmark = pytest.mark.storage


@contextmanager
def signed_in(database: Database, tenant: Tenant, base_url: str, role: str) -> Iterator[httpx.Client]:
    with database.transaction() as session:
        token = create_login_link_token(session, key_label=f"{role}@{tenant.name}")
    with httpx.Client(base_url=base_url, headers={"accept": "text/html"}, timeout=30) as browser:
        assert browser.get(f"/login?token={token}").status_code == 303
        yield browser


def test_the_page_lists_deliveries_and_errors_and_sends_a_test(
    admin: httpx.Client, tenant: Tenant, database: Database, base_url: str, slack: FakeSlack, teams: FakeTeams
) -> None:
    config: dict[str, Any] = {
        "bot_token": TOKEN,
        "signing_secret": SIGNING_SECRET,
        "channel": CHANNEL,
        "api_base_url": f"{slack.base_url}/api/",
    }
    good = register(admin, "slack", config, name="Compliance channel")
    broken = register(
        admin, "teams", {"webhook_url": f"{teams.base_url}/webhookb2/removed"}, name="Old Teams"
    )
    review = enqueue(admin, make_project(admin))
    wait_for(lambda: slack.message_for(review["id"]))
    wait_for(
        lambda: (
            admin.get(f"/api/v1/integrations/{broken['id']}/deliveries").json()["deliveries"][0]["status"]
            == "failed"
        )
    )

    with signed_in(database, tenant, base_url, "admin") as browser:
        page = browser.get("/integrations")
        assert page.status_code == 200
        html = page.text
        assert "Compliance channel" in html and "Old Teams" in html
        assert f"/api/v1/integrations/{good['id']}/inbound" in html
        assert "answered 404" in html and f"/reviews/{review['id']}" in html
        assert TOKEN not in html and SIGNING_SECRET not in html
        csrf = re.search(r'name="csrf" value="([^"]+)"', html)
        assert csrf is not None
        sent = browser.post(f"/integrations/{good['id']}/test", data={"csrf": csrf.group(1)})
        assert sent.status_code == 303 and sent.headers["location"] == "/integrations?sent=1"
        wait_for(
            lambda: any("A test message from Casework" in str(m["text"]) for m in slack.messages.values())
        )
        refused = browser.post(f"/integrations/{good['id']}/test", data={"csrf": "stale"})
        assert refused.status_code == 403

    with signed_in(database, tenant, base_url, "reviewer") as reviewer:
        assert reviewer.get("/integrations").status_code == 403
        assert "/integrations" not in reviewer.get("/").text
