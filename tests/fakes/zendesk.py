"""A fake Zendesk Support: the ticket calls Casework makes, checked as Zendesk checks them (Basic auth as
``email/token``, a comment's body, existing tickets), and a Zendesk webhook signed with its signing secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.base import FakeTool, basic, refuse

EMAIL = "qa-bot@bank.example"
API_TOKEN = "zendesk-api-token-for-tests"
SIGNING_SECRET = "dGhpc19zZWNyZXRfc2lnbnNfd2ViaG9va3M="
CUSTOMER_TICKET = 4242


@dataclass
class FakeZendesk(FakeTool):
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.reset_state()

    def routes(self) -> list[Route]:
        return [
            Route("/api/v2/tickets.json", self._tickets, methods=["GET", "POST"]),
            Route("/api/v2/tickets/{ticket_id:int}.json", self._ticket, methods=["GET", "PUT"]),
            Route("/api/v2/users/me.json", self._me, methods=["GET"]),
        ]

    def reset_state(self) -> None:
        self.tickets = {
            CUSTOMER_TICKET: {"id": CUSTOMER_TICKET, "subject": "My card was charged twice", "comments": []}
        }

    def _authorised(self, call: Any) -> Response | None:
        if call.headers.get("authorization") != basic(f"{EMAIL}/token", API_TOKEN):
            return refuse(call, 401, {"error": "Couldn't authenticate you"})
        return None

    async def _tickets(self, request: Request) -> Response:
        call, planned = await self.record(request)
        if planned is not None:
            return planned
        if (refused := self._authorised(call)) is not None:
            return refused
        if request.method == "GET":
            wanted = call.query.get("external_id")
            return JSONResponse(
                {"tickets": [t for t in self.tickets.values() if t.get("external_id") == wanted]}
            )
        ticket = (call.json or {}).get("ticket") or {}
        comment = ticket.get("comment") or {}
        if not comment.get("body") and not comment.get("html_body"):
            return refuse(
                call,
                422,
                {
                    "error": "RecordInvalid",
                    "description": "Record validation errors",
                    "details": {"base": [{"description": "Description: cannot be blank"}]},
                },
            )
        with self.lock:
            ticket_id = max(self.tickets) + 1
            self.tickets[ticket_id] = {**ticket, "id": ticket_id, "comments": [comment]}
        return JSONResponse({"ticket": {"id": ticket_id, "subject": ticket.get("subject")}}, status_code=201)

    async def _ticket(self, request: Request) -> Response:
        call, planned = await self.record(request)
        if planned is not None:
            return planned
        if (refused := self._authorised(call)) is not None:
            return refused
        ticket = self.tickets.get(request.path_params["ticket_id"])
        if ticket is None:
            return refuse(call, 404, {"error": "RecordNotFound", "description": "Not found"})
        if request.method == "PUT":
            comment = ((call.json or {}).get("ticket") or {}).get("comment") or {}
            if not comment.get("body"):
                return refuse(call, 422, {"error": "RecordInvalid", "details": {"comment": "body is blank"}})
            with self.lock:
                ticket["comments"].append(comment)
        return JSONResponse({"ticket": {"id": ticket["id"]}})

    async def _me(self, request: Request) -> Response:
        call, planned = await self.record(request)
        if planned is not None:
            return planned
        if (refused := self._authorised(call)) is not None:
            return refused
        return JSONResponse({"user": {"id": 1, "email": EMAIL, "role": "agent"}})

    @staticmethod
    def send(
        url: str, payload: dict[str, Any], *, secret: str = SIGNING_SECRET, timestamp: str | None = None
    ) -> httpx.Response:
        """A webhook as Zendesk signs it: base64 HMAC-SHA256 of timestamp + body."""
        body = json.dumps(payload).encode()
        stamp = timestamp or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        signature = base64.b64encode(
            hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
        ).decode()
        headers = {
            "content-type": "application/json",
            "x-zendesk-webhook-signature": signature,
            "x-zendesk-webhook-signature-timestamp": stamp,
        }
        return httpx.post(url, content=body, headers=headers, timeout=30)
