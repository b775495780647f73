"""Authenticating webhooks from tools that sign with a shared secret (ServiceNow, Zendesk, Jira Automation)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timezone

from casework.errors import Unauthenticated

REPLAY_WINDOW_SECONDS = 300


def check_token_or_hmac(headers: Mapping[str, str], body: bytes, secret: str, tool: str) -> None:
    """Accept ``X-Casework-Token: <secret>`` or ``X-Casework-Signature: sha256=<hex HMAC-SHA256 of the body>``."""
    token = headers.get("x-casework-token", "")
    signature = headers.get("x-casework-signature", "")
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if (token and hmac.compare_digest(token.encode(), secret.encode())) or (
        signature and hmac.compare_digest(signature, expected)
    ):
        return
    raise Unauthenticated(
        f"The {tool} request's X-Casework-Token or X-Casework-Signature does not match its secret."
    )


def check_timestamped_hmac(
    signature: str, timestamp: str, body: bytes, secret: str, tool: str, now: datetime | None = None
) -> None:
    """Zendesk's scheme: base64 HMAC-SHA256 of timestamp + body, refused when the timestamp is more than five
    minutes away (so a captured request cannot be replayed later)."""
    expected = base64.b64encode(
        hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    ).decode()
    if not signature or not hmac.compare_digest(signature, expected):
        raise Unauthenticated(f"The {tool} webhook's signature does not match its signing secret.")
    try:
        sent = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        raise Unauthenticated(f"The {tool} webhook's timestamp {timestamp!r} cannot be read.") from None
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=timezone.utc)
    if abs(((now or datetime.now(timezone.utc)) - sent).total_seconds()) > REPLAY_WINDOW_SECONDS:
        raise Unauthenticated(
            f"The {tool} webhook is more than 5 minutes old (or from the future): refused as a replay."
        )
