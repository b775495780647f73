"""What every fake shares: a Starlette app, a record of requests, and a plan of failures to answer with."""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes
    answered: int = 200
    error: str | None = None  # why the fake refused it (also for Slack's 200 with ok: false)

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class FakeTool:
    """Subclasses give ``routes()``; ``plan`` lists status codes to answer the next requests with, before any
    of them is looked at (a 429 or 503 from the tool), e.g. ``[503, 429]``."""

    base_url: str = ""
    calls: list[Call] = field(default_factory=list)
    plan: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.app = Starlette(routes=self.routes())

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def reset(self) -> None:
        with self.lock:
            self.calls = []
            self.plan = []
            self.reset_state()

    def reset_state(self) -> None:
        """Subclasses forget what they stored."""

    def called(self, path_part: str, method: str | None = None) -> list[Call]:
        with self.lock:
            return [
                c
                for c in self.calls
                if path_part in c.path
                and (method is None or c.method == method)
                and c.answered < 300
                and c.error is None
            ]

    async def record(self, request: Request) -> tuple[Call, Response | None]:
        """The request, recorded; and the planned failure to answer with, if one is due."""
        call = Call(
            request.method,
            request.url.path,
            {k.lower(): v for k, v in request.headers.items()},
            dict(request.query_params),
            await request.body(),
        )
        with self.lock:
            self.calls.append(call)
            planned = self.plan.pop(0) if self.plan else None
        if planned is not None:
            call.answered = planned
            headers = {"retry-after": "0"} if planned == 429 else {}
            return call, JSONResponse({"error": f"planned {planned}"}, status_code=planned, headers=headers)
        return call, None


def refuse(call: Call, status: int, body: Any) -> JSONResponse:
    call.answered = status
    call.error = json.dumps(body)
    return JSONResponse(body, status_code=status)
