"""Microsoft Teams: new reviews, decisions and the daily digest posted as Adaptive Cards to an incoming webhook
or a Workflows ("Post to a channel when a webhook request is received") URL, each with a link that opens the
review in Casework.

Deciding inside Teams is not offered: buttons that call back into an app (Action.Submit, Action.Execute) need a
bot registered with the Azure Bot Service and installed in the team; webhooks and Workflows only post. The link
opens the review in Casework, where it is decided in a few keys.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import Field

from casework.errors import BadRequest
from casework.integrations import messages
from casework.integrations.base import (
    REVIEW_EVENTS,
    Decide,
    Inbound,
    IntegrationConfig,
    Outgoing,
    Reply,
    Sent,
    Stopwatch,
    call,
    from_response,
)

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"


class TeamsConfig(IntegrationConfig):
    SECRETS = frozenset({"webhook_url"})
    URLS = frozenset({"webhook_url"})

    webhook_url: str = Field(
        min_length=8,
        description="The channel's incoming webhook or Workflows URL (it is a secret: it carries a key).",
    )
    digest: bool = Field(default=True, description="Post a daily digest: pending, oldest, overdue.")


def _card(body: list[dict[str, Any]], url: str, label: str) -> dict[str, Any]:
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "actions": [{"type": "Action.OpenUrl", "title": label, "url": url}],
    }
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
    }


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def review_card(review: dict[str, Any], url: str) -> dict[str, Any]:
    facts = [
        {"title": "Evaluator", "value": str(review.get("evaluator_type"))},
        {"title": "Judge", "value": messages.verdict(review)},
    ]
    proposed = messages.suggestion(review)
    if proposed:
        facts.append({"title": "Memory suggests", "value": proposed})
    facts.append({"title": "Waiting", "value": messages.age(review)})
    body: list[dict[str, Any]] = [
        _text("Review needed", size="Medium", weight="Bolder"),
        {"type": "FactSet", "facts": facts},
    ]
    if review.get("status") == "resolved":
        body = [_text(messages.decided(review), size="Medium", weight="Bolder")]
        reasoning = (review.get("resolution") or {}).get("reasoning")
        if reasoning:
            body.append(_text(messages.excerpt(reasoning, 500), isSubtle=True))
    body += [
        _text("Query", weight="Bolder"),
        _text(messages.excerpt(review.get("query"))),
        _text("Response", weight="Bolder"),
        _text(messages.excerpt(review.get("response"))),
    ]
    return _card(body, url, "Open in Casework")


def digest_card(payload: dict[str, Any]) -> dict[str, Any]:
    facts = [
        {"title": "Pending reviews", "value": str(payload["pending"])},
        {"title": "Oldest", "value": payload["oldest"] or "none"},
        {"title": "Overdue", "value": str(payload["overdue"])},
    ]
    body = [
        _text("Casework: today's review queue", size="Medium", weight="Bolder"),
        {"type": "FactSet", "facts": facts},
    ]
    return _card(body, payload["url"], "Open the queue")


class Teams:
    name = "teams"
    title = "Microsoft Teams"
    config: type[IntegrationConfig] = TeamsConfig
    events = frozenset({*REVIEW_EVENTS, *messages.ALERT_EVENTS})
    default_events: tuple[str, ...] = REVIEW_EVENTS

    async def send(self, out: Outgoing, http: httpx.AsyncClient) -> Sent:
        watch = Stopwatch()
        if out.action in ("open", "resolve") and out.review is not None:
            message = review_card(out.review, out.review_url)
        elif out.action == "digest":
            message = digest_card(out.payload)
        elif out.action == "alert" and out.review is not None:
            text = messages.alert(out.payload.get("type", ""), out.review)
            # A review's alert links to the review; a queue's to Casework.
            url = out.review_url if str(out.payload.get("type", "")).startswith("review.") else out.public_url
            message = _card([_text(text, weight="Bolder")], url, "Open in Casework")
        elif out.action == "test":
            message = _card(
                [_text(out.payload.get("text") or "A test message from Casework.")],
                out.public_url,
                "Open Casework",
            )
        else:
            return Sent(None, watch.ms, excerpt=f"skipped: Teams has nothing to do for {out.action}")
        label = "POST to the Teams webhook"  # its URL is a secret: never in an error
        answer = await call(http, "POST", out.secrets["webhook_url"], watch, json=message, label=label)
        return answer if isinstance(answer, Sent) else from_response(answer, watch, label=label)

    async def receive(self, request: Inbound, decide: Decide, http: httpx.AsyncClient) -> Reply:
        raise BadRequest(
            "Teams integrations only post: deciding in Teams needs a bot registration (docs/integrations/teams.md)."
        )
