"""Helpers for the browser tests: where Chromium is, screenshots, sign-in links."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page

from casework.db.engine import Database
from casework.services.web_auth import create_login_link_token
from tests.support import Tenant

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def shot(page: Page, name: str, backend: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"ui-{name}-{backend}.png"), full_page=True)


def login_link(database: Database, tenant: Tenant, role: str = "reviewer") -> str:
    with database.transaction() as session:
        return f"/login?token={create_login_link_token(session, key_label=f'{role}@{tenant.name}')}"
