"""A fake Azure DevOps Boards: the REST API (7.1) calls Casework makes, checked as Azure DevOps checks them (a PAT
in Basic auth, api-version, JSON Patch documents, required fields, the process's states), and service hooks with
the Basic authentication their subscription is given."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.base import Call, FakeTool, refuse

ORGANIZATION = "bank"
PROJECT = "Compliance Reviews"
PAT = "azdo-personal-access-token-42"
HOOK_SECRET = "azure-devops-hook-secret-0123"
TYPES = {"Task", "Issue", "Bug"}
STATES = {"To Do", "Doing", "Done", "Compliant"}  # the Basic process, plus a custom state


@dataclass
class FakeAzureDevOps(FakeTool):
    items: dict[int, dict[str, Any]] = field(default_factory=dict)

    def routes(self) -> list[Route]:
        base = f"/{ORGANIZATION}/{{project}}/_apis/wit"
        return [
            Route(f"{base}/workitems/{{target}}", self._work_item, methods=["POST", "PATCH"]),
            Route(f"{base}/wiql", self._wiql, methods=["POST"]),
            Route(f"/{ORGANIZATION}/_apis/projects/{{project}}", self._project, methods=["GET"]),
        ]

    def reset_state(self) -> None:
        self.items = {}

    def item_for(self, review_id: str) -> dict[str, Any] | None:
        with self.lock:
            return next((i for i in self.items.values() if f"casework-{review_id}" in i["System.Tags"]), None)

    def _refused(self, call: Call, project: str) -> Response | None:
        scheme, _, credentials = call.headers.get("authorization", "").partition(" ")
        if scheme != "Basic" or base64.b64decode(credentials).decode().partition(":")[2] != PAT:
            return refuse(
                call, 401, {"message": "TF400813: The user is not authorized to access this resource."}
            )
        if call.query.get("api-version") != "7.1":
            return refuse(call, 400, {"message": "VS800075: The project or API version is not valid."})
        if project != PROJECT:
            return refuse(
                call, 404, {"message": f"TF200016: The following project does not exist: {project}."}
            )
        return None

    async def _work_item(self, request: Request) -> Response:
        call, planned = await self.record(request)
        if planned is not None:
            return planned
        if (refused := self._refused(call, request.path_params["project"])) is not None:
            return refused
        if call.headers.get("content-type") != "application/json-patch+json":
            return refuse(
                call, 400, {"message": "You must pass a valid patch document in the body of the request."}
            )
        document = call.json
        if not isinstance(document, list) or any(set(op) != {"op", "path", "value"} for op in document):
            return refuse(
                call, 400, {"message": "You must pass a valid patch document in the body of the request."}
            )
        values = {op["path"].removeprefix("/fields/"): op["value"] for op in document}
        target = request.path_params["target"]
        if request.method == "POST":
            if not target.startswith("$") or target[1:] not in TYPES:
                return refuse(call, 404, {"message": f"TF201036: work item type {target} does not exist."})
            if not values.get("System.Title"):
                return refuse(
                    call, 400, {"message": "TF401320: Rule Error for field Title. Error code: Required."}
                )
            with self.lock:
                item_id = len(self.items) + 1
                self.items[item_id] = {
                    "id": item_id,
                    "System.State": "To Do",
                    "System.Tags": "",
                    "comments": [],
                    **values,
                }
            return JSONResponse({"id": item_id, "fields": self.items[item_id]})
        item = self.items.get(int(target)) if target.isdigit() else None
        if item is None:
            return refuse(call, 404, {"message": f"TF401232: Work item {target} does not exist."})
        if "System.State" in values and values["System.State"] not in STATES:
            return refuse(
                call,
                400,
                {
                    "message": f"TF401320: Rule Error for field State: '{values['System.State']}' is not allowed."
                },
            )
        with self.lock:
            if "System.History" in values:
                item["comments"].append(values.pop("System.History"))
            item.update(values)
        return JSONResponse({"id": item["id"], "fields": item})

    async def _wiql(self, request: Request) -> Response:
        call, planned = await self.record(request)
        if planned is not None:
            return planned
        if (refused := self._refused(call, request.path_params["project"])) is not None:
            return refused
        tag = (call.json or {}).get("query", "").split("'")[1]
        return JSONResponse(
            {"workItems": [{"id": i["id"]} for i in self.items.values() if tag in i["System.Tags"]]}
        )

    async def _project(self, request: Request) -> Response:
        call, planned = await self.record(request)
        if planned is not None:
            return planned
        if (refused := self._refused(call, request.path_params["project"])) is not None:
            return refused
        return JSONResponse({"id": "p1", "name": PROJECT})

    @staticmethod
    def send(url: str, payload: dict[str, Any], *, password: str = HOOK_SECRET) -> httpx.Response:
        """A service hook, with the Basic authentication set on its subscription."""
        token = base64.b64encode(f"casework:{password}".encode()).decode()
        headers = {"content-type": "application/json", "authorization": f"Basic {token}"}
        return httpx.post(url, content=json.dumps(payload), headers=headers, timeout=30)


def commented(item_id: int, html: str, changed_by: str = "Ana Silva <ana@bank.example>") -> dict[str, Any]:
    return {
        "eventType": "workitem.commented",
        "resource": {"id": item_id, "fields": {"System.History": html, "System.ChangedBy": changed_by}},
    }


def updated(item_id: int, state: str, history: str, unique_name: str = "ana@bank.example") -> dict[str, Any]:
    return {
        "eventType": "workitem.updated",
        "resource": {
            "workItemId": item_id,
            "revisedBy": {"uniqueName": unique_name},
            "fields": {
                "System.State": {"oldValue": "To Do", "newValue": state},
                "System.History": {"newValue": history},
            },
        },
    }
