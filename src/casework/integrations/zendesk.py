"""Zendesk: a review is attached to the customer ticket its interaction names (``zendesk.ticket_id`` in the
review's metadata or on its span) as an internal note with the verdict and a link, or opens a ticket when none is
named; the decision is added as a second internal note. A Zendesk webhook (from a trigger on an internal note
``classification: ... reasoning: ...``) sends decisions back, signed with the webhook's signing secret; a
webhook body with the ticket's ``status`` says whether it is open (solved or closed: not), and the SLA sweep pauses
a review's clock only while its ticket is open.

Calls use Zendesk's REST API directly (Zendesk publishes no official Python SDK).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from pydantic import Field

from casework.errors import BadRequest, Unauthenticated
from casework.integrations import messages
from casework.integrations.base import (
    REVIEW_EVENTS,
    Decide,
    Decision,
    Inbound,
    IntegrationConfig,
    Link,
    Outgoing,
    Reply,
    Sent,
    Stopwatch,
    basic_auth,
    call,
    from_response,
    noted,
)
from casework.integrations.jira import DEFAULT_LABELS
from casework.integrations.shared_secret import check_timestamped_hmac

# A ticket's statuses that no longer wait on anyone: its review's SLA clock runs again.
CLOSED_STATUSES = frozenset({"solved", "closed"})


class ZendeskConfig(IntegrationConfig):
    SECRETS = frozenset({"api_token", "webhook_secret"})
    URLS = frozenset({"base_url"})

    base_url: str = Field(description="https://your-subdomain.zendesk.com")
    email: str = Field(min_length=3, description="The agent the API token acts as.")
    api_token: str = Field(
        min_length=8, description="A Zendesk API token (Admin Center → Apps and integrations)."
    )
    ticket_field: str = Field(
        default="zendesk.ticket_id",
        description="Where a review names its ticket: review metadata or span attribute.",
    )
    webhook_secret: str | None = Field(default=None, description="The signing secret of the Zendesk webhook.")


def _headers(config: dict[str, Any], secrets: dict[str, str]) -> dict[str, str]:
    return {
        "authorization": basic_auth(f"{config['email']}/token", secrets["api_token"]),
        "accept": "application/json",
    }


def _url(config: dict[str, Any], path: str) -> str:
    return f"{config['base_url'].rstrip('/')}/api/v2/{path.lstrip('/')}"


def ticket_named(review: dict[str, Any], field: str) -> str | None:
    """The ticket id in the review's metadata or its span's attributes: flat (``zendesk.ticket_id``) or nested
    (``{"zendesk": {"ticket_id": ...}}``)."""
    for source in (review.get("metadata") or {}, review.get("span_attributes") or {}):
        value: Any = source.get(field)
        if value is None:
            value = source
            for part in field.split("."):
                value = value.get(part) if isinstance(value, dict) else None
        if value is not None and str(value).strip().isdigit():
            return str(value).strip()
    return None


class Zendesk:
    name = "zendesk"
    title = "Zendesk"
    config: type[IntegrationConfig] = ZendeskConfig
    events = frozenset(REVIEW_EVENTS)
    default_events: tuple[str, ...] = REVIEW_EVENTS

    async def send(self, out: Outgoing, http: httpx.AsyncClient) -> Sent:
        watch = Stopwatch()
        headers = _headers(out.config, out.secrets)
        if out.action == "open" and out.review is not None:
            review = out.review
            note = _note(review, out.review_url)
            ticket = ticket_named(review, out.config.get("ticket_field") or "zendesk.ticket_id")
            body: dict[str, Any]
            if ticket is not None:
                body = {"ticket": {"comment": {"body": note, "public": False}}}
                answer = await call(
                    http, "PUT", _url(out.config, f"tickets/{ticket}.json"), watch, json=body, headers=headers
                )
                if isinstance(answer, Sent) or not answer.is_success:
                    return answer if isinstance(answer, Sent) else from_response(answer, watch)
                return from_response(answer, watch, link=self._link(out, ticket, created=False))
            if out.attempt > 1:  # an earlier attempt may have created it before its answer was lost
                found = await call(
                    http,
                    "GET",
                    _url(out.config, "tickets.json"),
                    watch,
                    params={"external_id": review["id"]},
                    headers=headers,
                )
                if not isinstance(found, Sent) and found.is_success and found.json().get("tickets"):
                    existing = str(found.json()["tickets"][0]["id"])
                    return from_response(found, watch, link=self._link(out, existing, created=True))
            body = {
                "ticket": {
                    "subject": messages.excerpt(messages.title(review), 150),
                    "comment": {"body": note, "public": False},
                    "external_id": review["id"],
                    "tags": ["casework"],
                }
            }
            answer = await call(
                http, "POST", _url(out.config, "tickets.json"), watch, json=body, headers=headers
            )
            if isinstance(answer, Sent) or not answer.is_success:
                return answer if isinstance(answer, Sent) else from_response(answer, watch)
            return from_response(
                answer, watch, link=self._link(out, str(answer.json()["ticket"]["id"]), created=True)
            )
        if out.action in ("resolve", "reply"):
            if out.action == "resolve" and out.review is not None:
                if out.link is None:
                    return Sent(
                        None, watch.ms, excerpt="skipped: no Zendesk ticket was noted for this review"
                    )
                ticket = out.link.external_id
                resolution = out.review.get("resolution") or {}
                text = f"Casework: {messages.decided(out.review)}.\n\n{resolution.get('reasoning') or ''}\n\n{out.review_url}"
            else:
                ticket, text = out.payload["reply_to"], f"Casework: {out.payload['text']}"
            body = {"ticket": {"comment": {"body": text, "public": False}}}
            answer = await call(
                http, "PUT", _url(out.config, f"tickets/{ticket}.json"), watch, json=body, headers=headers
            )
            return answer if isinstance(answer, Sent) else from_response(answer, watch)
        if out.action == "test":
            answer = await call(http, "GET", _url(out.config, "users/me.json"), watch, headers=headers)
            return answer if isinstance(answer, Sent) else from_response(answer, watch)
        return Sent(None, watch.ms, excerpt=f"skipped: Zendesk has nothing to do for {out.action}")

    @staticmethod
    def _link(out: Outgoing, ticket: str, *, created: bool) -> Link:
        return Link(
            ticket, f"{out.config['base_url'].rstrip('/')}/agent/tickets/{ticket}", {"created": created}
        )

    async def receive(self, request: Inbound, decide: Decide, http: httpx.AsyncClient) -> Reply:
        secret = request.secrets.get("webhook_secret")
        if not secret:
            raise Unauthenticated("This Zendesk integration has no webhook_secret: it takes no decisions.")
        check_timestamped_hmac(
            request.headers.get("x-zendesk-webhook-signature", ""),
            request.headers.get("x-zendesk-webhook-signature-timestamp", ""),
            request.body,
            secret,
            "Zendesk",
        )
        try:
            payload: dict[str, Any] = json.loads(request.body)
        except ValueError:
            raise BadRequest("Expected JSON: {ticket_id, comment, author_email}.") from None
        ticket = str(payload.get("ticket_id") or "")
        parsed = messages.parse_decision_text(
            str(payload.get("comment") or ""), {**DEFAULT_LABELS, "review": "review"}
        )
        status = payload.get("status")
        if ticket and isinstance(status, str) and status.strip():
            closed = status.strip().lower() in CLOSED_STATUSES
            linked = await request.ticket_state(ticket, closed)
            if not parsed.get("classification"):
                return noted(ticket, closed, linked)
        if not ticket or not parsed.get("classification"):
            return Reply(200, {"status": "ignored", "message": "Not a decision."})
        reviews = await request.linked(ticket)
        review_id = parsed.get("review") or (reviews[0] if reviews else "")
        if review_id not in reviews:
            return Reply(
                200,
                {"status": "ignored", "message": f"Ticket {ticket} has no Casework review {review_id!r}."},
            )
        outcome = await decide(
            Decision(
                review_id=review_id,
                classification=parsed["classification"],
                reasoning=parsed.get("reasoning", ""),
                reviewer=str(payload["author_email"]) if payload.get("author_email") else None,
                tags=messages.split_tags(parsed.get("tags")),
                reply_to=ticket,
            )
        )
        return Reply(200, {"status": outcome.status, "message": outcome.message})


def _note(review: dict[str, Any], url: str) -> str:
    lines = [
        f"Casework review ({review.get('evaluator_type')}): the judge found this {messages.verdict(review)}.",
    ]
    proposed = messages.suggestion(review)
    if proposed:
        lines.append(f"Memory suggests: {proposed}")
    lines += [
        "",
        f"Query: {messages.excerpt(review.get('query'), 2000)}",
        f"Response: {messages.excerpt(review.get('response'), 2000)}",
        "",
        f"Decide in Casework: {url}",
        f"Or add an internal note with the lines 'review: {review.get('id')}', 'classification: ...' (one of "
        f"{', '.join(review.get('options') or [])}) and 'reasoning: ...'.",
    ]
    return "\n".join(lines)
