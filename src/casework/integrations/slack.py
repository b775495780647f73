"""Slack: new reviews posted to a channel as Block Kit messages with a button per option; a button opens a modal
for the reasoning and tags; submitting it decides the review, and the message is updated in place (as it is when
anyone else, or memory, decides). A daily digest per channel. Outbound calls use Slack's own SDK (``slack-sdk``);
inbound requests are verified with its ``SignatureVerifier`` (signing secret, 5-minute replay window).

Scopes: ``chat:write`` (post and update), ``users:read`` and ``users:read.email`` (who decided).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import httpx
from pydantic import Field
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

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
    failed,
)

DEFAULT_API = "https://slack.com/api/"
DECIDE_ACTION = "casework_decide"
MODAL = "casework_decision"
# Slack's errors that no retry can fix: the admin must change the token, the channel or the app's scopes.
PERMANENT = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "missing_scope",
        "invalid_blocks",
        "msg_too_long",
        "no_text",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
    }
)


class SlackConfig(IntegrationConfig):
    SECRETS = frozenset({"bot_token", "signing_secret"})
    URLS = frozenset({"api_base_url"})

    bot_token: str = Field(pattern=r"^xox[bp]-", description="The app's Bot User OAuth Token (xoxb-...).")
    signing_secret: str = Field(
        min_length=8, description="The app's Signing Secret (Basic Information page)."
    )
    channel: str = Field(min_length=1, description="Channel ID (C0123...) the bot was invited to.")
    api_base_url: str = Field(default=DEFAULT_API, description="Slack's Web API; change only for a proxy.")
    digest: bool = Field(default=True, description="Post a daily digest: pending, oldest, overdue.")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _quote(text: str | None, limit: int = messages.EXCERPT) -> str:
    body = _escape(messages.excerpt(text, limit)) or "_(empty)_"
    return "\n".join(f"> {line}" for line in body.split("\n"))


def review_blocks(review: dict[str, Any], review_url: str, *, integration_id: str) -> list[dict[str, Any]]:
    """The message: what was judged, the judge's verdict, memory's suggestion, its age; then one button per
    option while it is pending, or who decided once it is resolved."""
    facts = [f"*Judge:* {_escape(messages.verdict(review))}"]
    proposed = messages.suggestion(review)
    if proposed:
        facts.append(f"*Memory suggests:* {_escape(proposed)}")
    facts.append(f"*Waiting:* {messages.age(review)}")
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": messages.excerpt(f"Review: {review['evaluator_type']}", 150),
            },
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Query*\n{_quote(review.get('query'))}"}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"*Response*\n{_quote(review.get('response'))}"},
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "   ".join(facts)}]},
    ]
    if review.get("status") == "resolved":
        resolution = review.get("resolution") or {}
        text = f":white_check_mark: *{_escape(messages.decided(review))}*"
        if resolution.get("reasoning"):
            text += f"\n{_quote(resolution['reasoning'], 300)}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{review_url}|Open in Casework>"}]}
        )
        return blocks
    buttons: list[dict[str, Any]] = [
        {
            "type": "button",
            "action_id": f"{DECIDE_ACTION}:{index}",
            "text": {"type": "plain_text", "text": messages.excerpt(option, 75)},
            "value": json.dumps({"review_id": review["id"], "classification": option}),
        }
        for index, option in enumerate(review.get("options") or [])
    ][:24]
    buttons.append(
        {
            "type": "button",
            "action_id": "casework_open",
            "text": {"type": "plain_text", "text": "Open in Casework"},
            "url": review_url,
        }
    )
    blocks.append({"type": "actions", "block_id": f"casework:{integration_id}", "elements": buttons})
    return blocks


def digest_blocks(payload: dict[str, Any]) -> list[dict[str, Any]]:
    lines = [
        f"*Pending reviews:* {payload['pending']}",
        f"*Oldest:* {payload['oldest'] or 'none'}",
        f"*Overdue* (past the review target): {payload['overdue']}",
    ]
    return [
        {"type": "header", "text": {"type": "plain_text", "text": "Casework: today's review queue"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{payload['url']}|Open the queue>"}]},
    ]


def _client(out_config: dict[str, Any], secrets: dict[str, str], http: httpx.AsyncClient) -> AsyncWebClient:
    """Slack's own client, with the same time limit as every other tool's calls."""
    base = out_config.get("api_base_url") or DEFAULT_API
    timeout = max(1, round(http.timeout.read or 10))
    return AsyncWebClient(
        token=secrets["bot_token"], base_url=base if base.endswith("/") else base + "/", timeout=timeout
    )


class Slack:
    name = "slack"
    title = "Slack"
    config: type[IntegrationConfig] = SlackConfig
    events = frozenset({*REVIEW_EVENTS, "review.reopened", *messages.ALERT_EVENTS})
    default_events: tuple[str, ...] = (*REVIEW_EVENTS, "review.reopened")

    async def send(self, out: Outgoing, http: httpx.AsyncClient) -> Sent:
        watch = Stopwatch()
        client = _client(out.config, out.secrets, http)
        channel = out.config["channel"]
        try:
            if out.action == "open" and out.review is not None:
                blocks = review_blocks(out.review, out.review_url, integration_id=out.integration_id)
                answer = await client.chat_postMessage(
                    channel=channel, text=messages.title(out.review), blocks=blocks, unfurl_links=False
                )
                data = {"channel": answer["channel"], "ts": answer["ts"]}
                return Sent(
                    answer.status_code,
                    watch.ms,
                    link=Link(f"{data['channel']}:{data['ts']}", None, data),
                    excerpt=f"posted {data['ts']}",
                )
            if out.action in ("resolve", "update") and out.review is not None:
                if out.link is None:
                    return Sent(
                        None, watch.ms, excerpt="skipped: no Slack message was posted for this review"
                    )
                blocks = review_blocks(out.review, out.review_url, integration_id=out.integration_id)
                answer = await client.chat_update(
                    channel=out.link.data["channel"],
                    ts=out.link.data["ts"],
                    text=messages.decided(out.review)
                    if out.review.get("status") == "resolved"
                    else messages.title(out.review),
                    blocks=blocks,
                )
                return Sent(answer.status_code, watch.ms, excerpt=f"updated {out.link.data['ts']}")
            if out.action == "reply":
                thread = out.link.data.get("ts") if out.link else None
                answer = await client.chat_postMessage(
                    channel=channel, text=out.payload["text"], thread_ts=thread
                )
                return Sent(answer.status_code, watch.ms)
            if out.action == "alert" and out.review is not None:
                thread = out.link.data.get("ts") if out.link else None  # under the review's message
                type = out.payload.get("type", "")
                text = messages.alert(type, out.review)
                emoji = ":hourglass_flowing_sand:" if type == "review.due_soon" else ":alarm_clock:"
                answer = await client.chat_postMessage(
                    channel=channel,
                    text=f"{emoji} {text}",
                    thread_ts=thread,
                    reply_broadcast=bool(thread),
                )
                return Sent(answer.status_code, watch.ms)
            if out.action == "digest":
                answer = await client.chat_postMessage(
                    channel=channel,
                    text=f"Casework: {out.payload['pending']} reviews pending",
                    blocks=digest_blocks(out.payload),
                )
                return Sent(answer.status_code, watch.ms)
            if out.action == "test":
                answer = await client.chat_postMessage(
                    channel=channel, text=out.payload.get("text") or "A test message from Casework."
                )
                return Sent(answer.status_code, watch.ms)
            return Sent(None, watch.ms, excerpt=f"skipped: Slack has nothing to do for {out.action}")
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "")
            status = exc.response.status_code
            retry_after = exc.response.headers.get("Retry-After") if exc.response.headers else None
            return Sent(
                status,
                watch.ms,
                f"Slack answered {status}: {error}",
                str(exc.response.data)[:1000],
                retry_after=float(retry_after) if retry_after else None,
                permanent=error in PERMANENT,
            )
        except Exception as exc:  # aiohttp's connection errors and timeouts: retried
            return failed(watch, f"could not reach Slack: {type(exc).__name__}: {exc}")

    async def receive(self, request: Inbound, decide: Decide, http: httpx.AsyncClient) -> Reply:
        verifier = SignatureVerifier(request.secrets["signing_secret"])
        if not verifier.is_valid_request(request.body, dict(request.headers)):
            raise Unauthenticated(
                "The Slack signature is missing, wrong, or more than 5 minutes old: check the signing secret."
            )
        form = parse_qs(request.body.decode())
        if "payload" not in form:
            raise BadRequest("Expected a Slack interactivity payload (a form field named payload).")
        payload: dict[str, Any] = json.loads(form["payload"][0])
        client = _client(request.config, request.secrets, http)
        if payload.get("type") == "block_actions":
            return await self._open_modal(client, payload, request)
        if payload.get("type") == "view_submission" and payload.get("view", {}).get("callback_id") == MODAL:
            return await self._submitted(client, payload, decide)
        return Reply(200)

    async def _open_modal(self, client: AsyncWebClient, payload: dict[str, Any], request: Inbound) -> Reply:
        action = next(
            (a for a in payload.get("actions", []) if str(a.get("action_id", "")).startswith(DECIDE_ACTION)),
            None,
        )
        if action is None:
            return Reply(200)
        chosen = json.loads(action["value"])
        # Someone (or memory) decided first: say so now rather than after the reasoning is written.
        resolution = await request.resolution(str(chosen.get("review_id", "")))
        if resolution is not None:
            view = notice_modal(messages.already_decided(resolution))
        else:
            view = decision_modal(chosen["review_id"], chosen["classification"])
        try:
            await client.views_open(trigger_id=payload["trigger_id"], view=view)
        except SlackApiError as exc:
            return Reply(502, {"error": f"Slack refused the modal: {exc.response.get('error')}"})
        return Reply(200)

    async def _submitted(self, client: AsyncWebClient, payload: dict[str, Any], decide: Decide) -> Reply:
        view = payload["view"]
        chosen = json.loads(view.get("private_metadata") or "{}")
        values = view.get("state", {}).get("values", {})
        reasoning = (values.get("reasoning", {}).get("reasoning", {}).get("value") or "").strip()
        tags = messages.split_tags(values.get("tags", {}).get("tags", {}).get("value"))
        email = await self._email(client, payload.get("user", {}).get("id"))
        outcome = await decide(
            Decision(
                review_id=str(chosen.get("review_id", "")),
                classification=str(chosen.get("classification", "")),
                reasoning=reasoning,
                reviewer=email,
                tags=tags,
            )
        )
        if outcome.accepted:
            return Reply(200, {"response_action": "clear"})
        if outcome.status == "already_decided":
            return Reply(200, {"response_action": "update", "view": notice_modal(outcome.message)})
        return Reply(200, {"response_action": "errors", "errors": {"reasoning": outcome.message[:150]}})

    @staticmethod
    async def _email(client: AsyncWebClient, user_id: str | None) -> str | None:
        if not user_id:
            return None
        try:
            answer = await client.users_info(user=user_id)
        except SlackApiError:
            return None
        profile = (answer.get("user") or {}).get("profile") or {}
        email = profile.get("email")
        return str(email) if email else None


def decision_modal(review_id: str, classification: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": MODAL,
        "private_metadata": json.dumps({"review_id": review_id, "classification": classification}),
        "title": {"type": "plain_text", "text": "Decide the review"},
        "submit": {"type": "plain_text", "text": "Decide"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"Your decision: *{_escape(classification)}*"},
            },
            {
                "type": "input",
                "block_id": "reasoning",
                "label": {"type": "plain_text", "text": "Why? The judge reads this on similar cases."},
                "element": {"type": "plain_text_input", "action_id": "reasoning", "multiline": True},
            },
            {
                "type": "input",
                "block_id": "tags",
                "optional": True,
                "label": {"type": "plain_text", "text": "Tags (comma-separated)"},
                "element": {"type": "plain_text_input", "action_id": "tags"},
            },
        ],
    }


def notice_modal(text: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Casework"},
        "close": {"type": "plain_text", "text": "Close"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": _escape(text)}}],
    }
