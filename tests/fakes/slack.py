"""A fake Slack: the Web API methods Casework calls, checked as Slack checks them (bearer token, required
arguments, Block Kit limits, one-use trigger ids), and a person in Slack who clicks and submits, with requests
signed as Slack signs them."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.base import Call, FakeTool

TOKEN = "xoxb-1111-2222-test-token"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0REVIEWS"
USERS = {"U0ANA": "ana@bank.example", "U0BEN": "ben@bank.example", "U0NOMAIL": None}
BLOCK_TYPES = {"header", "section", "context", "actions", "divider", "input", "image", "rich_text"}


@dataclass
class FakeSlack(FakeTool):
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # ts -> message
    views: list[dict[str, Any]] = field(default_factory=list)
    triggers: set[str] = field(default_factory=set)

    def routes(self) -> list[Route]:
        return [Route("/api/{method}", self._api, methods=["GET", "POST"])]

    def reset_state(self) -> None:
        self.messages = {}
        self.views = []
        self.triggers = set()

    # --- the Web API -------------------------------------------------------------------------------------------

    async def _api(self, request: Request) -> Response:
        call, planned = await self.record(request)
        if planned is not None:
            return planned
        method = request.path_params["method"]
        if call.headers.get("authorization") != f"Bearer {TOKEN}":
            return self._error(call, "invalid_auth" if "authorization" in call.headers else "not_authed")
        args: dict[str, Any] = dict(call.query)
        if call.headers.get("content-type", "").startswith("application/json"):
            args.update(call.json or {})
        elif call.body:
            args.update(call.form)
        handler = {
            "chat.postMessage": self._post,
            "chat.update": self._update,
            "views.open": self._open_view,
            "users.info": self._user,
        }.get(method)
        if handler is None:
            return self._error(call, "unknown_method")
        return handler(call, args)

    @staticmethod
    def _error(call: Call, error: str) -> JSONResponse:
        call.error = error  # Slack answers 200 with ok: false
        return JSONResponse({"ok": False, "error": error})

    def _post(self, call: Call, args: dict[str, Any]) -> Response:
        if args.get("channel") != CHANNEL:
            return self._error(call, "channel_not_found")
        if not args.get("text") and not args.get("blocks"):
            return self._error(call, "no_text")
        problem = check_blocks(args.get("blocks"))
        if problem:
            return self._error(call, "invalid_blocks")
        ts = f"{time.time():.6f}"
        with self.lock:
            while ts in self.messages:
                ts = f"{float(ts) + 0.000001:.6f}"
            message = {
                "ts": ts,
                "text": args.get("text"),
                "blocks": _blocks(args),
                "thread_ts": args.get("thread_ts"),
            }
            self.messages[ts] = message
        return JSONResponse({"ok": True, "channel": CHANNEL, "ts": ts, "message": message})

    def _update(self, call: Call, args: dict[str, Any]) -> Response:
        if args.get("channel") != CHANNEL:
            return self._error(call, "channel_not_found")
        if args.get("ts") not in self.messages:
            return self._error(call, "message_not_found")
        if check_blocks(args.get("blocks")):
            return self._error(call, "invalid_blocks")
        with self.lock:
            self.messages[args["ts"]].update(text=args.get("text"), blocks=_blocks(args))
        return JSONResponse({"ok": True, "channel": CHANNEL, "ts": args["ts"]})

    def _open_view(self, call: Call, args: dict[str, Any]) -> Response:
        trigger = args.get("trigger_id")
        with self.lock:
            if trigger not in self.triggers:
                return self._error(call, "invalid_trigger_id")
            self.triggers.discard(trigger)  # a trigger opens one view, once
        view = args.get("view")
        view = json.loads(view) if isinstance(view, str) else view
        if not isinstance(view, dict) or view.get("type") != "modal":
            return self._error(call, "invalid_arguments")
        title = view.get("title", {})
        if title.get("type") != "plain_text" or not 0 < len(title.get("text", "")) <= 24:
            return self._error(call, "invalid_arguments")
        if check_blocks(view.get("blocks")) or len(view.get("private_metadata", "")) > 3000:
            return self._error(call, "invalid_arguments")
        view = {**view, "id": f"V{len(self.views) + 1:04d}"}
        with self.lock:
            self.views.append(view)
        return JSONResponse({"ok": True, "view": view})

    def _user(self, call: Call, args: dict[str, Any]) -> Response:
        user = args.get("user")
        if user not in USERS:
            return self._error(call, "user_not_found")
        profile = {"real_name": user} | ({"email": USERS[user]} if USERS[user] else {})
        return JSONResponse({"ok": True, "user": {"id": user, "profile": profile}})

    # --- a person in Slack ----------------------------------------------------------------------------------------

    def message_for(self, review_id: str) -> dict[str, Any] | None:
        with self.lock:
            for message in self.messages.values():
                if review_id in json.dumps(message["blocks"] or []):
                    return message
        return None

    def click(
        self, inbound_url: str, message: dict[str, Any], option: str, *, user: str = "U0ANA"
    ) -> httpx.Response:
        """Press the option's button on the message, as Slack reports it to the app."""
        [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
        [button] = [
            e
            for e in actions["elements"]
            if e.get("value") and json.loads(e["value"])["classification"] == option
        ]
        trigger = f"trig.{next(_counter)}"
        with self.lock:
            self.triggers.add(trigger)
        payload = {
            "type": "block_actions",
            "user": {"id": user},
            "trigger_id": trigger,
            "channel": {"id": CHANNEL},
            "container": {"type": "message", "message_ts": message["ts"], "channel_id": CHANNEL},
            "message": message,
            "actions": [{**button, "block_id": actions["block_id"], "action_ts": f"{time.time():.6f}"}],
        }
        return self.send(inbound_url, payload)

    def submit(
        self, inbound_url: str, view: dict[str, Any], *, reasoning: str, tags: str = "", user: str = "U0ANA"
    ) -> httpx.Response:
        """Fill in the modal and press its submit button."""
        payload = {
            "type": "view_submission",
            "user": {"id": user},
            "view": {
                "id": view["id"],
                "callback_id": view.get("callback_id"),
                "private_metadata": view.get("private_metadata", ""),
                "state": {
                    "values": {
                        "reasoning": {"reasoning": {"type": "plain_text_input", "value": reasoning}},
                        "tags": {"tags": {"type": "plain_text_input", "value": tags or None}},
                    }
                },
            },
        }
        return self.send(inbound_url, payload)

    @staticmethod
    def send(
        inbound_url: str,
        payload: dict[str, Any],
        *,
        timestamp: int | None = None,
        secret: str = SIGNING_SECRET,
        signature: str | None = None,
    ) -> httpx.Response:
        body = urlencode({"payload": json.dumps(payload)})
        headers = sign(body, timestamp=timestamp, secret=secret)
        if signature is not None:
            headers["x-slack-signature"] = signature
        headers["content-type"] = "application/x-www-form-urlencoded"
        return httpx.post(inbound_url, content=body, headers=headers, timeout=30)


_counter = itertools.count(1)


def sign(body: str, *, timestamp: int | None = None, secret: str = SIGNING_SECRET) -> dict[str, str]:
    """Slack's signature: ``v0=`` HMAC-SHA256 of ``v0:{timestamp}:{body}`` with the signing secret."""
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"x-slack-request-timestamp": stamp, "x-slack-signature": f"v0={digest}"}


def _blocks(args: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = args.get("blocks") or []
    return json.loads(blocks) if isinstance(blocks, str) else list(blocks)


def check_blocks(blocks: Any) -> str | None:
    """Block Kit's limits that Slack enforces with ``invalid_blocks``."""
    if blocks is None:
        return None
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    if not isinstance(blocks, list) or len(blocks) > 50:
        return "blocks must be a list of at most 50"
    for block in blocks:
        if block.get("type") not in BLOCK_TYPES:
            return f"unknown block type {block.get('type')}"
        text = block.get("text")
        if block["type"] == "header" and (
            text.get("type") != "plain_text" or len(text.get("text", "")) > 150
        ):
            return "a header is plain_text of at most 150 characters"
        if block["type"] == "section" and text and len(text.get("text", "")) > 3000:
            return "a section's text is at most 3000 characters"
        if block["type"] == "actions":
            elements = block.get("elements", [])
            if not 0 < len(elements) <= 25:
                return "an actions block has 1 to 25 elements"
            for element in elements:
                if len(element.get("value", "")) > 2000 or len(element.get("action_id", "")) > 255:
                    return "a button's value is at most 2000 characters"
                if (
                    element.get("text", {}).get("type") != "plain_text"
                    or len(element["text"].get("text", "")) > 75
                ):
                    return "a button's text is plain_text of at most 75 characters"
        if block["type"] == "input" and not block.get("element", {}).get("action_id"):
            return "an input's element needs an action_id"
    return None
