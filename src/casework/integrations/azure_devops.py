"""Azure DevOps Boards: a new review creates a work item (title, an HTML description with the interaction and the
verdict, tags, a link back); a service hook on a comment ``classification: ... reasoning: ...`` or on a change to
a mapped state submits the decision; a decision made in Casework comments on the work item and moves it to its
done state; a service hook on a state change (or a deletion) says whether the work item is closed, and the SLA
sweep pauses a review's clock only while it is open. The Jira kind's twin, through the Azure DevOps REST API (7.1): Microsoft's Python package for it
(``azure-devops``) is a generated client still in beta, and four calls do not need it.

Service hooks are authenticated by the Basic authentication their subscription sends: the password must be the
integration's ``hook_secret`` (or the secret comes in an ``X-Casework-Token`` header).
"""

from __future__ import annotations

import base64
import hmac
import html
import json
import re
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import Field

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
from casework.integrations.jira import DEFAULT_LABELS

API_VERSION = "7.1"
# The closed states of the stock processes (Basic, Agile, Scrum, CMMI): done, resolved or removed.
CLOSED_STATES = ("Done", "Closed", "Resolved", "Removed", "Completed")
PATCH_JSON = "application/json-patch+json"


class AzureDevOpsConfig(IntegrationConfig):
    SECRETS = frozenset({"personal_access_token", "hook_secret"})
    URLS = frozenset({"organization_url"})

    organization_url: str = Field(
        description="https://dev.azure.com/your-organization (or your Server's collection URL)."
    )
    project: str = Field(min_length=1, description="The project work items are created in.")
    personal_access_token: str = Field(min_length=8, description="A PAT with Work Items: Read & write.")
    work_item_type: str = Field(default="Task", description="Task, Issue (Basic process), Bug ...")
    tags: list[str] = Field(default_factory=lambda: ["casework"], description="Tags on every work item.")
    done_state: str = Field(default="Done", description="The state a decided review's work item moves to.")
    hook_secret: str = Field(min_length=16, description="The password the service hooks send (Basic auth).")
    state_map: dict[str, str] = Field(
        default_factory=dict, description="A change to one of these states decides: state → classification."
    )
    closed_states: list[str] = Field(
        default_factory=lambda: list(CLOSED_STATES),
        description="States in which a work item no longer waits on anyone (its review's SLA clock runs again); "
        "done_state always is one.",
    )
    comment_labels: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_LABELS),
        description="The words that start a deciding comment's lines.",
    )


def _headers(secrets: dict[str, str], content_type: str | None = None) -> dict[str, str]:
    headers = {
        "authorization": basic_auth("", secrets["personal_access_token"]),
        "accept": "application/json",
    }
    if content_type:
        headers["content-type"] = content_type
    return headers


def _segment(name: str) -> str:
    return quote(name, safe="")


def _url(config: dict[str, Any], path: str) -> str:
    return f"{config['organization_url'].rstrip('/')}/{_segment(config['project'])}/_apis/{path.lstrip('/')}"


def _html(paragraphs: list[tuple[str, str]]) -> str:
    parts = []
    for heading, text in paragraphs:
        if heading:
            parts.append(f"<h3>{html.escape(heading)}</h3>")
        if text:
            parts.append("<p>" + html.escape(text).replace("\n", "<br>") + "</p>")
    return "".join(parts)


def html_text(value: Any) -> str:
    """Text from the HTML Azure DevOps stores comments in."""
    text = re.sub(r"(?i)<br\s*/?>|</(div|p|li|h[1-6])>", "\n", str(value or ""))
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip()


def _email(person: Any) -> str | None:
    """``ana@bank.example`` from an identity: ``{"uniqueName": ...}`` or ``"Ana Silva <ana@bank.example>"``."""
    if isinstance(person, dict):
        person = person.get("uniqueName") or person.get("mailAddress") or ""
    match = re.search(r"<([^<>@\s]+@[^<>\s]+)>", str(person or ""))
    found = match.group(1) if match else str(person or "").strip()
    return found if "@" in found else None


class AzureDevOps:
    name = "azure_devops"
    title = "Azure DevOps"
    config: type[IntegrationConfig] = AzureDevOpsConfig
    events = frozenset(REVIEW_EVENTS)
    default_events: tuple[str, ...] = REVIEW_EVENTS

    async def send(self, out: Outgoing, http: httpx.AsyncClient) -> Sent:
        watch = Stopwatch()
        params = {"api-version": API_VERSION}
        if out.action == "open" and out.review is not None:
            return await self._create(out, http, watch)
        if out.action in ("resolve", "reply"):
            if out.action == "resolve" and out.review is not None:
                if out.link is None:
                    return Sent(None, watch.ms, excerpt="skipped: no work item was created for this review")
                item = out.link.external_id
                resolution = out.review.get("resolution") or {}
                note = _html(
                    [
                        ("", f"Casework: {messages.decided(out.review)}."),
                        ("", resolution.get("reasoning") or ""),
                        ("", out.review_url),
                    ]
                )
                document = [
                    {"op": "add", "path": "/fields/System.History", "value": note},
                    {
                        "op": "add",
                        "path": "/fields/System.State",
                        "value": out.config.get("done_state") or "Done",
                    },
                ]
            else:
                item = out.payload["reply_to"]
                document = [
                    {
                        "op": "add",
                        "path": "/fields/System.History",
                        "value": _html([("", f"Casework: {out.payload['text']}")]),
                    }
                ]
            answer = await call(
                http,
                "PATCH",
                _url(out.config, f"wit/workitems/{item}"),
                watch,
                params=params,
                content=json.dumps(document),
                headers=_headers(out.secrets, PATCH_JSON),
            )
            return answer if isinstance(answer, Sent) else from_response(answer, watch)
        if out.action == "test":
            project = _segment(out.config["project"])
            url = f"{out.config['organization_url'].rstrip('/')}/_apis/projects/{project}"
            answer = await call(http, "GET", url, watch, params=params, headers=_headers(out.secrets))
            return answer if isinstance(answer, Sent) else from_response(answer, watch)
        return Sent(None, watch.ms, excerpt=f"skipped: Azure DevOps has nothing to do for {out.action}")

    async def _create(self, out: Outgoing, http: httpx.AsyncClient, watch: Stopwatch) -> Sent:
        review = out.review or {}
        marker = f"casework-{review['id']}"
        if out.attempt > 1:  # an earlier attempt may have created it before its answer was lost
            query = {"query": f"SELECT [System.Id] FROM WorkItems WHERE [System.Tags] CONTAINS '{marker}'"}
            found = await call(
                http,
                "POST",
                _url(out.config, "wit/wiql"),
                watch,
                params={"api-version": API_VERSION},
                json=query,
                headers=_headers(out.secrets),
            )
            if not isinstance(found, Sent) and found.is_success and found.json().get("workItems"):
                item = str(found.json()["workItems"][0]["id"])
                return from_response(found, watch, link=self._link(out, item))
        paragraphs = [
            ("Query", messages.excerpt(review.get("query"), 5000)),
            ("Response", messages.excerpt(review.get("response"), 5000)),
            ("Judge", f"{review.get('evaluator_type')}: {messages.verdict(review)}"),
        ]
        proposed = messages.suggestion(review)
        if proposed:
            paragraphs.append(("Memory suggests", proposed))
        paragraphs.append(
            (
                "Decide",
                f"Open in Casework: {out.review_url}, or comment here with the lines 'classification: ...' "
                f"(one of {', '.join(review.get('options') or [])}) and 'reasoning: ...'.",
            )
        )
        tags = [*(out.config.get("tags") or []), str(review.get("evaluator_type")), marker]
        document = [
            {
                "op": "add",
                "path": "/fields/System.Title",
                "value": messages.excerpt(messages.title(review), 250),
            },
            {"op": "add", "path": "/fields/System.Description", "value": _html(paragraphs)},
            {
                "op": "add",
                "path": "/fields/System.Tags",
                "value": "; ".join(dict.fromkeys(t.replace(";", " ") for t in tags)),
            },
        ]
        kind = _segment(out.config.get("work_item_type") or "Task")
        answer = await call(
            http,
            "POST",
            _url(out.config, f"wit/workitems/${kind}"),
            watch,
            params={"api-version": API_VERSION},
            content=json.dumps(document),
            headers=_headers(out.secrets, PATCH_JSON),
        )
        if isinstance(answer, Sent) or not answer.is_success:
            return answer if isinstance(answer, Sent) else from_response(answer, watch)
        return from_response(answer, watch, link=self._link(out, str(answer.json()["id"])))

    @staticmethod
    def _link(out: Outgoing, item: str) -> Link:
        url = f"{out.config['organization_url'].rstrip('/')}/{_segment(out.config['project'])}/_workitems/edit/{item}"
        return Link(item, url, {"id": item})

    async def receive(self, request: Inbound, decide: Decide, http: httpx.AsyncClient) -> Reply:
        secret = request.secrets["hook_secret"]
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        password = ""
        if scheme.lower() == "basic":
            try:
                password = base64.b64decode(credentials).decode().partition(":")[2]
            except ValueError:
                password = ""
        token = request.headers.get("x-casework-token", "")
        if not any(
            value and hmac.compare_digest(value.encode(), secret.encode()) for value in (password, token)
        ):
            raise Unauthenticated(
                "The service hook's Basic authentication (or X-Casework-Token) does not match hook_secret."
            )
        try:
            payload: dict[str, Any] = json.loads(request.body)
        except ValueError:
            raise BadRequest("Expected an Azure DevOps service hook's JSON body.") from None
        state = work_item_state(request.config, payload)
        linked = await request.ticket_state(*state) if state is not None else 0
        found = self._decision(request.config, payload)
        if found is None:
            if state is not None:
                return noted(*state, linked)
            return Reply(200, {"status": "ignored", "message": "Not a decision."})
        item, classification, reasoning, tags, email = found
        reviews = await request.linked(item)
        if not reviews:
            return Reply(200, {"status": "ignored", "message": f"Work item {item} is not a Casework review."})
        outcome = await decide(Decision(reviews[0], classification, reasoning, email, tags, reply_to=item))
        return Reply(200, {"status": outcome.status, "message": outcome.message})

    @staticmethod
    def _decision(
        config: dict[str, Any], payload: dict[str, Any]
    ) -> tuple[str, str, str, list[str], str | None] | None:
        resource = payload.get("resource") or {}
        fields = resource.get("fields") or {}
        labels = {**DEFAULT_LABELS, **(config.get("comment_labels") or {})}
        if payload.get("eventType") == "workitem.commented":
            parsed = messages.parse_decision_text(html_text(fields.get("System.History")), labels)
            if not parsed.get("classification"):
                return None
            author = resource.get("revisedBy") or fields.get("System.ChangedBy")
            return (
                str(resource.get("id")),
                parsed["classification"],
                parsed.get("reasoning", ""),
                messages.split_tags(parsed.get("tags")),
                _email(author),
            )
        if payload.get("eventType") == "workitem.updated":
            state = (fields.get("System.State") or {}).get("newValue")
            mapped = {k.lower(): v for k, v in (config.get("state_map") or {}).items()}
            if not isinstance(state, str) or state.lower() not in mapped:
                return None
            history = (fields.get("System.History") or {}).get("newValue")
            return (
                str(resource.get("workItemId") or resource.get("id")),
                mapped[state.lower()],
                html_text(history),
                [],
                _email(resource.get("revisedBy")),
            )
        return None


def work_item_state(config: dict[str, Any], payload: dict[str, Any]) -> tuple[str, bool] | None:
    """(work item id, whether it is closed) when a service hook says: deleted (closed), or moved to a new state
    (closed when it is one of ``closed_states`` or ``done_state``); None when it does not say."""
    resource = payload.get("resource") or {}
    event = payload.get("eventType")
    if event == "workitem.deleted" and resource.get("id") is not None:
        return str(resource["id"]), True
    if event != "workitem.updated":
        return None
    state = ((resource.get("fields") or {}).get("System.State") or {}).get("newValue")
    item = resource.get("workItemId") or resource.get("id")
    if not isinstance(state, str) or item is None:
        return None
    closed = [*config.get("closed_states", CLOSED_STATES), config.get("done_state") or "Done"]
    return str(item), state.lower() in {name.lower() for name in closed}
