"""A fake Jira Cloud: the REST API v3 calls Casework makes, checked as Jira checks them (Basic auth with an API
token, required fields, Atlassian Document Format, labels without spaces, transitions from the current status),
and a Jira that sends webhooks signed with the webhook's secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.base import Call, FakeTool, basic, refuse

EMAIL = "casework-bot@bank.example"
API_TOKEN = "ATATT3xFfGF0-test-token"
WEBHOOK_SECRET = "jira-webhook-secret-0123456789"
PROJECT = "COMP"
USERS = {"acc-ana": "ana@bank.example", "acc-hidden": None}
WORKFLOW = {
    "To Do": [("11", "Start", "In Progress"), ("31", "Done", "Done"), ("41", "Compliant", "Compliant")],
    "In Progress": [("31", "Done", "Done"), ("41", "Compliant", "Compliant")],
    "Compliant": [("51", "Reopen", "To Do")],
    "Done": [("51", "Reopen", "To Do")],
}


@dataclass
class FakeJira(FakeTool):
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)

    def routes(self) -> list[Route]:
        return [Route("/rest/api/3/{path:path}", self._api, methods=["GET", "POST", "PUT"])]

    def reset_state(self) -> None:
        self.issues = {}

    def issue_for(self, review_id: str) -> dict[str, Any] | None:
        with self.lock:
            for issue in self.issues.values():
                if f"casework-{review_id}" in issue["fields"]["labels"]:
                    return issue
        return None

    async def _api(self, request: Request) -> Response:
        call, planned = await self.record(request)
        if planned is not None:
            return planned
        if call.headers.get("authorization") != basic(EMAIL, API_TOKEN):
            return refuse(
                call, 401, {"errorMessages": ["Client must be authenticated to access this resource."]}
            )
        parts = request.path_params["path"].split("/")
        method = request.method
        if parts == ["issue"] and method == "POST":
            return self._create(call)
        if parts[0] == "issue" and len(parts) == 3 and parts[1] in self.issues:
            issue = self.issues[parts[1]]
            if parts[2] == "comment" and method == "POST":
                if _adf_problem((call.json or {}).get("body")):
                    return refuse(call, 400, {"errors": {"comment": "Comment body is not valid ADF."}})
                issue["comments"].append(call.json["body"])
                return JSONResponse({"id": str(len(issue["comments"]))}, status_code=201)
            if parts[2] == "transitions" and method == "GET":
                return JSONResponse({"transitions": [_transition(t) for t in WORKFLOW[issue["status"]]]})
            if parts[2] == "transitions" and method == "POST":
                wanted = ((call.json or {}).get("transition") or {}).get("id")
                moves = {t[0]: t[2] for t in WORKFLOW[issue["status"]]}
                if wanted not in moves:
                    return refuse(
                        call,
                        400,
                        {"errorMessages": [f"Transition id '{wanted}' is not valid for this issue."]},
                    )
                issue["status"] = moves[wanted]
                return Response(status_code=204)
        if parts[0] == "issue":
            return refuse(
                call,
                404,
                {"errorMessages": ["Issue does not exist or you do not have permission to see it."]},
            )
        if parts == ["search", "jql"] and method == "GET":
            label = call.query.get("jql", "").split('"')[1]
            found = [
                {"id": i["id"], "key": k} for k, i in self.issues.items() if label in i["fields"]["labels"]
            ]
            return JSONResponse({"issues": found})
        if parts == ["user"] and method == "GET":
            account = call.query.get("accountId")
            if account not in USERS:
                return refuse(call, 404, {"errorMessages": ["User does not exist"]})
            return JSONResponse(
                {"accountId": account} | ({"emailAddress": USERS[account]} if USERS[account] else {})
            )
        if parts == ["project", PROJECT] and method == "GET":
            return JSONResponse({"key": PROJECT, "name": "Compliance"})
        return refuse(call, 404, {"errorMessages": ["Not found"]})

    def _create(self, call: Call) -> Response:
        fields = (call.json or {}).get("fields") or {}
        errors = {}
        if (fields.get("project") or {}).get("key") != PROJECT:
            errors["project"] = "Specify a valid project ID or key"
        if (fields.get("issuetype") or {}).get("name") not in ("Task", "Bug"):
            errors["issuetype"] = "Specify a valid issue type"
        summary = fields.get("summary")
        if not summary or len(summary) > 255 or "\n" in summary:
            errors["summary"] = "You must specify a summary of the issue (one line, at most 255 characters)."
        if _adf_problem(fields.get("description")):
            errors["description"] = "Operation value must be an Atlassian Document."
        if any(not isinstance(label, str) or " " in label for label in fields.get("labels", [])):
            errors["labels"] = "Labels cannot contain spaces."
        if errors:
            return refuse(call, 400, {"errorMessages": [], "errors": errors})
        with self.lock:
            number = len(self.issues) + 1
            key = f"{PROJECT}-{number}"
            self.issues[key] = {
                "id": str(10000 + number),
                "key": key,
                "fields": fields,
                "comments": [],
                "status": "To Do",
            }
        return JSONResponse(
            {"id": str(10000 + number), "key": key, "self": f"{self.base_url}/rest/api/3/issue/{key}"},
            status_code=201,
        )

    # --- Jira sending webhooks --------------------------------------------------------------------------------

    @staticmethod
    def send(
        url: str, payload: dict[str, Any], *, secret: str = WEBHOOK_SECRET, signed: bool = True
    ) -> httpx.Response:
        body = json.dumps(payload).encode()
        headers = {"content-type": "application/json", "x-atlassian-webhook-identifier": str(uuid.uuid4())}
        if signed:
            headers["x-hub-signature"] = (
                "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            )
        return httpx.post(url, content=body, headers=headers, timeout=30)


def comment_event(key: str, text: str, account_id: str = "acc-ana") -> dict[str, Any]:
    """``comment_created`` as Jira Cloud sends it: no e-mail address, only the account id."""
    return {
        "webhookEvent": "comment_created",
        "issue": {"id": "10001", "key": key},
        "comment": {"id": "1", "body": text, "author": {"accountId": account_id, "displayName": "Ana"}},
    }


def transition_event(
    key: str, to_status: str, *, reasoning: str, account_id: str = "acc-ana"
) -> dict[str, Any]:
    return {
        "webhookEvent": "jira:issue_updated",
        "user": {"accountId": account_id},
        "issue": {"id": "10001", "key": key, "fields": {"customfield_10050": reasoning}},
        "changelog": {"items": [{"field": "status", "fromString": "To Do", "toString": to_status}]},
    }


def status_event(
    key: str, status: str, category: str, *, event: str = "jira:issue_updated"
) -> dict[str, Any]:
    """A system webhook about an issue, as Jira Cloud sends every one: the issue with its fields, its status
    among them with the status's category (``new``, ``indeterminate``, ``done``)."""
    return {
        "webhookEvent": event,
        "user": {"accountId": "acc-ana"},
        "issue": {
            "id": "10001",
            "key": key,
            "fields": {"status": {"name": status, "statusCategory": {"key": category}}},
        },
        "changelog": {"items": [{"field": "status", "fromString": "To Do", "toString": status}]},
    }


def _transition(move: tuple[str, str, str]) -> dict[str, Any]:
    return {"id": move[0], "name": move[1], "to": {"name": move[2]}}


def text_of(document: Any) -> str:
    if isinstance(document, dict):
        return (document.get("text") or "") + "\n".join(text_of(c) for c in document.get("content", []))
    return ""


def _adf_problem(document: Any) -> str | None:
    if not isinstance(document, dict) or document.get("type") != "doc" or document.get("version") != 1:
        return "not a doc of version 1"

    def walk(node: Any) -> str | None:
        if not isinstance(node, dict) or "type" not in node:
            return "a node without a type"
        if node["type"] == "text" and not node.get("text"):
            return "an empty text node"
        for child in node.get("content", []):
            found = walk(child)
            if found:
                return found
        return None

    return walk(document)
