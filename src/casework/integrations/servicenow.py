"""ServiceNow: a review creates a record through the Table API (``sn_grc_issue`` by default, or ``incident``, or
any table), with the review's due time; resolving it in Casework closes the record with the decision in its
notes; an outbound REST message from ServiceNow (a business rule on the record) sends a decision back, and may
send the record's ``active`` flag: a record no longer active (closed, resolved, cancelled) lets its review's SLA
clock run again.

Calls use the Table API directly (ServiceNow publishes no official Python SDK). Inbound messages carry the
integration's secret in ``X-Casework-Token`` (or an HMAC in ``X-Casework-Signature``).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from pydantic import Field, model_validator

from casework.errors import BadRequest
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
from casework.integrations.shared_secret import check_token_or_hmac

CLOSE_DEFAULTS = {
    "sn_grc_issue": {"state": "3"},  # Closed
    "incident": {"state": "6", "close_code": "Solution provided"},  # Resolved (needs a close code and notes)
}


class ServiceNowConfig(IntegrationConfig):
    SECRETS = frozenset({"password", "oauth_token", "inbound_secret"})
    URLS = frozenset({"instance_url"})

    instance_url: str = Field(description="https://your-instance.service-now.com")
    username: str | None = Field(default=None, description="An integration user (Basic auth, with password).")
    password: str | None = None
    oauth_token: str | None = Field(default=None, description="Or an OAuth access token (Bearer).")
    table: str = Field(
        default="sn_grc_issue", pattern=r"^[a-z0-9_]+$", description="The table records go in."
    )
    due_field: str = Field(default="due_date", description="The field that gets the review's due time.")
    fields: dict[str, str] = Field(
        default_factory=dict, description="More fields for new records (assignment_group)."
    )
    close_fields: dict[str, str] | None = Field(
        default=None, description="Fields set when Casework decides. Default: the table's closed state."
    )
    inbound_secret: str = Field(min_length=16, description="Sent by ServiceNow's outbound REST message.")

    @model_validator(mode="after")
    def _credentials(self) -> ServiceNowConfig:
        if not self.oauth_token and not (self.username and self.password):
            raise ValueError("give username and password, or oauth_token")
        return self


def _headers(config: dict[str, Any], secrets: dict[str, str]) -> dict[str, str]:
    headers = {"accept": "application/json"}
    if secrets.get("oauth_token"):
        headers["authorization"] = f"Bearer {secrets['oauth_token']}"
    else:
        headers["authorization"] = basic_auth(config["username"], secrets["password"])
    return headers


def _table(config: dict[str, Any], sys_id: str | None = None) -> str:
    path = f"{config['instance_url'].rstrip('/')}/api/now/table/{config.get('table') or 'sn_grc_issue'}"
    return f"{path}/{sys_id}" if sys_id else path


def glide_time(value: datetime) -> str:
    """The Table API's date-time: UTC, ``YYYY-MM-DD HH:MM:SS``."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def due_time(review: dict[str, Any]) -> datetime | None:
    """The review's SLA due time when it has one; else when its project's review target runs out."""
    due = messages.parse_time(review.get("due_at"))
    if due is not None:
        return due
    created = messages.parse_time(review.get("created_at"))
    hours = review.get("review_target_hours")
    return created + timedelta(hours=float(hours)) if created is not None and hours is not None else None


class ServiceNow:
    name = "servicenow"
    title = "ServiceNow"
    config: type[IntegrationConfig] = ServiceNowConfig
    events = frozenset(REVIEW_EVENTS)
    default_events: tuple[str, ...] = REVIEW_EVENTS

    async def send(self, out: Outgoing, http: httpx.AsyncClient) -> Sent:
        watch = Stopwatch()
        headers = _headers(out.config, out.secrets)
        params = {"sysparm_exclude_reference_link": "true"}
        if out.action == "open" and out.review is not None:
            review = out.review
            if out.attempt > 1:  # an earlier attempt may have created it before its answer was lost
                found = await call(
                    http,
                    "GET",
                    _table(out.config),
                    watch,
                    params={
                        "sysparm_query": f"correlation_id={review['id']}",
                        "sysparm_limit": "1",
                        "sysparm_fields": "sys_id,number",
                    },
                    headers=headers,
                )
                if not isinstance(found, Sent) and found.is_success and found.json().get("result"):
                    record = found.json()["result"][0]
                    return from_response(found, watch, link=self._link(out, record))
            record = {
                **out.config.get("fields", {}),
                "short_description": messages.excerpt(messages.title(review), 160),
                "description": _describe(review, out.review_url),
                "correlation_id": review["id"],
                "correlation_display": "Casework",
            }
            due = due_time(review)
            if due is not None:
                record[out.config.get("due_field") or "due_date"] = glide_time(due)
            answer = await call(
                http, "POST", _table(out.config), watch, json=record, params=params, headers=headers
            )
            if isinstance(answer, Sent) or not answer.is_success:
                return answer if isinstance(answer, Sent) else from_response(answer, watch)
            return from_response(answer, watch, link=self._link(out, answer.json()["result"]))
        if out.action == "resolve" and out.review is not None:
            if out.link is None:
                return Sent(
                    None, watch.ms, excerpt="skipped: no ServiceNow record was created for this review"
                )
            resolution = out.review.get("resolution") or {}
            note = f"Casework: {messages.decided(out.review)}.\n{resolution.get('reasoning') or ''}\n{out.review_url}"
            table = out.config.get("table") or "sn_grc_issue"
            close = out.config.get("close_fields") or CLOSE_DEFAULTS.get(table, {"state": "3"})
            body = {**close, "close_notes": note, "work_notes": note}
            answer = await call(
                http,
                "PATCH",
                _table(out.config, out.link.external_id),
                watch,
                json=body,
                params=params,
                headers=headers,
            )
            return answer if isinstance(answer, Sent) else from_response(answer, watch)
        if out.action == "reply":
            body = {"work_notes": f"Casework: {out.payload['text']}"}
            answer = await call(
                http,
                "PATCH",
                _table(out.config, out.payload["reply_to"]),
                watch,
                json=body,
                params=params,
                headers=headers,
            )
            return answer if isinstance(answer, Sent) else from_response(answer, watch)
        if out.action == "test":
            answer = await call(
                http, "GET", _table(out.config), watch, params={"sysparm_limit": "1"}, headers=headers
            )
            return answer if isinstance(answer, Sent) else from_response(answer, watch)
        return Sent(None, watch.ms, excerpt=f"skipped: ServiceNow has nothing to do for {out.action}")

    @staticmethod
    def _link(out: Outgoing, record: dict[str, Any]) -> Link:
        table = out.config.get("table") or "sn_grc_issue"
        url = f"{out.config['instance_url'].rstrip('/')}/nav_to.do?uri={table}.do?sys_id={record['sys_id']}"
        return Link(str(record["sys_id"]), url, {"number": record.get("number"), "table": table})

    async def receive(self, request: Inbound, decide: Decide, http: httpx.AsyncClient) -> Reply:
        check_token_or_hmac(request.headers, request.body, request.secrets["inbound_secret"], "ServiceNow")
        try:
            payload: dict[str, Any] = json.loads(request.body)
        except ValueError:
            raise BadRequest(
                "Expected JSON: {sys_id, classification, reasoning, tags, user_email}."
            ) from None
        sys_id = str(payload.get("sys_id") or "")
        reviews = await request.linked(sys_id) if sys_id else []
        if not reviews:
            return Reply(
                404, {"status": "refused", "message": f"No Casework review is linked to record {sys_id!r}."}
            )
        active = _flag(payload.get("active"))
        if active is not None:
            linked = await request.ticket_state(sys_id, not active)
            if "classification" not in payload:
                return noted(sys_id, not active, linked)
        tags = payload.get("tags")
        outcome = await decide(
            Decision(
                review_id=reviews[0],
                classification=str(payload.get("classification") or ""),
                reasoning=str(payload.get("reasoning") or ""),
                reviewer=str(payload["user_email"]) if payload.get("user_email") else None,
                tags=tags if isinstance(tags, list) else messages.split_tags(str(tags or "")),
                reply_to=sys_id,
            )
        )
        return Reply(200, {"status": outcome.status, "message": outcome.message})


def _flag(value: Any) -> bool | None:
    """A record's ``active`` as a business rule sends it: true or false, as JSON or as text; None when absent."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _describe(review: dict[str, Any], url: str) -> str:
    lines = [
        f"Evaluator: {review.get('evaluator_type')}",
        f"Judge: {messages.verdict(review)}",
    ]
    proposed = messages.suggestion(review)
    if proposed:
        lines.append(f"Memory suggests: {proposed}")
    lines += [
        f"Options: {', '.join(review.get('options') or [])}",
        "",
        "Query:",
        messages.excerpt(review.get("query"), 4000),
        "",
        "Response:",
        messages.excerpt(review.get("response"), 4000),
        "",
        f"Decide in Casework: {url}",
    ]
    return "\n".join(lines)
