"""A fake Teams incoming webhook / Workflows URL: it takes Adaptive Card messages only, as Teams does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.fakes.base import FakeTool, refuse

KEY = "webhookb2/7f3a-test-key"


@dataclass
class FakeTeams(FakeTool):
    cards: list[dict[str, Any]] = field(default_factory=list)

    def routes(self) -> list[Route]:
        return [Route("/{path:path}", self._post, methods=["POST"])]

    def reset_state(self) -> None:
        self.cards = []

    async def _post(self, request: Request) -> Response:
        call, planned = await self.record(request)
        if planned is not None:
            return planned
        if request.path_params["path"] != KEY:
            return refuse(call, 404, {"error": "the webhook does not exist (or was removed)"})
        message = call.json
        problem = _check(message)
        if problem:
            return refuse(call, 400, {"error": f"Bad payload: {problem}"})
        with self.lock:
            self.cards.append(message["attachments"][0]["content"])
        return PlainTextResponse("1")


def _check(message: Any) -> str | None:
    if not isinstance(message, dict) or message.get("type") != "message":
        return "type must be message"
    attachments = message.get("attachments")
    if not isinstance(attachments, list) or len(attachments) != 1:
        return "one attachment"
    attachment = attachments[0]
    if attachment.get("contentType") != "application/vnd.microsoft.card.adaptive":
        return "the attachment must be an Adaptive Card"
    card = attachment.get("content") or {}
    if (
        card.get("type") != "AdaptiveCard"
        or not card.get("version")
        or not isinstance(card.get("body"), list)
    ):
        return "an AdaptiveCard with a version and a body"
    for action in card.get("actions", []):
        if action.get("type") == "Action.OpenUrl" and not str(action.get("url", "")).startswith("http"):
            return "Action.OpenUrl needs a url"
        if action.get("type") in ("Action.Submit", "Action.Execute"):
            return "a webhook card cannot submit: that needs a bot"
    return None
