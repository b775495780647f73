"""The web UI's defences: security headers, errors as pages, sign-in links that respect revocation, and a
readiness probe that tells strangers nothing about the database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from casework.api.access_log import redact_query
from casework.app import create_app
from casework.config import Settings
from casework.db.engine import Database
from casework.db.models import LoginToken
from casework.evaluators.judge import LLMJudge
from casework.services import auth, web_pages
from casework.services.auth import hash_secret
from casework.services.web_auth import create_login_link_token
from tests.support import Tenant

TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "casework" / "web" / "templates"


@contextmanager
def signed_in(
    database: Database, tenant: Tenant, role: str = "reviewer", label: str | None = None
) -> Iterator[httpx.Client]:
    """A browser-like client, signed in to the web UI as the tenant's key of ``role`` (or the key ``label``)."""
    with database.transaction() as session:
        token = create_login_link_token(session, key_label=label or f"{role}@{tenant.name}")
    with httpx.Client(base_url=tenant.base_url, headers={"accept": "text/html"}, timeout=30) as client:
        assert client.get(f"/login?token={token}").status_code == 303
        yield client


@pytest.mark.storage
def test_every_response_carries_the_security_headers(base_url: str) -> None:
    for path in ("/login", "/static/app.js", "/docs", "/healthz", "/api/v1/projects"):
        headers = httpx.get(f"{base_url}{path}").headers
        policy = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy
        script_src = next(p for p in policy.split(";") if p.strip().startswith("script-src"))
        assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"


def test_templates_have_no_inline_script_or_handlers() -> None:
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), template.name
        assert not re.search(r"\son[a-z]+\s*=", text), template.name
        assert "style=" not in text, template.name


@pytest.mark.storage
def test_a_server_error_on_a_page_is_an_error_page(
    database: Database, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(web_pages, "projects_page", broken)
    with signed_in(database, tenant) as browser:
        reply = browser.get("/")
    assert reply.status_code == 500
    assert reply.headers["content-type"].startswith("text/html")
    assert "Something is wrong" in reply.text and "internal_error" in reply.text
    assert "frame-ancestors 'none'" in reply.headers["content-security-policy"]


@pytest.mark.storage
def test_a_sign_in_link_of_a_revoked_key_fails_and_is_not_used_up(database: Database, tenant: Tenant) -> None:
    with database.transaction() as session:
        token = create_login_link_token(session, key_label=f"reviewer@{tenant.name}")
        key_id = session.execute(
            select(LoginToken.api_key_id).where(LoginToken.token_hash == hash_secret(token))
        ).scalar_one()
        auth.revoke_key(session, key_id=key_id)
    reply = httpx.get(f"{tenant.base_url}/login?token={token}")
    assert reply.status_code == 401
    assert "revoked" in reply.text
    assert "set-cookie" not in reply.headers or "casework_session" not in reply.headers["set-cookie"]
    with database.transaction(write=False) as session:
        used_at = session.execute(
            select(LoginToken.used_at).where(LoginToken.token_hash == hash_secret(token))
        ).scalar_one()
    assert used_at is None


def test_readiness_does_not_tell_strangers_where_the_database_is(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        database_url="postgresql://casework@127.0.0.1:1/secret_ledger_db",
        embedded_worker=False,
    )
    app = create_app(settings)
    try:
        reply = TestClient(app).get("/readyz")  # no lifespan: nothing but the probe runs
    finally:
        app.state.database.dispose()
    assert reply.status_code == 503
    assert reply.json()["error"]["code"] == "database_unreachable"
    assert "secret_ledger_db" not in reply.text and "127.0.0.1" not in reply.text


def test_query_strings_are_logged_without_their_values() -> None:
    assert redact_query("/login?token=s3cret&next=/x") == "/login?token=…&next=…"
    assert redact_query("/api/v1/projects") == "/api/v1/projects"


def test_the_favicon_is_served_where_browsers_ask_for_it(tmp_path: Path) -> None:
    """Browsers ask for /favicon.ico on every page, whatever the page links: no 404, cached, no sign-in."""
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'unused.db'}")
    app = create_app(settings, judge=LLMJudge(None))
    try:
        reply = TestClient(app).get("/favicon.ico")  # no lifespan, no database: nothing but the route runs
    finally:
        app.state.database.dispose()
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("image/svg+xml")
    assert "max-age=" in reply.headers["cache-control"]
    assert reply.content == (TEMPLATES.parent / "static" / "favicon.svg").read_bytes()
