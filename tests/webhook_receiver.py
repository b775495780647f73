"""A webhook receiver over real HTTP that checks what a Standard Webhooks consumer checks.

Each request is verified with the reference library (``standardwebhooks``) against the endpoint's secret and
recorded with its headers and body. ``plan`` says how to answer, in order: a status code, or ``"slow"`` (answer
200 after ``slow_seconds``); once the plan runs out, 200.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    answered: int | str

    @property
    def payload(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class WebhookReceiver:
    secret: str | None = None
    plan: list[int | str] = field(default_factory=list)
    slow_seconds: float = 3.0
    received: list[Received] = field(default_factory=list)
    base_url: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._released = threading.Event()
        self.app = Starlette(routes=[Route("/{path:path}", self._receive, methods=["POST"])])

    def reset(self) -> None:
        with self._lock:
            self.secret = None
            self.plan = []
            self.received = []
            self.slow_seconds = 3.0
        self._released.clear()

    def release(self) -> None:
        """End the slow answers now (a server waits for its open requests before it stops)."""
        self._released.set()

    def verified(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.verified]

    async def _receive(self, request: Request) -> PlainTextResponse:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified = False
        if self.secret is not None:
            try:
                Webhook(self.secret).verify(body, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
        with self._lock:
            answer: int | str = self.plan.pop(0) if self.plan else 200
            self.received.append(Received(request.url.path, headers, body, verified, answer))
        if answer == "slow":
            deadline = time.monotonic() + self.slow_seconds
            while time.monotonic() < deadline and not self._released.is_set():
                await asyncio.sleep(0.05)
            answer = 200
        return PlainTextResponse(f"answered {answer}", status_code=int(answer))
