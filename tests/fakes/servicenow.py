"""A fake ServiceNow: the Table API calls Casework makes, checked as an instance checks them (Basic auth, JSON
only, known tables, the date-time format, an incident's close code and notes), and a business rule's outbound REST
message carrying the shared secret."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.base import FakeTool, basic, refuse

USER = "casework.integration"
PASSWORD = "sn-password-for-tests"
INBOUND_SECRET = "servicenow-inbound-secret-42"
TABLES = {"sn_grc_issue", "incident"}
GLIDE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


@dataclass
class FakeServiceNow(FakeTool):
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # sys_id -> record (with its table)

    def routes(self) -> list[Route]:
        return [
            Route("/api/now/table/{table}", self._collection, methods=["GET", "POST"]),
            Route("/api/now/table/{table}/{sys_id}", self._record, methods=["GET", "PATCH"]),
        ]

    def reset_state(self) -> None:
        self.records = {}

    def record_for(self, review_id: str) -> dict[str, Any] | None:
        with self.lock:
            return next((r for r in self.records.values() if r.get("correlation_id") == review_id), None)

    def _refused(self, call: Any, table: str) -> Response | None:
        if call.headers.get("authorization") != basic(USER, PASSWORD):
            return refuse(
                call,
                401,
                {
                    "error": {
                        "message": "User Not Authenticated",
                        "detail": "Required to provide Auth information",
                    },
                    "status": "failure",
                },
            )
        if "application/json" not in call.headers.get("accept", ""):
            return refuse(call, 406, {"error": {"message": "Accept header must ask for JSON"}})
        if table not in TABLES:
            return refuse(call, 400, {"error": {"message": "Invalid table " + table}, "status": "failure"})
        return None

    async def _collection(self, request: Request) -> Response:
        call, planned = await self.record(request)
        if planned is not None:
            return planned
        table = request.path_params["table"]
        refused = self._refused(call, table)
        if refused is not None:
            return refused
        if request.method == "GET":
            query = call.query.get("sysparm_query", "")
            wanted = query.split("=", 1)[1] if query.startswith("correlation_id=") else None
            found = [
                r
                for r in self.records.values()
                if r["table"] == table and (wanted is None or r.get("correlation_id") == wanted)
            ]
            return JSONResponse({"result": found[: int(call.query.get("sysparm_limit", "100"))]})
        values = call.json or {}
        if not values.get("short_description"):
            return refuse(
                call,
                400,
                {"error": {"message": "Mandatory field short_description missing"}, "status": "failure"},
            )
        if "due_date" in values and not GLIDE_TIME.match(values["due_date"]):
            return refuse(
                call,
                400,
                {"error": {"message": f"Invalid date-time {values['due_date']!r}"}, "status": "failure"},
            )
        sys_id = uuid.uuid4().hex
        with self.lock:
            record = {
                **values,
                "sys_id": sys_id,
                "number": f"ISS{len(self.records) + 1:07d}",
                "state": "1",
                "table": table,
                "notes": [],
            }
            self.records[sys_id] = record
        return JSONResponse({"result": record}, status_code=201)

    async def _record(self, request: Request) -> Response:
        call, planned = await self.record(request)
        if planned is not None:
            return planned
        table, sys_id = request.path_params["table"], request.path_params["sys_id"]
        refused = self._refused(call, table)
        if refused is not None:
            return refused
        record = self.records.get(sys_id)
        if record is None or record["table"] != table:
            return refuse(
                call,
                404,
                {
                    "error": {
                        "message": "No Record found",
                        "detail": "Record doesn't exist or ACL restricts the record retrieval",
                    },
                    "status": "failure",
                },
            )
        if request.method == "PATCH":
            values = dict(call.json or {})
            if (
                table == "incident"
                and values.get("state") == "6"
                and not (values.get("close_code") and values.get("close_notes"))
            ):
                return refuse(
                    call,
                    403,
                    {"error": {"message": "Data Policy Exception: Resolution code and notes are mandatory"}},
                )
            with self.lock:
                if values.get("work_notes"):
                    record["notes"].append(values.pop("work_notes"))
                record.update(values)
        return JSONResponse({"result": record})

    @staticmethod
    def send(url: str, payload: dict[str, Any], *, token: str | None = INBOUND_SECRET) -> httpx.Response:
        """The business rule's outbound REST message."""
        headers = {"content-type": "application/json"}
        if token is not None:
            headers["x-casework-token"] = token
        return httpx.post(url, content=json.dumps(payload), headers=headers, timeout=30)
