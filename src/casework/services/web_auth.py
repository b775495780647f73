"""Signing in to the web UI: with an API key, or a one-time link made for one; sessions act as their key."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from casework.db.models import ApiKey, LoginToken, WebSession
from casework.db.types import utcnow
from casework.errors import ApiKeyNotFound, Unauthenticated
from casework.services.auth import Principal, Role, authenticate, hash_secret

SESSION_DAYS = 14
LINK_HOURS = 24


@dataclass(frozen=True)
class SignedIn:
    """A new session: the cookie's secret (known only now) and the session's CSRF token."""

    secret: str
    csrf_token: str


@dataclass(frozen=True)
class WebCaller:
    principal: Principal
    csrf_token: str


def create_login_link_token(
    session: Session, *, key_label: str | None = None, api_key_id: str | None = None
) -> str:
    """A one-time sign-in token for an active key (by label, the newest with it; or by id), valid 24 hours."""
    query = select(ApiKey).where(ApiKey.revoked_at.is_(None))
    if api_key_id is not None:
        query = query.where(ApiKey.id == api_key_id)
    if key_label is not None:
        query = query.where(ApiKey.label == key_label)
    api_key = session.execute(query.order_by(ApiKey.created_at.desc()).limit(1)).scalar_one_or_none()
    if api_key is None:
        raise ApiKeyNotFound(
            f"No active API key labelled {key_label!r}: see `casework keys list`.",
            details={"label": key_label, "api_key_id": api_key_id},
        )
    token = secrets.token_urlsafe(32)
    session.add(
        LoginToken(
            token_hash=hash_secret(token),
            api_key_id=api_key.id,
            expires_at=utcnow() + timedelta(hours=LINK_HOURS),
        )
    )
    return token


def redeem_login_link(session: Session, *, token: str) -> SignedIn:
    """Sign in with a one-time link. A link of a revoked key fails and is left unused: revoking a key ends
    what it may do, and a failed attempt must not look like a sign-in in the records."""
    found = session.execute(
        select(LoginToken, ApiKey.revoked_at)
        .join(ApiKey, ApiKey.id == LoginToken.api_key_id)
        .where(LoginToken.token_hash == hash_secret(token))
        .with_for_update(of=LoginToken)
    ).first()
    if found is None or found[0].used_at is not None or found[0].expires_at <= utcnow():
        raise Unauthenticated(
            "This sign-in link is not valid: it was used already or has expired. "
            "Make another with `casework login-link --key-label NAME`, or sign in with an API key."
        )
    login, revoked_at = found
    if revoked_at is not None:
        raise Unauthenticated(
            "This sign-in link belongs to an API key that was revoked. Sign in with another key.",
        )
    login.used_at = utcnow()
    return _start(session, login.api_key_id)


def sign_in_with_key(session: Session, *, secret: str) -> SignedIn:
    principal = authenticate(session, secret=secret.strip())
    if principal is None:
        raise Unauthenticated("This API key is not valid, or it was revoked.")
    return _start(session, principal.key_id)


def _start(session: Session, api_key_id: str) -> SignedIn:
    secret = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    session.add(
        WebSession(
            secret_hash=hash_secret(secret),
            api_key_id=api_key_id,
            csrf_token=csrf,
            created_at=utcnow(),
            expires_at=utcnow() + timedelta(days=SESSION_DAYS),
        )
    )
    return SignedIn(secret=secret, csrf_token=csrf)


def web_caller(session: Session, *, secret: str) -> WebCaller | None:
    """Who a session cookie signs in, or None (unknown, expired, or its key revoked)."""
    row = session.execute(
        select(ApiKey.id, ApiKey.workspace_id, ApiKey.role, ApiKey.label, WebSession.csrf_token)
        .join(WebSession, WebSession.api_key_id == ApiKey.id)
        .where(
            WebSession.secret_hash == hash_secret(secret),
            WebSession.expires_at > utcnow(),
            ApiKey.revoked_at.is_(None),
        )
    ).first()
    if row is None:
        return None
    principal = Principal(key_id=row.id, workspace_id=row.workspace_id, role=Role(row.role), label=row.label)
    return WebCaller(principal=principal, csrf_token=row.csrf_token)


def sign_out(session: Session, *, secret: str) -> None:
    session.execute(delete(WebSession).where(WebSession.secret_hash == hash_secret(secret)))
