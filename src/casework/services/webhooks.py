"""Webhook endpoints and their deliveries: the database side. Sending is in casework.subscribers.webhooks.

An endpoint receives the events it subscribes to (``"*"`` for all) of its workspace, or of one project. Each
event becomes one delivery per endpoint; deliveries about the same object (one review, one control) go out in
event order, each waiting until the one before it has succeeded or failed for good. Every attempt is kept.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Table, and_, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from casework.db.models import Event, Job, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from casework.db.types import utcnow
from casework.errors import DeliveryNotFound, ValidationFailed, WebhookNotFound
from casework.events import ALL_TYPES, EventType
from casework.ids import new_id
from casework.secrets import SecretBox
from casework.services import events
from casework.services.auth import Principal
from casework.services.jobs import ClaimedJob, finish_job, held, queue_job, queue_jobs
from casework.services.pagination import decode_cursor, encode_cursor, to_json_time
from casework.services.projects import get_project

DELIVER = "webhook.deliver"
PREVIOUS_SECRET_HOURS = 24
EXCERPT_CHARS = 1000


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


# --- addresses -------------------------------------------------------------------------------------------------


def address_allowed(address: str, *, allow_private: bool) -> bool:
    """Public unicast addresses only, unless private ones are allowed: a webhook must not reach into the
    server's own network (its database, its cloud metadata service)."""
    ip = ipaddress.ip_address(address)
    if allow_private:
        return not ip.is_unspecified and not ip.is_multicast
    return ip.is_global and not ip.is_multicast


def check_url(url: str, *, allow_private: bool) -> str:
    """422 unless ``url`` is an http(s) URL whose host, when it is written as an address, is allowed. Names are
    resolved and checked again at every delivery (they may change)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed(
            "url must be an http:// or https:// URL with a host.", details={"field": "url"}
        )
    if parts.username or parts.password:
        raise ValidationFailed("url must not carry credentials; the signature authenticates Casework.")
    host = parts.hostname
    try:
        allowed = address_allowed("127.0.0.1" if host == "localhost" else host, allow_private=allow_private)
    except ValueError:
        return url.strip()  # a name, not an address: checked at each delivery, where it is resolved
    if not allowed:
        raise ValidationFailed(
            f"{host} is a private, loopback or link-local address: refused (CASEWORK_WEBHOOKS_ALLOW_PRIVATE "
            "allows it).",
            details={"field": "url", "host": host},
        )
    return url.strip()


def _check_events(types: Sequence[str]) -> list[str]:
    cleaned = list(dict.fromkeys(types))
    unknown = [t for t in cleaned if t != "*" and t not in ALL_TYPES]
    if not cleaned or unknown:
        raise ValidationFailed(
            "events must list event types, or '*' for all." + (f" Unknown: {unknown}." if unknown else ""),
            details={"field": "events", "unknown": unknown, "allowed": [*sorted(ALL_TYPES), "*"]},
        )
    return cleaned


# --- endpoints -------------------------------------------------------------------------------------------------


def endpoint_record(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """An endpoint as the API shows it: never its secret."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": list(endpoint.events),
        "project_id": endpoint.project_id,
        "description": endpoint.description,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "failed_in_a_row": endpoint.failed_in_a_row,
        "created_at": to_json_time(endpoint.created_at),
        "created_by": endpoint.created_by,
        "updated_at": to_json_time(endpoint.updated_at),
    }


def create_endpoint(
    session: Session,
    *,
    principal: Principal,
    box: SecretBox,
    url: str,
    events: Sequence[str],
    project_id: str | None = None,
    description: str = "",
    enabled: bool = True,
    allow_private: bool = False,
) -> tuple[WebhookEndpoint, str]:
    """The new endpoint and its secret, which is shown this once."""
    principal.require_admin()
    if project_id is not None:
        get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    secret = new_secret()
    now = utcnow()
    endpoint = WebhookEndpoint(
        id=new_id("whk"),
        workspace_id=principal.workspace_id,
        project_id=project_id,
        url=check_url(url, allow_private=allow_private),
        events=_check_events(events),
        description=description,
        enabled=enabled,
        secret=box.seal(secret),
        failed_in_a_row=0,
        created_at=now,
        created_by=principal.identity,
        updated_at=now,
    )
    session.add(endpoint)
    session.flush()
    _record(session, EventType.webhook_created, endpoint, principal)
    return endpoint, secret


def _record(
    session: Session,
    type: EventType,
    endpoint: WebhookEndpoint,
    principal: Principal,
    before: dict[str, Any] | None = None,
) -> None:
    """The audit event of an admin's change: the endpoint as the API shows it, so without its secret."""
    events.emit(
        session,
        type,
        workspace_id=endpoint.workspace_id,
        project_id=endpoint.project_id,
        actor=principal.identity,
        object_type="webhook",
        object_id=endpoint.id,
        data=endpoint_record(endpoint),
        before=before,
    )


def get_endpoint(session: Session, *, principal: Principal, endpoint_id: str) -> WebhookEndpoint:
    principal.require_admin()
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.workspace_id != principal.workspace_id:
        raise WebhookNotFound(f"No webhook with id {endpoint_id!r}.", details={"webhook_id": endpoint_id})
    return endpoint


def list_endpoints(
    session: Session, *, principal: Principal, project_id: str | None = None
) -> list[WebhookEndpoint]:
    principal.require_admin()
    query = select(WebhookEndpoint).where(WebhookEndpoint.workspace_id == principal.workspace_id)
    if project_id is not None:
        query = query.where(WebhookEndpoint.project_id == project_id)
    return list(session.execute(query.order_by(WebhookEndpoint.created_at)).scalars())


def update_endpoint(
    session: Session,
    *,
    principal: Principal,
    endpoint_id: str,
    changes: dict[str, Any],
    allow_private: bool = False,
) -> WebhookEndpoint:
    """Change any of url, events, description, enabled. Enabling again clears the failure count."""
    endpoint = get_endpoint(session, principal=principal, endpoint_id=endpoint_id)
    before = endpoint_record(endpoint)
    if "url" in changes:
        endpoint.url = check_url(changes["url"], allow_private=allow_private)
    if "events" in changes:
        endpoint.events = _check_events(changes["events"])
    if "description" in changes:
        endpoint.description = changes["description"]
    if "enabled" in changes and changes["enabled"] != endpoint.enabled:
        endpoint.enabled = bool(changes["enabled"])
        if endpoint.enabled:
            endpoint.disabled_reason = None
            endpoint.failed_in_a_row = 0
        else:
            endpoint.disabled_reason = f"disabled by {principal.identity}"
    endpoint.updated_at = utcnow()
    _record(session, EventType.webhook_updated, endpoint, principal, before=before)
    return endpoint


def delete_endpoint(session: Session, *, principal: Principal, endpoint_id: str) -> None:
    endpoint = get_endpoint(session, principal=principal, endpoint_id=endpoint_id)
    _record(session, EventType.webhook_deleted, endpoint, principal)
    session.delete(endpoint)


def rotate_secret(session: Session, *, principal: Principal, endpoint_id: str, box: SecretBox) -> str:
    """A new secret (shown once); the old one still signs, beside it, for a day."""
    endpoint = get_endpoint(session, principal=principal, endpoint_id=endpoint_id)
    secret = new_secret()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = utcnow() + timedelta(hours=PREVIOUS_SECRET_HOURS)
    endpoint.secret = box.seal(secret)
    endpoint.updated_at = utcnow()
    _record(session, EventType.webhook_secret_rotated, endpoint, principal)
    return secret


# --- creating deliveries (the webhooks subscriber) ---------------------------------------------------------------


def _wants(endpoint: WebhookEndpoint, event: Event) -> bool:
    return (
        (endpoint.project_id is None or endpoint.project_id == event.project_id)
        and ("*" in endpoint.events or event.type in endpoint.events)
        and event.created_at >= endpoint.created_at
    )


def create_deliveries(session: Session, batch: Sequence[Event]) -> int:
    """One delivery per (enabled endpoint that wants it, event); returns how many were created. A few
    statements per endpoint for the whole batch: the dispatcher holds the write lock meanwhile, and on SQLite
    the API waits for it (one query and two inserts per delivery showed in the API's latency)."""
    workspaces = sorted({event.workspace_id for event in batch})
    endpoints = list(
        session.execute(
            select(WebhookEndpoint).where(
                WebhookEndpoint.workspace_id.in_(workspaces), WebhookEndpoint.enabled.is_(True)
            )
        ).scalars()
    )
    created = 0
    for endpoint in endpoints:
        wanted = [
            event
            for event in batch
            if event.type != EventType.webhook_test.value  # sent to its one endpoint directly (send_test)
            and endpoint.workspace_id == event.workspace_id
            and _wants(endpoint, event)
        ]
        created += _add_deliveries(session, endpoint, wanted)
    return created


def _add_deliveries(session: Session, endpoint: WebhookEndpoint, wanted: Sequence[Event]) -> int:
    """The endpoint's deliveries of ``wanted`` (in log order), each waiting behind any earlier one about the
    same object that is not over; those not waiting get their job."""
    if not wanted:
        return 0
    busy: set[str] = set()
    done: set[int] = set()
    keys = sorted({event.object_id for event in wanted})
    seqs = sorted(event.seq for event in wanted)
    for start in range(0, max(len(keys), len(seqs)), CHUNK):
        if keys[start : start + CHUNK]:
            busy.update(
                session.execute(
                    select(WebhookDelivery.ordering_key)
                    .where(
                        WebhookDelivery.endpoint_id == endpoint.id,
                        WebhookDelivery.ordering_key.in_(keys[start : start + CHUNK]),
                        WebhookDelivery.status.in_(("waiting", "pending")),
                    )
                    # Locked, so that a delivery finishing meanwhile either is seen finished or sees these
                    # waiting: unlocked, on PostgreSQL, the two could pass each other and leave one waiting for
                    # ever.
                    .with_for_update()
                ).scalars()
            )
        if seqs[start : start + CHUNK]:  # already created (the batch is read again after a crash)
            done.update(
                session.execute(
                    select(WebhookDelivery.event_seq).where(
                        WebhookDelivery.endpoint_id == endpoint.id,
                        WebhookDelivery.event_seq.in_(seqs[start : start + CHUNK]),
                    )
                ).scalars()
            )
    rows: list[dict[str, Any]] = []
    jobs: list[tuple[str | None, dict[str, Any]]] = []
    now = utcnow()
    for event in wanted:
        if event.seq in done:
            continue
        ahead = event.object_id in busy
        busy.add(event.object_id)
        rows.append(
            {
                "id": new_id("dlv"),
                "endpoint_id": endpoint.id,
                "event_seq": event.seq,
                "event_position": event.position or 0,
                "event_id": event.id,
                "event_type": event.type,
                "ordering_key": event.object_id,
                "status": "waiting" if ahead else "pending",
                "attempts": 0,
                "created_at": now,
            }
        )
        if not ahead:
            jobs.append((event.project_id, {"delivery_id": rows[-1]["id"]}))
    if rows:
        session.execute(insert(WebhookDelivery), rows)
        queue_jobs(session, kind=DELIVER, items=jobs)
    return len(rows)


CHUNK = 500


def _add_test_delivery(session: Session, endpoint: WebhookEndpoint, event: Event) -> None:
    """A test message's delivery: sent at once, behind nothing (its event is about no review)."""
    values = {
        "id": new_id("dlv"),
        "endpoint_id": endpoint.id,
        "event_seq": event.seq,
        "event_position": event.position or 0,
        "event_id": event.id,
        "event_type": event.type,
        "ordering_key": event.object_id,
        "status": "pending",
        "attempts": 0,
        "created_at": utcnow(),
    }
    session.add(WebhookDelivery(**values))
    queue_job(session, kind=DELIVER, project_id=event.project_id, payload={"delivery_id": values["id"]})


def _start_next(session: Session, delivery: WebhookDelivery) -> None:
    """The delivery is over: the next one about the same object, if any, may go."""
    session.flush()
    _start_next_of(session, {(delivery.endpoint_id, delivery.ordering_key)})


def _start_next_of(session: Session, chains: set[tuple[str, str]]) -> None:
    """These (endpoint, object) chains' deliveries in hand are over: the next one waiting in each may go. Read
    after the settled deliveries were written: on PostgreSQL a delivery being queued behind one of them holds
    its row locked (_add_deliveries) until it commits, so the write waited and this read sees the new one."""
    if not chains:
        return
    waiting = session.execute(
        select(WebhookDelivery.id, WebhookDelivery.endpoint_id, WebhookDelivery.ordering_key)
        .where(
            WebhookDelivery.endpoint_id.in_(sorted({endpoint for endpoint, _ in chains})),
            WebhookDelivery.ordering_key.in_(sorted({key for _, key in chains})),
            WebhookDelivery.status == "waiting",
        )
        .order_by(WebhookDelivery.event_position)
    ).all()
    going: dict[tuple[str, str], str] = {}
    for delivery_id, endpoint_id, key in waiting:
        if (endpoint_id, key) in chains:
            going.setdefault((endpoint_id, key), delivery_id)
    if going:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(list(going.values())))
            .values(status="pending")
            .execution_options(synchronize_session=False)
        )
        queue_jobs(session, kind=DELIVER, items=[(None, {"delivery_id": d}) for d in going.values()])


# --- sending (the deliver job) ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    delivery_id: str
    url: str
    event_id: str
    body: bytes
    secrets: list[str]  # current first, then the previous one while it is still valid


def outgoing(session: Session, *, delivery_ids: Sequence[str], box: SecretBox) -> dict[str, Outgoing | None]:
    """What to send for each of these deliveries, in one read (the deliver jobs running at once ask together);
    None for one with nothing to send: it is over, or its endpoint is disabled (then :func:`not_sendable`
    settles it). An event going to several endpoints is rendered once, and each endpoint's secret opened once."""
    rows = session.execute(
        select(
            WebhookDelivery.id,
            WebhookDelivery.status,
            WebhookEndpoint.enabled,
            WebhookEndpoint.url,
            WebhookEndpoint.secret,
            WebhookEndpoint.previous_secret,
            WebhookEndpoint.previous_secret_expires_at,
            Event,
        )
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .join(Event, Event.seq == WebhookDelivery.event_seq)
        .where(WebhookDelivery.id.in_(list(delivery_ids)))
    ).all()
    found: dict[str, Outgoing | None] = dict.fromkeys(delivery_ids)
    bodies: dict[int, bytes] = {}
    opened: dict[str, str] = {}
    now = utcnow()
    for delivery_id, status, enabled, url, secret, previous, previous_expires, event in rows:
        if status != "pending" or not enabled:
            continue
        if event.seq not in bodies:
            record = events.event_record(event)
            bodies[event.seq] = _json_bytes(
                {"type": record["type"], "timestamp": record["timestamp"], "data": record["data"]}
            )
        sealed = [secret] + ([previous] if previous and previous_expires and previous_expires > now else [])
        for value in sealed:
            if value not in opened:
                opened[value] = box.open(value)
        found[delivery_id] = Outgoing(
            delivery_id=delivery_id,
            url=url,
            event_id=event.id,
            body=bodies[event.seq],
            secrets=[opened[value] for value in sealed],
        )
    return found


def not_sendable(session: Session, *, claimed: ClaimedJob, delivery_id: str) -> None:
    """The delivery's job ends without sending: the delivery is over already, or its endpoint is disabled (then
    it fails, and the next one about its object is let go)."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is not None and delivery.status == "pending":
        endpoint = session.get_one(WebhookEndpoint, delivery.endpoint_id)
        if not endpoint.enabled:
            delivery.status = "failed"
            delivery.last_error = f"not sent: the endpoint is disabled ({endpoint.disabled_reason})"
            delivery.finished_at = utcnow()
            _start_next(session, delivery)
    finish_job(session, claimed=claimed)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    latency_ms: float
    response_excerpt: str | None
    error: str | None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def record_attempt(
    session: Session,
    *,
    claimed: ClaimedJob,
    delivery_id: str,
    result: AttemptResult,
    last_attempt: bool,
    disable_after: int,
) -> str:
    """Keep the attempt, and settle the delivery when it is over. Returns "succeeded", "failed" (for good),
    "retry" or "lost" (this worker's lease ran out: another attempt is someone else's)."""
    job = held(session, claimed.id, claimed.token)
    if job is None:
        return "lost"
    delivery = session.get_one(WebhookDelivery, delivery_id)
    # Locked: two deliveries failing at once must both count (on PostgreSQL two workers would otherwise each
    # read the same count and write it plus one).
    endpoint = session.get_one(
        WebhookEndpoint, delivery.endpoint_id, with_for_update=True, populate_existing=True
    )
    now = utcnow()
    session.add(
        WebhookAttempt(
            delivery_id=delivery.id,
            attempted_at=now,
            status_code=result.status_code,
            latency_ms=round(result.latency_ms, 1),
            response_excerpt=result.response_excerpt,
            error=result.error,
        )
    )
    delivery.attempts += 1
    delivery.last_status_code = result.status_code
    delivery.last_error = result.error
    if result.succeeded:
        outcome = "succeeded"
        endpoint.failed_in_a_row = 0
    elif result.status_code == 410:
        outcome = "failed"
        _disable(session, endpoint, "the receiver answered 410 Gone")
    elif last_attempt:
        outcome = "failed"
        endpoint.failed_in_a_row += 1
        if endpoint.failed_in_a_row >= disable_after and endpoint.enabled:
            _disable(session, endpoint, f"{endpoint.failed_in_a_row} deliveries in a row failed every retry")
    else:
        return "retry"
    delivery.status = outcome
    delivery.finished_at = now
    _start_next(session, delivery)
    job.status = "done"
    job.finished_at = now
    job.lease_token = None
    return outcome


@dataclass(frozen=True)
class Attempt:
    """One attempt to record: the deliver job that made it, its delivery, what came of it, and whether it was
    the last one the retry schedule allows."""

    claimed: ClaimedJob
    delivery_id: str
    result: AttemptResult
    last_attempt: bool


def record_attempts(session: Session, *, attempts: Sequence[Attempt], disable_after: int) -> list[str]:
    """:func:`record_attempt` for the attempts made at once, in one transaction; their outcomes in order.

    A success (nearly every attempt) is a handful of statements for the whole batch, whatever its size: the
    attempts inserted, the deliveries and their jobs settled, the endpoints' failure runs ended, and the next
    delivery about each object let go. At 200 events a second to two endpoints, the ORM's few statements per
    delivery cost more CPU than the API's own requests (bench/events.py). A failure takes the one-by-one path,
    which counts it against its endpoint under a lock."""
    outcomes: dict[str, str] = {}
    succeeded = [attempt for attempt in attempts if attempt.result.succeeded]
    if succeeded:
        by_job = {attempt.claimed.id: attempt for attempt in succeeded}
        jobs = session.execute(
            select(Job.id, Job.status, Job.lease_token).where(Job.id.in_(list(by_job))).with_for_update()
        ).all()
        mine = [
            by_job[job_id]
            for job_id, status, token in jobs
            if status == "running" and token == by_job[job_id].claimed.token
        ]
        outcomes.update({attempt.delivery_id: "lost" for attempt in succeeded})
        if mine:
            _settle_succeeded(session, mine)
            outcomes.update({attempt.delivery_id: "succeeded" for attempt in mine})
    for attempt in attempts:
        if not attempt.result.succeeded:
            outcomes[attempt.delivery_id] = record_attempt(
                session,
                claimed=attempt.claimed,
                delivery_id=attempt.delivery_id,
                result=attempt.result,
                last_attempt=attempt.last_attempt,
                disable_after=disable_after,
            )
    return [outcomes[attempt.delivery_id] for attempt in attempts]


def _settle_succeeded(session: Session, attempts: Sequence[Attempt]) -> None:
    now = utcnow()
    ids = [attempt.delivery_id for attempt in attempts]
    session.execute(
        insert(WebhookAttempt),
        [
            {
                "delivery_id": attempt.delivery_id,
                "attempted_at": now,
                "status_code": attempt.result.status_code,
                "latency_ms": round(attempt.result.latency_ms, 1),
                "response_excerpt": attempt.result.response_excerpt,
                "error": None,
            }
            for attempt in attempts
        ],
    )
    deliveries = WebhookDelivery.__table__
    assert isinstance(deliveries, Table)
    session.connection().execute(
        update(deliveries)
        .where(deliveries.c.id == bindparam("delivery"))
        .values(
            attempts=deliveries.c.attempts + 1,
            last_status_code=bindparam("code"),
            last_error=None,
            status="succeeded",
            finished_at=now,
        ),
        [{"delivery": attempt.delivery_id, "code": attempt.result.status_code} for attempt in attempts],
    )
    session.execute(
        update(Job)
        .where(Job.id.in_([attempt.claimed.id for attempt in attempts]))
        .values(status="done", finished_at=now, lease_token=None)
        .execution_options(synchronize_session=False)
    )
    settled = session.execute(
        select(WebhookDelivery.endpoint_id, WebhookDelivery.ordering_key).where(WebhookDelivery.id.in_(ids))
    ).all()
    endpoints = sorted({endpoint_id for endpoint_id, _ in settled})
    session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id.in_(endpoints), WebhookEndpoint.failed_in_a_row != 0)
        .values(failed_in_a_row=0)
        .execution_options(synchronize_session=False)
    )
    _start_next_of(session, {(endpoint_id, key) for endpoint_id, key in settled})


def _disable(session: Session, endpoint: WebhookEndpoint, reason: str) -> None:
    endpoint.enabled = False
    endpoint.disabled_reason = reason
    endpoint.updated_at = utcnow()
    events.emit(
        session,
        EventType.webhook_disabled,
        workspace_id=endpoint.workspace_id,
        project_id=endpoint.project_id,
        actor="casework-webhooks",
        object_type="webhook",
        object_id=endpoint.id,
        data=endpoint_record(endpoint),
    )


def note_next_attempt(session: Session, *, delivery_id: str, at: datetime) -> None:
    session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(next_attempt_at=at)
    )


# --- reading and redelivering ------------------------------------------------------------------------------------


def delivery_record(delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "webhook_id": delivery.endpoint_id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "status": delivery.status,
        "attempts": [
            {
                "attempted_at": to_json_time(a.attempted_at),
                "status_code": a.status_code,
                "latency_ms": a.latency_ms,
                "response_excerpt": a.response_excerpt,
                "error": a.error,
            }
            for a in attempts
        ],
        "next_attempt_at": to_json_time(delivery.next_attempt_at) if delivery.status == "pending" else None,
        "created_at": to_json_time(delivery.created_at),
        "finished_at": to_json_time(delivery.finished_at),
    }


@dataclass
class DeliveryPage:
    deliveries: list[dict[str, Any]]
    next_cursor: str | None


def list_deliveries(
    session: Session,
    *,
    principal: Principal,
    endpoint_id: str,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> DeliveryPage:
    """Newest first, each with every attempt."""
    get_endpoint(session, principal=principal, endpoint_id=endpoint_id)
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if status:
        query = query.where(WebhookDelivery.status == status)
    if cursor:
        created_at, delivery_id = decode_cursor(cursor, types=(datetime, str))
        query = query.where(
            or_(
                WebhookDelivery.created_at < created_at,
                and_(WebhookDelivery.created_at == created_at, WebhookDelivery.id < delivery_id),
            )
        )
    rows = list(
        session.execute(
            query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(limit + 1)
        ).scalars()
    )
    page = rows[:limit]
    attempts: dict[str, list[WebhookAttempt]] = {d.id: [] for d in page}
    if page:
        for attempt in session.execute(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(list(attempts)))
            .order_by(WebhookAttempt.id)
        ).scalars():
            attempts[attempt.delivery_id].append(attempt)
    next_cursor = encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return DeliveryPage([delivery_record(d, attempts[d.id]) for d in page], next_cursor)


def redeliver(
    session: Session, *, principal: Principal, endpoint_id: str, delivery_id: str
) -> WebhookDelivery:
    """Send a finished delivery again (the same event id, so receivers can tell it is a repeat)."""
    endpoint = get_endpoint(session, principal=principal, endpoint_id=endpoint_id)
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint.id:
        raise DeliveryNotFound(
            f"No delivery {delivery_id!r} of this webhook.", details={"delivery_id": delivery_id}
        )
    if delivery.status in ("succeeded", "failed"):
        delivery.status = "pending"
        delivery.finished_at = None
        queue_job(session, kind=DELIVER, project_id=endpoint.project_id, payload={"delivery_id": delivery.id})
    return delivery


def send_test(session: Session, *, principal: Principal, endpoint_id: str) -> WebhookDelivery:
    """A ``webhook.test`` event, delivered to this endpoint only."""
    endpoint = get_endpoint(session, principal=principal, endpoint_id=endpoint_id)
    event_id = events.emit(
        session,
        EventType.webhook_test,
        workspace_id=endpoint.workspace_id,
        project_id=endpoint.project_id,
        actor=principal.identity,
        object_type="webhook",
        object_id=endpoint.id,
        data={"webhook_id": endpoint.id, "message": "A test message from Casework."},
    )
    event = session.execute(select(Event).where(Event.id == event_id)).scalar_one()
    _add_test_delivery(session, endpoint, event)
    return session.execute(
        select(WebhookDelivery).where(
            WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.event_id == event_id
        )
    ).scalar_one()


def forget_expired_secrets(session: Session) -> int:
    """Drop previous secrets whose day has passed (a scheduled job)."""
    result = session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.previous_secret_expires_at < utcnow())
        .values(previous_secret=None, previous_secret_expires_at=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
