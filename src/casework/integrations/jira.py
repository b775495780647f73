"""Jira (Cloud REST API v3; Data Center through API version 2): a new review creates an issue (summary, an ADF
description with the interaction and the verdict, labels, a link back); a Jira webhook on a comment
``classification: ... reasoning: ...`` or on a transition to a mapped status submits the decision; a decision
made in Casework comments on the issue and transitions it. Every webhook that carries the issue's status says
whether it is closed (its status category "done", or the issue deleted): the SLA sweep pauses a review's clock
only while its issue is open.

Calls use Jira's REST API directly (Atlassian publishes no official Python SDK). Webhooks are authenticated by
the HMAC Jira Cloud signs them with (``X-Hub-Signature: sha256=...``), or, for Jira Automation and Data Center,
by the shared secret in an ``X-Casework-Token`` header.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any, Literal

import httpx
from pydantic import Field, model_validator

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

DEFAULT_LABELS = {"classification": "classification", "reasoning": "reasoning", "tags": "tags"}


class JiraConfig(IntegrationConfig):
    SECRETS = frozenset({"api_token", "personal_access_token", "webhook_secret"})
    URLS = frozenset({"base_url"})

    base_url: str = Field(
        description="Your site: https://your-domain.atlassian.net (or the Data Center URL)."
    )
    email: str | None = Field(default=None, description="Jira Cloud: the account the API token belongs to.")
    api_token: str | None = Field(default=None, description="Jira Cloud API token (with email: Basic auth).")
    personal_access_token: str | None = Field(
        default=None, description="Data Center: a personal access token."
    )
    api_version: Literal["3", "2"] = Field(default="3", description="3 for Cloud; 2 for Data Center.")
    project_key: str = Field(min_length=1, description="The project new issues are created in (e.g. COMP).")
    issue_type: str = Field(default="Task", description="The issue type of new issues.")
    labels: list[str] = Field(default_factory=lambda: ["casework"], description="Labels on every issue.")
    done_transition: str = Field(default="Done", description="The transition made when Casework decides.")
    webhook_secret: str = Field(
        min_length=16, description="The secret of the Jira webhook (HMAC), or its token."
    )
    status_map: dict[str, str] = Field(
        default_factory=dict,
        description="A transition to one of these statuses decides: status → classification.",
    )
    reasoning_field: str | None = Field(
        default=None, description="A field (customfield_10050) holding the reasoning of a transition."
    )
    comment_labels: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_LABELS),
        description="The words that start the lines of a deciding comment.",
    )

    @model_validator(mode="after")
    def _credentials(self) -> JiraConfig:
        if not self.personal_access_token and not (self.email and self.api_token):
            raise ValueError("give email and api_token (Jira Cloud), or personal_access_token (Data Center)")
        return self


def _auth(config: dict[str, Any], secrets: dict[str, str]) -> dict[str, str]:
    if secrets.get("personal_access_token"):
        return {"authorization": f"Bearer {secrets['personal_access_token']}"}
    return {"authorization": basic_auth(config["email"], secrets["api_token"])}


def _api(config: dict[str, Any], path: str) -> str:
    return f"{config['base_url'].rstrip('/')}/rest/api/{config.get('api_version', '3')}/{path.lstrip('/')}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:100] or "evaluator"


def document(config: dict[str, Any], paragraphs: list[tuple[str, str]]) -> Any:
    """Text as Jira wants it: Atlassian Document Format in API v3, plain text in v2. ``paragraphs`` are
    (heading, text) pairs; an empty heading is a plain paragraph."""
    if config.get("api_version", "3") == "2":
        return "\n\n".join(f"*{h}*\n{t}" if h else t for h, t in paragraphs)
    content: list[dict[str, Any]] = []
    for heading, text in paragraphs:
        if heading:
            content.append(
                {"type": "heading", "attrs": {"level": 3}, "content": [{"type": "text", "text": heading}]}
            )
        if text:
            content.append({"type": "paragraph", "content": [{"type": "text", "text": text}]})
    return {"type": "doc", "version": 1, "content": content}


class Jira:
    name = "jira"
    title = "Jira"
    config: type[IntegrationConfig] = JiraConfig
    events = frozenset(REVIEW_EVENTS)
    default_events: tuple[str, ...] = REVIEW_EVENTS

    async def send(self, out: Outgoing, http: httpx.AsyncClient) -> Sent:
        watch = Stopwatch()
        headers = {**_auth(out.config, out.secrets), "accept": "application/json"}
        if out.action == "open" and out.review is not None:
            return await self._create(out, http, headers, watch)
        if out.action == "resolve" and out.review is not None:
            if out.link is None:
                return Sent(None, watch.ms, excerpt="skipped: no Jira issue was created for this review")
            return await self._resolve(out, http, headers, watch, out.link.external_id)
        if out.action == "reply":
            body = {"body": document(out.config, [("", f"Casework: {out.payload['text']}")])}
            answer = await call(
                http,
                "POST",
                _api(out.config, f"issue/{out.payload['reply_to']}/comment"),
                watch,
                json=body,
                headers=headers,
            )
            return answer if isinstance(answer, Sent) else from_response(answer, watch)
        if out.action == "test":
            answer = await call(
                http, "GET", _api(out.config, f"project/{out.config['project_key']}"), watch, headers=headers
            )
            return answer if isinstance(answer, Sent) else from_response(answer, watch)
        return Sent(None, watch.ms, excerpt=f"skipped: Jira has nothing to do for {out.action}")

    async def _create(
        self, out: Outgoing, http: httpx.AsyncClient, headers: dict[str, str], watch: Stopwatch
    ) -> Sent:
        review = out.review or {}
        marker = f"casework-{review['id']}"
        if out.attempt > 1:  # an earlier attempt may have created it before its answer was lost
            found = await self._find(out, http, headers, watch, marker)
            if found is not None:
                return found
        paragraphs = [
            ("Query", messages.excerpt(review.get("query"), 5000)),
            ("Response", messages.excerpt(review.get("response"), 5000)),
        ]
        if review.get("context"):
            paragraphs.append(("Context", messages.excerpt(review["context"], 5000)))
        paragraphs.append(("Judge", f"{review.get('evaluator_type')}: {messages.verdict(review)}"))
        if review.get("explanation"):
            paragraphs.append(("", messages.excerpt(review["explanation"], 2000)))
        proposed = messages.suggestion(review)
        if proposed:
            paragraphs.append(("Memory suggests", proposed))
        labels = list(out.config.get("labels") or [])
        paragraphs.append(
            (
                "Decide",
                f"Open in Casework: {out.review_url} — or comment here, one per line: "
                f"{labels_hint(out.config)}, with one of {review.get('options')}.",
            )
        )
        fields = {
            "project": {"key": out.config["project_key"]},
            "issuetype": {"name": out.config.get("issue_type") or "Task"},
            "summary": messages.excerpt(messages.title(review), 250),
            "description": document(out.config, paragraphs),
            "labels": list(
                dict.fromkeys(
                    [*(_slug(label) for label in labels), _slug(str(review.get("evaluator_type"))), marker]
                )
            ),
        }
        answer = await call(
            http, "POST", _api(out.config, "issue"), watch, json={"fields": fields}, headers=headers
        )
        if isinstance(answer, Sent):
            return answer
        if not answer.is_success:
            return from_response(answer, watch)
        created = answer.json()
        return from_response(answer, watch, link=self._link(out, created["key"], created.get("id")))

    def _link(self, out: Outgoing, key: str, issue_id: Any) -> Link:
        return Link(key, f"{out.config['base_url'].rstrip('/')}/browse/{key}", {"key": key, "id": issue_id})

    async def _find(
        self, out: Outgoing, http: httpx.AsyncClient, headers: dict[str, str], watch: Stopwatch, marker: str
    ) -> Sent | None:
        path = "search/jql" if out.config.get("api_version", "3") == "3" else "search"
        answer = await call(
            http,
            "GET",
            _api(out.config, path),
            watch,
            params={"jql": f'labels = "{marker}"', "fields": "key"},
            headers=headers,
        )
        if isinstance(answer, Sent) or not answer.is_success:
            return None
        issues = answer.json().get("issues") or []
        if not issues:
            return None
        return from_response(answer, watch, link=self._link(out, issues[0]["key"], issues[0].get("id")))

    async def _resolve(
        self, out: Outgoing, http: httpx.AsyncClient, headers: dict[str, str], watch: Stopwatch, key: str
    ) -> Sent:
        review = out.review or {}
        resolution = review.get("resolution") or {}
        note = document(
            out.config,
            [
                ("", f"Casework: {messages.decided(review)}."),
                ("", messages.excerpt(resolution.get("reasoning"), 5000)),
                ("", out.review_url),
            ],
        )
        answer = await call(
            http,
            "POST",
            _api(out.config, f"issue/{key}/comment"),
            watch,
            json={"body": note},
            headers=headers,
        )
        if isinstance(answer, Sent) or not answer.is_success:
            return answer if isinstance(answer, Sent) else from_response(answer, watch)
        answer = await call(http, "GET", _api(out.config, f"issue/{key}/transitions"), watch, headers=headers)
        if isinstance(answer, Sent) or not answer.is_success:
            return answer if isinstance(answer, Sent) else from_response(answer, watch)
        wanted = str(out.config.get("done_transition") or "Done").lower()
        transitions = answer.json().get("transitions") or []
        chosen = next(
            (
                t
                for t in transitions
                if wanted in (str(t.get("name", "")).lower(), str(t.get("to", {}).get("name", "")).lower())
            ),
            None,
        )
        if chosen is None:
            names = [t.get("name") for t in transitions]
            return Sent(
                answer.status_code,
                watch.ms,
                excerpt=f"commented; no {wanted!r} transition from here ({names})",
            )
        answer = await call(
            http,
            "POST",
            _api(out.config, f"issue/{key}/transitions"),
            watch,
            json={"transition": {"id": chosen["id"]}},
            headers=headers,
        )
        return answer if isinstance(answer, Sent) else from_response(answer, watch)

    # --- inbound ------------------------------------------------------------------------------------------------

    async def receive(self, request: Inbound, decide: Decide, http: httpx.AsyncClient) -> Reply:
        secret = request.secrets["webhook_secret"]
        signature = request.headers.get("x-hub-signature", "")
        token = request.headers.get("x-casework-token", "")
        expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
        if not (
            (signature and hmac.compare_digest(signature, expected))
            or (token and hmac.compare_digest(token.encode(), secret.encode()))
        ):
            raise Unauthenticated(
                "The Jira webhook's signature (X-Hub-Signature) or token does not match its secret."
            )
        try:
            payload: dict[str, Any] = json.loads(request.body)
        except ValueError:
            raise BadRequest("Expected a Jira webhook's JSON body.") from None
        key = str((payload.get("issue") or {}).get("key") or "")
        closed = issue_closed(payload)
        linked = await request.ticket_state(key, closed) if key and closed is not None else 0
        found = self._decision(request.config, payload)
        if not key or found is None:
            if key and closed is not None:
                return noted(key, closed, linked)
            return Reply(200, {"status": "ignored", "message": "Not a decision."})
        reviews = await request.linked(key)
        if not reviews:
            return Reply(200, {"status": "ignored", "message": f"{key} is not a Casework issue."})
        classification, reasoning, tags, person = found
        if person.get("emailAddress") and person.get("emailAddress") == request.config.get("email"):
            return Reply(200, {"status": "ignored", "message": "Casework's own change."})
        email = person.get("emailAddress") or await self._email(request, http, person.get("accountId"))
        outcome = await decide(Decision(reviews[0], classification, reasoning, email, tags, reply_to=key))
        return Reply(200, {"status": outcome.status, "message": outcome.message})

    def _decision(
        self, config: dict[str, Any], payload: dict[str, Any]
    ) -> tuple[str, str, list[str], dict[str, Any]] | None:
        event = payload.get("webhookEvent")
        labels = {**DEFAULT_LABELS, **(config.get("comment_labels") or {})}
        if event == "comment_created" and payload.get("comment"):
            comment = payload["comment"]
            parsed = messages.parse_decision_text(_plain(comment.get("body")), labels)
            if not parsed.get("classification"):
                return None
            tags = messages.split_tags(parsed.get("tags"))
            return parsed["classification"], parsed.get("reasoning", ""), tags, comment.get("author") or {}
        if event == "jira:issue_updated":
            status_map = {k.lower(): v for k, v in (config.get("status_map") or {}).items()}
            for item in (payload.get("changelog") or {}).get("items") or []:
                if item.get("field") == "status" and str(item.get("toString", "")).lower() in status_map:
                    fields = (payload.get("issue") or {}).get("fields") or {}
                    reasoning = (
                        _plain(fields.get(config["reasoning_field"])) if config.get("reasoning_field") else ""
                    )
                    if not reasoning and payload.get("comment"):
                        reasoning = _plain(payload["comment"].get("body"))
                    return status_map[str(item["toString"]).lower()], reasoning, [], payload.get("user") or {}
        return None

    async def _email(self, request: Inbound, http: httpx.AsyncClient, account_id: str | None) -> str | None:
        """Jira Cloud leaves e-mail addresses out of webhooks; the user API gives it when the person's profile
        visibility allows."""
        if not account_id:
            return None
        headers = {**_auth(request.config, request.secrets), "accept": "application/json"}
        try:
            answer = await http.get(
                _api(request.config, "user"), params={"accountId": account_id}, headers=headers
            )
        except httpx.HTTPError:
            return None
        if not answer.is_success:
            return None
        email = answer.json().get("emailAddress")
        return str(email) if email else None


def issue_closed(payload: dict[str, Any]) -> bool | None:
    """Whether a webhook says its issue is closed: deleted, or its status in the "done" category (True); in
    another category (False); None when it does not say (a comment's webhook, an Automation body without it)."""
    if payload.get("webhookEvent") == "jira:issue_deleted":
        return True
    fields = (payload.get("issue") or {}).get("fields") or {}
    status = fields.get("status") if isinstance(fields, dict) else None
    category = status.get("statusCategory") if isinstance(status, dict) else None
    key = category.get("key") if isinstance(category, dict) else None
    return None if not isinstance(key, str) or not key else key == "done"


def labels_hint(config: dict[str, Any]) -> str:
    labels = {**DEFAULT_LABELS, **(config.get("comment_labels") or {})}
    return f"'{labels['classification']}: ...', '{labels['reasoning']}: ...' (and '{labels['tags']}: ...')"


def _plain(value: Any) -> str:
    """Text from a webhook's field: a string, or an ADF document."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if value.get("type") == "text":
            return str(value.get("text", ""))
        parts = [_plain(child) for child in value.get("content") or []]
        joiner = "\n" if value.get("type") in ("doc", "bulletList", "orderedList") else ""
        return joiner.join(parts)
    if isinstance(value, list):
        return "\n".join(_plain(v) for v in value)
    return str(value)
