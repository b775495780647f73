"""The SLA sweep (a scheduled job, once per tick however many workers there are): pause and resume review
clocks, announce each review's warning point and due time once, and announce queue thresholds crossed and
cleared, with hysteresis.

Every review waiting for a decision (``casework.services.sla.WAITING``: pending, or needs_adjudication) is on the
clock, and is announced due soon and overdue once each. What counts as "waiting on someone outside"
(:func:`waiting_outside`): the review waits for a lead (needs_adjudication: its reviewers disagreed), or it has an
open ticket in a ticketing integration (Jira, ServiceNow, Zendesk, Azure DevOps). Its clock pauses there only
when its SLA policy (its risk tier's, else its evaluator's, else the project's:
``casework.services.risk_tiers.sla_policy``) says ``pause_when_waiting``. It resumes, the due time moved on by
the time paused, when the review no longer waits (back to pending, its ticket closed or its link gone), when the
policy stops pausing, and at the decision (``casework.services.sla.stop_clock``). Chat integrations (Slack,
Teams) post where reviewers are, so they do not pause.

A ticket is open from when the integration creates it (its link) until the tool says it is closed
(``IntegrationLink.closed_at``, set by ``casework.services.integration_decisions.note_ticket_state``), and again
if the tool says it was reopened. Casework never polls the tools: it knows a ticket's state only from what their
inbound requests carry. Jira's webhooks carry the issue's status category (done: closed) and say when an issue
is deleted; Azure DevOps's service hooks carry a work item's new state (closed: one of the integration's
``closed_states``) and its deletion; ServiceNow's outbound message and Zendesk's webhook carry the record's
``active`` flag and the ticket's ``status`` (solved or closed: closed) when their rule sends them. A tool set up
without those keeps its tickets open as far as Casework knows, so their reviews stay paused until they are
decided or their link is gone: the docs of each integration say how to send the state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from casework.db.models import Integration, IntegrationLink, Project, Review, RiskPolicy
from casework.db.types import utcnow
from casework.events import EventType
from casework.services import events, risk_tiers, sla
from casework.services.pagination import to_json_time
from casework.services.review_queries import review_record
from casework.services.web_pages import queue_health

SWEEP = "sla.sweep"
TICKET_KINDS = ("jira", "servicenow", "zendesk", "azure_devops")
BATCH = 500
ACTOR = "casework-sla"
# A literal, so that SQLite may use the index on the project's reviews by status (ix_reviews_queue).
_WAITING_FOR_A_LEAD = text("reviews.status = 'needs_adjudication'")


@dataclass
class SweepOutcome:
    paused: int = 0
    resumed: int = 0
    due_soon: int = 0
    overdue: int = 0
    thresholds: int = 0

    def total(self) -> int:
        return self.paused + self.resumed + self.due_soon + self.overdue + self.thresholds


def _ticketed() -> Any:
    """The ids of reviews with an open ticket (the tool has not said it is closed): read from the links (few),
    never by scanning the pending reviews."""
    return (
        select(IntegrationLink.review_id)
        .join(Integration, Integration.id == IntegrationLink.integration_id)
        .where(Integration.kind.in_(TICKET_KINDS), IntegrationLink.closed_at.is_(None))
    )


def _may_pause(project: Project, tiers: dict[str, Any] | None) -> bool:
    """Whether any of the project's SLA policies pauses: the project's, an evaluator's or a risk tier's."""
    overrides = list((project.sla_overrides or {}).values())
    overrides += [tier.get("sla") or {} for tier in (tiers or {}).get("tiers") or []]
    return project.sla_pause_when_waiting or any(o.get("pause_when_waiting") for o in overrides)


def _policy(session: Session, project: Project, review: Review) -> sla.Policy:
    """A review's SLA policy as it stands now: its tier's, its evaluator's, the project's."""
    tier = risk_tiers.tier_of(session, project.id, review.tier)
    return risk_tiers.sla_policy(project, review.evaluator_type, tier)


def _projects(session: Session, ids: set[str]) -> dict[str, Project]:
    if not ids:
        return {}
    return {p.id: p for p in session.execute(select(Project).where(Project.id.in_(sorted(ids)))).scalars()}


def waiting_outside(review: Review, ticketed: set[str]) -> bool:
    """Whether the review waits on someone outside: a lead (needs_adjudication), or an open ticket (its id is in
    ``ticketed``, read with :func:`_ticketed`)."""
    return review.status == "needs_adjudication" or review.id in ticketed


def pause_and_resume(session: Session, *, now: datetime | None = None) -> SweepOutcome:
    """Pause the clock of reviews that wait on someone outside (where their policy says so); resume those that
    no longer wait, or whose policy no longer pauses."""
    now = now or utcnow()
    outcome = SweepOutcome()
    tiered = {saved.project_id: saved.document for saved in session.execute(select(RiskPolicy)).scalars()}
    pausing = [p.id for p in session.execute(select(Project)).scalars() if _may_pause(p, tiered.get(p.id))]
    candidates: dict[str, Review] = {}
    if pausing:
        running = (Review.project_id.in_(pausing), Review.paused_at.is_(None))
        lookups = [select(Review).where(_WAITING_FOR_A_LEAD, *running)]
        # The ticketed reviews read from the links (few), then each by its id: never a walk through a project's
        # pending reviews (a join leaves SQLite free to walk them).
        ticketed_ids = list(dict.fromkeys(session.execute(_ticketed()).scalars()))
        lookups += [
            select(Review).where(Review.id.in_(ticketed_ids[at : at + BATCH]), sla.WAITING, *running)
            for at in range(0, len(ticketed_ids), BATCH)
        ]
        for lookup in lookups:
            candidates.update((r.id, r) for r in session.execute(lookup.with_for_update()).scalars())
    paused = list(
        session.execute(
            select(Review).where(Review.paused_at.is_not(None), sla.WAITING).with_for_update()
        ).scalars()
    )
    projects = _projects(session, {r.project_id for r in [*candidates.values(), *paused]})
    for review in candidates.values():
        if _policy(session, projects[review.project_id], review).pause_when_waiting:
            sla.pause(review, now=now)
            outcome.paused += 1
    ticketed = (
        set(
            session.execute(
                _ticketed().where(IntegrationLink.review_id.in_([r.id for r in paused]))
            ).scalars()
        )
        if paused
        else set()
    )
    for review in paused:
        policy = _policy(session, projects[review.project_id], review)
        if not waiting_outside(review, ticketed) or not policy.pause_when_waiting:
            sla.resume(review, now=now)
            outcome.resumed += 1
    return outcome


def _announce(session: Session, type: EventType, review: Review, project: Project) -> None:
    policy = _policy(session, project, review)
    data = review_record(review)
    data["sla"] = {**policy.as_dict(), "warn_at": to_json_time(review.warn_at)}
    events.emit(
        session,
        type,
        workspace_id=project.workspace_id,
        project_id=review.project_id,
        actor=ACTOR,
        object_type="review",
        object_id=review.id,
        data=data,
    )


def announce_overdue(session: Session, *, now: datetime | None = None, limit: int = BATCH) -> int:
    """``review.overdue`` once for each review waiting for a decision past its due time (clock running); the warning is then
    marked as sent too, so that a review found late is never told "due soon" after "overdue"."""
    now = now or utcnow()
    rows = list(
        session.execute(
            select(Review)
            .where(*sla.overdue_now(now), Review.overdue_sent_at.is_(None))
            .order_by(Review.due_at)
            .limit(limit)
            .with_for_update()
        ).scalars()
    )
    projects = _projects(session, {r.project_id for r in rows})
    for review in rows:
        review.overdue_sent_at = now
        review.due_soon_sent_at = review.due_soon_sent_at or now
        _announce(session, EventType.review_overdue, review, projects[review.project_id])
    return len(rows)


def announce_due_soon(session: Session, *, now: datetime | None = None, limit: int = BATCH) -> int:
    """``review.due_soon`` once for each review waiting for a decision past its warning point (clock running)."""
    now = now or utcnow()
    rows = list(
        session.execute(
            select(Review)
            .where(
                sla.WAITING,
                Review.due_soon_sent_at.is_(None),
                Review.warn_at <= now,
                Review.paused_at.is_(None),
            )
            .order_by(Review.warn_at)
            .limit(limit)
            .with_for_update()
        ).scalars()
    )
    projects = _projects(session, {r.project_id for r in rows})
    for review in rows:
        review.due_soon_sent_at = now
        _announce(session, EventType.review_due_soon, review, projects[review.project_id])
    return len(rows)


def check_thresholds(session: Session, *, now: datetime | None = None) -> int:
    """Announce each project's queue crossing a threshold (value at or above it) and clearing it (value below
    ``CLEAR_BELOW_SHARE`` of it, or the threshold removed); returns how many events were written."""
    now = now or utcnow()
    written = 0
    projects = session.execute(
        select(Project)
        .where(
            Project.queue_pending_threshold.is_not(None)
            | Project.queue_oldest_threshold_hours.is_not(None)
            | Project.queue_pending_alert_at.is_not(None)
            | Project.queue_oldest_alert_at.is_not(None)
        )
        .order_by(Project.id)
        .with_for_update()
    ).scalars()
    for project in projects:
        health = queue_health(session, project.id)
        oldest_hours = (now - health.oldest).total_seconds() / 3600 if health.oldest else 0.0
        for metric, value, threshold, attribute in (
            (
                "pending_count",
                float(health.pending),
                project.queue_pending_threshold,
                "queue_pending_alert_at",
            ),
            (
                "oldest_pending_hours",
                oldest_hours,
                project.queue_oldest_threshold_hours,
                "queue_oldest_alert_at",
            ),
        ):
            since = getattr(project, attribute)
            if since is None and threshold is not None and value >= threshold:
                setattr(project, attribute, now)
                type = EventType.queue_threshold_crossed
            elif since is not None and (threshold is None or value < threshold * sla.CLEAR_BELOW_SHARE):
                setattr(project, attribute, None)
                type = EventType.queue_threshold_cleared
            else:
                continue
            events.emit(
                session,
                type,
                workspace_id=project.workspace_id,
                project_id=project.id,
                actor=ACTOR,
                object_type="project",
                object_id=project.id,
                data={
                    "project_id": project.id,
                    "project_name": project.name,
                    "metric": metric,
                    "value": int(value) if metric == "pending_count" else round(value, 3),
                    "threshold": threshold,
                    "clear_below": None if threshold is None else round(threshold * sla.CLEAR_BELOW_SHARE, 3),
                    "pending": health.pending,
                    "oldest_pending_at": to_json_time(health.oldest),
                    "escalation_contact": project.sla_escalation_contact,
                    "since": to_json_time(since)
                    if type == EventType.queue_threshold_cleared
                    else to_json_time(now),
                },
            )
            written += 1
    return written
