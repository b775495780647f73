"""Webhook endpoints and their deliveries: the database side. Sending is in casework.subscribers.webhooks.

An endpoint receives the events it subscribes to (``"*"`` for all) of its workspace, or of one project. Each
event becomes one delivery per endpoint; deliveries about the same object (one review, one control) go out in
event order, each waiting until the one before it has succeeded or failed for good. Every attempt is kept.

Each endpoint has one sender job (``DELIVER``, named by the endpoint's ``sender_job_id``) while it has
deliveries pending: it sends them in batches, records each batch in one transaction, and ends, or waits for the
next retry's time, when none is due. Queueing deliveries and ending a sender both hold the endpoint's row
locked, so a delivery is never left pending with no sender to send it.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Table, and_, bindparam, func, insert, or_, select, text, update
from sqlalchemy.orm import Session

from casework.db.engine import mark_for_wake
from casework.db.models import Event, Job, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from casework.db.types import utcnow
from casework.errors import DeliveryNotFound, ValidationFailed, WebhookNotFound
from casework.events import ALL_TYPES, EventType
from casework.ids import new_id
from casework.secrets import SecretBox
from casework.services import events
from casework.services.auth import Principal
from casework.services.jobs import ClaimedJob, finish_job, held, queue_job
from casework.services.pagination import decode_cursor, encode_cursor, to_json_time
from casework.services.projects import get_project

DELIVER = "webhook.deliver"
# Deliveries a sender reads, sends and records at once.
SEND_BATCH = 100
# "pending", written out: SQLite uses a partial index only for a query that names its predicate's literal.
_PENDING = text("webhook_deliveries.status = 'pending'")
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
    try:
        parts.port  # noqa: B018 (read to check it: out of range or not a number raises)
    except ValueError:
        raise ValidationFailed(
            "url has a port that is not a number from 1 to 65535.", details={"field": "url"}
        ) from None
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
            select(WebhookEndpoint)
            .where(WebhookEndpoint.workspace_id.in_(workspaces), WebhookEndpoint.enabled.is_(True))
            .order_by(WebhookEndpoint.id)  # the order _add_deliveries locks them in, as every writer does
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
    # Locked first (the order every writer of deliveries keeps: endpoint, then deliveries), so that the
    # endpoint's sender, which ends under the same lock, either sees these deliveries or has ended before
    # wake_sender looks at it.
    locked = _locked(session, endpoint.id)
    if locked is None:  # deleted meanwhile, with its deliveries
        return 0
    endpoint = locked
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
    if rows:
        session.execute(insert(WebhookDelivery), rows)
        if any(row["status"] == "pending" for row in rows):
            wake_sender(session, endpoint)
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
    locked = _locked(session, endpoint.id)  # first, then its deliveries: the order every writer keeps
    session.add(WebhookDelivery(**values))
    if locked is not None:
        wake_sender(session, locked)


def _locked(session: Session, endpoint_id: str) -> WebhookEndpoint | None:
    return session.execute(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def wake_sender(session: Session, endpoint: WebhookEndpoint) -> None:
    """Make sure the endpoint's sender will look at its pending deliveries now: the sender queued or running
    stays (one that waits for a retry's time is brought forward), else a new one is queued. The caller holds
    the endpoint's row locked."""
    if endpoint.sender_job_id is not None:
        job = session.execute(
            select(Job).where(Job.id == endpoint.sender_job_id).execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if job is not None and job.status in ("queued", "running"):
            now = utcnow()
            if job.status == "queued" and job.available_at > now:
                # Only while still queued: a worker may claim it meanwhile (its lease is not to be cut short).
                session.execute(
                    update(Job)
                    .where(Job.id == job.id, Job.status == "queued", Job.available_at > now)
                    .values(available_at=now)
                    .execution_options(synchronize_session=False)
                )
                mark_for_wake(session)
            return  # a running sender looks for more, under the endpoint's lock, before it ends
    job_id = new_id("job")
    queue_job(
        session,
        kind=DELIVER,
        project_id=endpoint.project_id,
        payload={"endpoint_id": endpoint.id},
        job_id=job_id,
    )
    endpoint.sender_job_id = job_id


def _start_next(session: Session, delivery: WebhookDelivery) -> None:
    """The delivery is over: the next one about the same object, if any, may go."""
    session.flush()
    _start_next_of(session, {(delivery.endpoint_id, delivery.ordering_key)})


def _start_next_of(session: Session, chains: set[tuple[str, str]]) -> None:
    """These (endpoint, object) chains' deliveries in hand are over: the next one waiting in each becomes
    pending (its endpoint's sender, which settled these, sends it next), unless one of the chain is pending
    still (a redelivery, or a test message, joined it out of turn): one at a time. Read after the settled
    deliveries were written: on PostgreSQL a delivery being queued behind one of them holds its row locked
    (_add_deliveries) until it commits, so the write waited and this read sees the new one."""
    if not chains:
        return
    unfinished = session.execute(
        select(
            WebhookDelivery.id,
            WebhookDelivery.endpoint_id,
            WebhookDelivery.ordering_key,
            WebhookDelivery.status,
        )
        .where(
            WebhookDelivery.endpoint_id.in_(sorted({endpoint for endpoint, _ in chains})),
            WebhookDelivery.ordering_key.in_(sorted({key for _, key in chains})),
            WebhookDelivery.status.in_(("waiting", "pending")),
        )
        .order_by(WebhookDelivery.event_position)
    ).all()
    busy = {(endpoint_id, key) for _, endpoint_id, key, status in unfinished if status == "pending"}
    going: dict[tuple[str, str], str] = {}
    for delivery_id, endpoint_id, key, status in unfinished:
        if status == "waiting" and (endpoint_id, key) in chains and (endpoint_id, key) not in busy:
            going.setdefault((endpoint_id, key), delivery_id)
    if going:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(list(going.values())))
            .values(status="pending", next_attempt_at=None)
            .execution_options(synchronize_session=False)
        )


# --- sending (each endpoint's sender job) -------------------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    delivery_id: str
    url: str
    event_id: str
    body: bytes
    secrets: list[str]  # current first, then the previous one while it is still valid


def due(session: Session, *, endpoint_id: str, box: SecretBox, limit: int = SEND_BATCH) -> list[Outgoing]:
    """The endpoint's next deliveries to send: pending, due (a retry waits for its time), in log order, at
    most one per object (the rest of a chain waits), each rendered; none when the endpoint is disabled (or
    gone). One read; each event rendered once and each secret opened once."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or not endpoint.enabled:
        return []
    now = utcnow()
    rows = session.execute(
        select(WebhookDelivery.id, Event)
        .join(Event, Event.seq == WebhookDelivery.event_seq)
        .where(
            WebhookDelivery.endpoint_id == endpoint_id,
            _PENDING,
            or_(WebhookDelivery.next_attempt_at.is_(None), WebhookDelivery.next_attempt_at <= now),
        )
        .order_by(WebhookDelivery.event_position)
        .limit(limit)
    ).all()
    if not rows:
        return []
    sealed = [endpoint.secret] + (
        [endpoint.previous_secret]
        if endpoint.previous_secret
        and endpoint.previous_secret_expires_at
        and endpoint.previous_secret_expires_at > now
        else []
    )
    secrets_ = [box.open(value) for value in sealed]
    found = []
    for delivery_id, event in rows:
        record = events.event_record(event)
        body = _json_bytes({"type": record["type"], "timestamp": record["timestamp"], "data": record["data"]})
        found.append(Outgoing(delivery_id, endpoint.url, event.id, body, secrets_))
    return found


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


def settle(
    session: Session,
    *,
    claimed: ClaimedJob,
    endpoint_id: str,
    sent: Sequence[tuple[str, AttemptResult]],
    retry_delay: Callable[[int], float],
    max_attempts: int,
    disable_after: int,
    yield_now: bool = False,
) -> str:
    """Record a sender's batch (``sent``: (delivery id, result) pairs) and say what the sender does next, in one
    transaction under the endpoint's lock. Returns "more" (deliveries are due: go on), "later" (the job is
    queued again: for the next retry's time, or at once when ``yield_now`` asks it to give its slot to
    others), "done" (nothing pending: the job is over) or "lost" (this worker's lease ran out: nothing was
    recorded, another worker sends these again).

    A delivery that failed is tried again after ``retry_delay(attempts made)`` seconds, up to
    ``max_attempts`` attempts; 410 disables the endpoint at once, and ``disable_after`` deliveries in a row
    failing every attempt disable it too. A disabled endpoint's pending deliveries fail, not sent."""
    endpoint = _locked(session, endpoint_id)
    job = held(session, claimed.id, claimed.token)
    if job is None:
        return "lost"
    now = utcnow()
    if endpoint is None:  # deleted, with its deliveries
        job.status, job.finished_at, job.lease_token = "done", now, None
        return "done"
    succeeded = [(delivery_id, result) for delivery_id, result in sent if result.succeeded]
    if succeeded:
        _settle_succeeded(session, succeeded, now)
    for delivery_id, result in sent:  # in log order: a success ends the run of failures before it, not after
        if result.succeeded:
            endpoint.failed_in_a_row = 0
        else:
            _settle_failed(
                session, endpoint, delivery_id, result, now, retry_delay, max_attempts, disable_after
            )
    if not endpoint.enabled:
        _fail_unsent(session, endpoint)
    pending = session.execute(
        select(
            func.count(),
            func.min(WebhookDelivery.next_attempt_at),
            func.count().filter(
                or_(WebhookDelivery.next_attempt_at.is_(None), WebhookDelivery.next_attempt_at <= now)
            ),
        ).where(WebhookDelivery.endpoint_id == endpoint_id, _PENDING)
    ).one()
    count, next_at, due_now = pending
    if due_now and not yield_now:
        return "more"
    job.lease_token = None
    if count:
        # Queued again (its attempts start over: only a sender whose worker died counts against it).
        job.status, job.attempts = "queued", 0
        job.available_at = now if due_now or next_at is None else max(next_at, now)
        return "later"
    job.status, job.finished_at = "done", now
    endpoint.sender_job_id = None
    return "done"


def _settle_succeeded(session: Session, sent: Sequence[tuple[str, AttemptResult]], now: datetime) -> None:
    ids = [delivery_id for delivery_id, _ in sent]
    session.execute(
        insert(WebhookAttempt),
        [
            {
                "delivery_id": delivery_id,
                "attempted_at": now,
                "status_code": result.status_code,
                "latency_ms": round(result.latency_ms, 1),
                "response_excerpt": result.response_excerpt,
                "error": None,
            }
            for delivery_id, result in sent
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
            next_attempt_at=None,
            finished_at=now,
        ),
        [{"delivery": delivery_id, "code": result.status_code} for delivery_id, result in sent],
    )
    settled = session.execute(
        select(WebhookDelivery.endpoint_id, WebhookDelivery.ordering_key).where(WebhookDelivery.id.in_(ids))
    ).all()
    _start_next_of(session, {(endpoint_id, key) for endpoint_id, key in settled})


def _settle_failed(
    session: Session,
    endpoint: WebhookEndpoint,
    delivery_id: str,
    result: AttemptResult,
    now: datetime,
    retry_delay: Callable[[int], float],
    max_attempts: int,
    disable_after: int,
) -> None:
    delivery = session.get_one(WebhookDelivery, delivery_id, populate_existing=True)
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
    if result.status_code == 410:
        if endpoint.enabled:
            _disable(session, endpoint, "the receiver answered 410 Gone")
    elif delivery.attempts < max_attempts:
        delivery.next_attempt_at = now + timedelta(seconds=retry_delay(delivery.attempts))
        return
    else:
        endpoint.failed_in_a_row += 1
        if endpoint.failed_in_a_row >= disable_after and endpoint.enabled:
            _disable(session, endpoint, f"{endpoint.failed_in_a_row} deliveries in a row failed every retry")
    delivery.status = "failed"
    delivery.next_attempt_at = None
    delivery.finished_at = now
    _start_next(session, delivery)


def _fail_unsent(session: Session, endpoint: WebhookEndpoint) -> None:
    """The disabled endpoint's pending deliveries fail without being sent, and so, in turn, does each one
    waiting behind them."""
    while True:
        ids = list(
            session.execute(
                select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint.id, _PENDING)
            ).scalars()
        )
        if not ids:
            return
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(ids))
            .values(
                status="failed",
                last_error=f"not sent: the endpoint is disabled ({endpoint.disabled_reason})",
                next_attempt_at=None,
                finished_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        keys = session.execute(
            select(WebhookDelivery.ordering_key).where(WebhookDelivery.id.in_(ids))
        ).scalars()
        _start_next_of(session, {(endpoint.id, key) for key in keys})


def wake_stranded_senders(session: Session) -> int:
    """A sender for each endpoint with deliveries pending and none queued or running: one whose job failed
    every attempt (the database was down, say) leaves its deliveries waiting for the endpoint's next event.
    A safety net the maintenance job runs; returns how many it woke."""
    live = select(Job.id).where(
        Job.id == WebhookEndpoint.sender_job_id, Job.status.in_(("queued", "running"))
    )
    pending = select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == WebhookEndpoint.id, _PENDING)
    stranded = list(
        session.execute(
            select(WebhookEndpoint.id).where(pending.exists(), ~live.exists()).order_by(WebhookEndpoint.id)
        ).scalars()
    )
    woken = 0
    for endpoint_id in stranded:
        endpoint = _locked(session, endpoint_id)
        if endpoint is not None:  # not deleted meanwhile
            wake_sender(session, endpoint)
            woken += 1
    return woken


def wake_sender_of(session: Session, *, claimed: ClaimedJob) -> None:
    """A job queued before senders were one per endpoint (``{"delivery_id": ...}``): it wakes that delivery's
    endpoint's sender, and is over."""
    delivery = session.get(WebhookDelivery, str(claimed.payload.get("delivery_id")))
    endpoint = _locked(session, delivery.endpoint_id) if delivery is not None else None
    if endpoint is not None and delivery is not None and delivery.status == "pending":
        wake_sender(session, endpoint)
    finish_job(session, claimed=claimed)


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
        endpoint = _locked(session, endpoint.id) or endpoint
        delivery.status = "pending"
        delivery.attempts = 0  # a full retry schedule again
        delivery.next_attempt_at = None
        delivery.finished_at = None
        wake_sender(session, endpoint)
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
