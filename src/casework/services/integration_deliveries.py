"""Integration deliveries: the outbound work of integrations, on the database side. Sending is in
casework.subscribers.integrations; what each tool is sent is in casework.integrations.<kind>.

Events become deliveries (``review.created`` → ``open``: post the message, create the issue; ``review.resolved``
→ ``resolve``: update it, close it; ``review.reopened`` → ``update``, for Slack). Work about one review goes out in event order, each waiting until the one
before it has succeeded or failed for good, so a decision never overtakes the message it updates. Every attempt
is kept; the admin page and ``GET /api/v1/integrations/{id}/deliveries`` show them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from casework.db.dialect import insert_ignoring_conflict
from casework.db.models import (
    Event,
    Integration,
    IntegrationAttempt,
    IntegrationDelivery,
    IntegrationLink,
    Project,
    Review,
    Span,
)
from casework.db.types import utcnow
from casework.ids import new_id
from casework.integrations import messages
from casework.integrations.base import Link, Outgoing, Sent
from casework.secrets import SecretBox
from casework.services import events, sla
from casework.services.auth import Principal
from casework.services.integrations import get_integration, open_secrets
from casework.services.jobs import ClaimedJob, held, queue_job
from casework.services.review_queries import review_record
from casework.services.web_pages import queue_health

DELIVER = "integration.deliver"
DIGEST = "integration.digest"
# What each event asks of an integration. ``update``: show the review as it now is (a reopened review's
# message gets its buttons back); only kinds that list the event in their ``events`` receive it.
ACTIONS = {
    "review.created": "open",
    "review.resolved": "resolve",
    "review.reopened": "update",
    # SLA alerts (casework.services.sla_sweep): Slack and Teams post them, when an integration lists them.
    **{type: "alert" for type in messages.ALERT_EVENTS},
}
EXCERPT_CHARS = 1000


# --- creating deliveries -------------------------------------------------------------------------------------


def create_deliveries(session: Session, batch: Sequence[Event]) -> int:
    """One delivery per (enabled integration that wants it, event); returns how many were created."""
    workspaces = sorted({event.workspace_id for event in batch})
    integrations = list(
        session.execute(
            select(Integration).where(Integration.workspace_id.in_(workspaces), Integration.enabled.is_(True))
        ).scalars()
    )
    created = 0
    for event in batch:
        action = ACTIONS.get(event.type)
        if action is None:
            continue
        for integration in integrations:
            if (
                integration.workspace_id == event.workspace_id
                and integration.project_id in (None, event.project_id)
                and event.type in integration.events
                and event.created_at >= integration.created_at
            ):
                created += (
                    add_delivery(
                        session,
                        integration,
                        action=action,
                        review_id=event.object_id,
                        event_id=event.id,
                        position=event.position or 0,
                        dedupe_key=f"event:{event.id}",
                        payload={"type": event.type} if action == "alert" else None,
                    )
                    is not None
                )
    return created


def add_delivery(
    session: Session,
    integration: Integration,
    *,
    action: str,
    dedupe_key: str,
    review_id: str | None = None,
    event_id: str | None = None,
    position: int | None = None,
    payload: dict[str, Any] | None = None,
    ordering_key: str | None = None,
) -> str | None:
    """Queue one delivery (in order behind any unfinished one about the same review); None when its
    ``dedupe_key`` was queued before."""
    key = ordering_key or review_id or f"{action}:{dedupe_key}"
    # Locked: a delivery finishing right now either commits first (then it is not ahead any more) or waits for
    # this transaction (then it sees this one waiting, and starts it). Unlocked, on PostgreSQL, the two could
    # pass each other and leave this one waiting for ever.
    ahead = (
        session.execute(
            select(IntegrationDelivery.id)
            .where(
                IntegrationDelivery.integration_id == integration.id,
                IntegrationDelivery.ordering_key == key,
                IntegrationDelivery.status.in_(("waiting", "pending")),
            )
            .limit(1)
            .with_for_update()
        ).first()
        is not None
    )
    values = {
        "id": new_id("ind"),
        "integration_id": integration.id,
        "action": action,
        "review_id": review_id,
        "event_id": event_id,
        "ordering_key": key[:80],
        "dedupe_key": dedupe_key[:200],
        "position": position if position is not None else events.end_of_log(session) + 1,
        "payload": payload or {},
        "status": "waiting" if ahead else "pending",
        "attempts": 0,
        "created_at": utcnow(),
    }
    if not insert_ignoring_conflict(
        session, IntegrationDelivery, values, conflict_columns=["integration_id", "dedupe_key"]
    ):
        return None
    if not ahead:
        queue_job(
            session, kind=DELIVER, project_id=integration.project_id, payload={"delivery_id": values["id"]}
        )
    return str(values["id"])


def _start_next(session: Session, delivery: IntegrationDelivery) -> None:
    following = session.execute(
        select(IntegrationDelivery)
        .where(
            IntegrationDelivery.integration_id == delivery.integration_id,
            IntegrationDelivery.ordering_key == delivery.ordering_key,
            IntegrationDelivery.status == "waiting",
        )
        .order_by(IntegrationDelivery.position, IntegrationDelivery.created_at)
        .limit(1)
    ).scalar_one_or_none()
    if following is not None:
        following.status = "pending"
        queue_job(session, kind=DELIVER, payload={"delivery_id": following.id})


def send_test(session: Session, *, principal: Principal, integration_id: str) -> IntegrationDelivery:
    """A test message to this integration's tool, now; its outcome is in the delivery log."""
    integration = get_integration(session, principal=principal, integration_id=integration_id)
    delivery_id = add_delivery(
        session,
        integration,
        action="test",
        dedupe_key=new_id("test"),
        payload={"text": f"A test message from Casework, sent by {principal.label}."},
    )
    return session.get_one(IntegrationDelivery, delivery_id)


def queue_reply(session: Session, *, integration: Integration, reply_to: str, text: str) -> None:
    """An answer in the tool (a comment, a work note) to a decision that could not be applied."""
    add_delivery(
        session,
        integration,
        action="reply",
        dedupe_key=new_id("reply"),
        ordering_key=f"reply:{reply_to}",
        payload={"text": text, "reply_to": reply_to},
    )


def queue_digests(session: Session, *, tick: float) -> int:
    """The daily digest of every integration that posts one: pending reviews, the oldest, and how many are past
    their project's review target; nothing when nothing is waiting. Once per integration per tick, however many
    workers ask."""
    queued = 0
    for integration in session.execute(select(Integration).where(Integration.enabled.is_(True))).scalars():
        if not integration.config.get("digest"):
            continue
        summary = digest(session, integration)
        if not summary["pending"]:
            continue
        queued += (
            add_delivery(
                session, integration, action="digest", dedupe_key=f"digest:{int(tick)}", payload=summary
            )
            is not None
        )
    return queued


def digest(session: Session, integration: Integration) -> dict[str, Any]:
    query = select(Project).where(Project.workspace_id == integration.workspace_id)
    if integration.project_id is not None:
        query = query.where(Project.id == integration.project_id)
    pending = overdue = 0
    oldest: datetime | None = None
    now = utcnow()
    for project in session.execute(query).scalars():
        health = queue_health(session, project.id)
        pending += health.pending
        if health.oldest is not None and (oldest is None or health.oldest < oldest):
            oldest = health.oldest
        overdue += sla.overdue_count(session, project_id=project.id, now=now)
    path = f"/projects/{integration.project_id}/queue" if integration.project_id else "/"
    return {
        "pending": pending,
        "overdue": overdue,
        "oldest": messages.duration((now - oldest).total_seconds()) if oldest else None,
        "path": path,
    }


# --- sending (the deliver job) ----------------------------------------------------------------------------------


def outgoing(
    session: Session, *, delivery_id: str, box: SecretBox, public_url: str, attempt: int
) -> Outgoing | None:
    """What to send; None when there is nothing to send (the delivery is over, or its integration is disabled:
    then it fails and the next one about its review may go)."""
    delivery = session.get(IntegrationDelivery, delivery_id)
    if delivery is None or delivery.status != "pending":
        return None
    integration = session.get_one(Integration, delivery.integration_id)
    if not integration.enabled:
        _settle(session, delivery, "failed", error="not sent: the integration is disabled")
        return None
    review: dict[str, Any] | None = None
    if delivery.event_id is not None:
        event = session.execute(select(Event).where(Event.id == delivery.event_id)).scalar_one_or_none()
        review = dict(event.data) if event is not None else None
    elif delivery.review_id is not None:
        found = session.get(Review, delivery.review_id)
        review = review_record(found) if found is not None else None
    if review is not None:
        # What a kind may need beyond the review record: its span's attributes (a Zendesk ticket id there),
        # its project's review target (the due time, when the review has no SLA of its own).
        review.setdefault("span_attributes", _span_attributes(session, review))
        project = session.get(Project, review.get("project_id"))
        if project is not None:
            review.setdefault("review_target_hours", project.review_target_hours)
    link = None
    if delivery.review_id is not None:
        row = session.get(IntegrationLink, (integration.id, delivery.review_id))
        if row is not None:
            link = Link(row.external_id, row.url, dict(row.data))
    payload = dict(delivery.payload)
    if "path" in payload:
        payload["url"] = public_url + payload["path"]
    return Outgoing(
        delivery_id=delivery.id,
        integration_id=integration.id,
        kind=integration.kind,
        action=delivery.action,
        config=dict(integration.config),
        secrets=open_secrets(integration, box),
        review=review,
        link=link,
        payload=payload,
        public_url=public_url,
        attempt=attempt,
    )


def _span_attributes(session: Session, review: dict[str, Any]) -> dict[str, Any]:
    """The attributes of the span a review came from (Zendesk reads a ticket id there)."""
    if not (review.get("span_id") and review.get("trace_id")):
        return {}
    span = session.execute(
        select(Span.attributes).where(
            Span.project_id == review["project_id"],
            Span.trace_id == review["trace_id"],
            Span.span_id == review["span_id"],
        )
    ).scalar_one_or_none()
    return dict(span or {})


def record_attempt(
    session: Session, *, claimed: ClaimedJob, delivery_id: str, result: Sent, last_attempt: bool
) -> str:
    """Keep the attempt and its link, and settle the delivery when it is over. Returns "succeeded", "failed",
    "retry" or "lost" (this worker's lease ran out: the next attempt is someone else's)."""
    job = held(session, claimed.id, claimed.token)
    if job is None:
        return "lost"
    delivery = session.get_one(IntegrationDelivery, delivery_id)
    session.add(
        IntegrationAttempt(
            delivery_id=delivery.id,
            attempted_at=utcnow(),
            status_code=result.status_code,
            latency_ms=round(result.latency_ms, 1),
            response_excerpt=(result.excerpt or None) and str(result.excerpt)[:EXCERPT_CHARS],
            error=result.error,
        )
    )
    delivery.attempts += 1
    delivery.last_status_code = result.status_code
    delivery.last_error = result.error
    if result.succeeded:
        if result.link is not None and delivery.review_id is not None:
            _keep_link(session, delivery.integration_id, delivery.review_id, result.link)
        outcome = "succeeded"
    elif result.permanent or last_attempt:
        outcome = "failed"
    else:
        return "retry"
    _settle(session, delivery, outcome, error=result.error)
    job.status = "done"
    job.finished_at = utcnow()
    job.lease_token = None
    return outcome


def _settle(session: Session, delivery: IntegrationDelivery, status: str, *, error: str | None) -> None:
    delivery.status = status
    delivery.last_error = error
    delivery.finished_at = utcnow()
    session.flush()  # the row is locked before the next is looked for (see add_delivery)
    _start_next(session, delivery)


def _keep_link(session: Session, integration_id: str, review_id: str, link: Link) -> None:
    if session.get(Review, review_id) is None:
        return
    row = session.get(IntegrationLink, (integration_id, review_id))
    if row is None:
        session.add(
            IntegrationLink(
                integration_id=integration_id,
                review_id=review_id,
                external_id=link.external_id,
                url=link.url,
                data=link.data,
                created_at=utcnow(),
            )
        )
    else:
        row.external_id, row.url, row.data = link.external_id, link.url, link.data


def note_next_attempt(session: Session, *, delivery_id: str, at: datetime) -> None:
    session.execute(
        update(IntegrationDelivery).where(IntegrationDelivery.id == delivery_id).values(next_attempt_at=at)
    )
