"""SLA policies and the review clock: when a decision on a review is due, when its warning point passes, and
when its clock is paused (waiting on someone outside Casework).

A review is on the clock while it waits for a decision (:data:`WAITING`: pending, or needs_adjudication, its
reviewers having disagreed so that a lead decides); a decision stops it. A project's policy (its
``review_target_hours`` is the target) applies to every evaluator unless the evaluator
has an override of any of its fields, and a risk tier's ``sla`` overrides both (:func:`policy_for` is the one
place that says so: most specific wins, field by field: tier, then evaluator, then project). A review's clock
starts when it is queued, and again when it is re-opened; a policy change applies to reviews queued after it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, literal, select, text
from sqlalchemy.orm import Session

from casework.db.models import WAITING_PREDICATE, WAITING_STATUSES, Project, Review
from casework.errors import ValidationFailed
from casework.services import review_counts
from casework.services.projects import get_project

DEFAULT_WARNING_AT = 0.75
# A queue-health alert clears only when its value falls below this share of the threshold, so that a queue
# hovering around the threshold does not announce itself every few minutes.
CLEAR_BELOW_SHARE = 0.8
# Waiting for a decision (casework.db.models.WAITING_STATUSES): a literal in the partial indexes' own words, so
# that SQLite may use them.
WAITING = text(WAITING_PREDICATE.replace("status", "reviews.status"))
POLICY_FIELDS = ("target_hours", "warning_at", "escalation_contact", "pause_when_waiting")
MAX_TARGET_HOURS = 24 * 365


@dataclass(frozen=True)
class Policy:
    target_hours: float
    warning_at: float = DEFAULT_WARNING_AT
    escalation_contact: str | None = None
    pause_when_waiting: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def project_policy(project: Project) -> Policy:
    return Policy(
        target_hours=project.review_target_hours,
        warning_at=project.sla_warning_at,
        escalation_contact=project.sla_escalation_contact,
        pause_when_waiting=project.sla_pause_when_waiting,
    )


def policy_for(project: Project, evaluator_type: str | None, tier: Mapping[str, Any] | None = None) -> Policy:
    """The SLA policy of a review: most specific wins, field by field. The risk tier's ``sla`` (``tier``: only
    the fields it sets) beats the evaluator's override (only the fields it sets), which beats the project's
    policy. ``evaluator_type`` None: no evaluator's override (the tier over the project)."""
    base = project_policy(project).as_dict()
    overrides = [(project.sla_overrides or {}).get(evaluator_type or "") or {}, tier or {}]
    for override in overrides:  # least specific first: the later one wins
        base.update(
            {name: value for name, value in override.items() if name in POLICY_FIELDS and value is not None}
        )
    return Policy(**base)


def override_problems(override: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What is wrong with an SLA override (an evaluator's or a risk tier's): (field, problem) for each."""
    problems = [
        (name, f"unknown field: one of {', '.join(POLICY_FIELDS)}")
        for name in override
        if name not in POLICY_FIELDS
    ]
    target, warning = override.get("target_hours"), override.get("warning_at")
    if target is not None and not (_is_number(target) and 0 < target <= MAX_TARGET_HOURS):
        problems.append(("target_hours", f"hours above 0, at most {MAX_TARGET_HOURS}: not {target!r}"))
    if warning is not None and not (_is_number(warning) and 0 < warning < 1):
        problems.append(("warning_at", f"a share of the target between 0 and 1: not {warning!r}"))
    contact = override.get("escalation_contact")
    if contact is not None and not (isinstance(contact, str) and contact.strip()):
        problems.append(("escalation_contact", f"who is told, as text: not {contact!r}"))
    pause = override.get("pause_when_waiting")
    if pause is not None and not isinstance(pause, bool):
        problems.append(("pause_when_waiting", f"true or false: not {pause!r}"))
    return problems


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def start_clock(review: Review, policy: Policy, *, now: datetime) -> None:
    """Start (or restart) a review's SLA clock at ``now``."""
    target = timedelta(hours=policy.target_hours)
    review.due_at = now + target
    review.warn_at = now + target * policy.warning_at
    review.due_soon_sent_at = None
    review.overdue_sent_at = None
    review.paused_at = None


def clock_values(policy: Policy, *, now: datetime) -> dict[str, datetime]:
    """The clock columns of a review queued at ``now`` (for an insert)."""
    target = timedelta(hours=policy.target_hours)
    return {"due_at": now + target, "warn_at": now + target * policy.warning_at}


def pause(review: Review, *, now: datetime) -> None:
    if review.paused_at is None:
        review.paused_at = now


def resume(review: Review, *, now: datetime) -> None:
    """Restart a paused clock: the due time and warning point move on by the time it was paused."""
    if review.paused_at is None:
        return
    paused_for = max(now - review.paused_at, timedelta(0))
    if review.due_at is not None:
        review.due_at += paused_for
    if review.warn_at is not None:
        review.warn_at += paused_for
    review.paused_at = None


def overdue_now(now: datetime) -> tuple[Any, ...]:
    """The conditions of a review overdue at ``now``: waiting for a decision, past its due time, clock running."""
    return (WAITING, Review.due_at <= now, Review.paused_at.is_(None))


def stop_clock(review: Review, *, now: datetime) -> None:
    """A decision stops the clock. A paused clock resumes first, so that the due time a decision is measured
    against (decided after it: a breach) leaves out the time the review was waiting on someone outside."""
    resume(review, now=now)


def overdue_reviews(
    session: Session, *, project_id: str, now: datetime, limit: int
) -> tuple[int, list[Review]]:
    """How many reviews waiting for a decision are past their due time (clock running), and the longest overdue
    of them."""
    rows = session.execute(
        select(Review)
        .where(Review.project_id == project_id, *overdue_now(now))
        .order_by(Review.due_at, Review.id)
        .limit(limit)
    ).scalars()
    return overdue_count(session, project_id=project_id, now=now), list(rows)


# Counting at most this many index entries of overdue reviews before counting the other side instead.
OVERDUE_COUNTED_DIRECTLY = 5_000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _count(session: Session, *where: Any, limit: int | None = None) -> int:
    inner = select(literal(1)).select_from(Review).where(*where)
    if limit is not None:
        inner = inner.limit(limit)
    return int(session.execute(select(func.count()).select_from(inner.subquery())).scalar_one())


def overdue_count(
    session: Session, *, project_id: str, now: datetime, counted_directly: int = OVERDUE_COUNTED_DIRECTLY
) -> int:
    """How many reviews waiting for a decision are past their due time, clock running: exact, without reading an
    entry per overdue review when there are many. A backlog (half a million pending reviews a day past due) is
    counted as the waiting reviews (kept counted) less those that are not overdue: not yet due (at most a
    target's worth of arrivals), without a due time, or paused (the few waiting on someone outside). Only a queue
    with both many overdue and many not yet due reads an entry per review not yet due."""
    mine = (Review.project_id == project_id, WAITING)
    overdue = _count(session, Review.project_id == project_id, *overdue_now(now), limit=counted_directly + 1)
    if overdue <= counted_directly:
        return overdue
    not_due = _count(session, *mine, Review.due_at > now)
    no_clock = _count(session, *mine, Review.due_at.is_(None))
    # The paused reviews, read through their own index (a range on paused_at: with no other column to search
    # on, SQLite would scan the waiting reviews' index instead) and picked out here.
    paused = sum(
        1
        for project, due_at in session.execute(
            select(Review.project_id, Review.due_at).where(
                Review.paused_at.is_not(None), Review.paused_at > EPOCH, WAITING
            )
        )
        if project == project_id and due_at is not None and due_at <= now
    )
    kept = review_counts.counts(session, project_id)
    waiting = sum(kept[(status, "")] for status in WAITING_STATUSES)
    # The kept count and these counts come from one snapshot on SQLite; on PostgreSQL a review decided between
    # two statements could make the difference one too small, never below zero.
    return max(waiting - not_due - no_clock - paused, 0)


# --- the policy, as the API shows and takes it -------------------------------------------------------------------


def policy_document(project: Project) -> dict[str, Any]:
    return {
        "project_id": project.id,
        **project_policy(project).as_dict(),
        "evaluators": {name: dict(value) for name, value in sorted((project.sla_overrides or {}).items())},
        "queue_thresholds": {
            "pending_count": project.queue_pending_threshold,
            "oldest_pending_hours": project.queue_oldest_threshold_hours,
            "clear_below_share": CLEAR_BELOW_SHARE,
        },
        "queue_alerts": {
            "pending_count_since": project.queue_pending_alert_at,
            "oldest_pending_since": project.queue_oldest_alert_at,
        },
    }


def get_policy(session: Session, *, workspace_id: str, project_id: str) -> dict[str, Any]:
    return policy_document(get_project(session, workspace_id=workspace_id, project_id=project_id))


def set_policy(
    session: Session,
    *,
    workspace_id: str,
    project_id: str,
    target_hours: float,
    warning_at: float = DEFAULT_WARNING_AT,
    escalation_contact: str | None = None,
    pause_when_waiting: bool = False,
    evaluators: dict[str, dict[str, Any]] | None = None,
    pending_count_threshold: int | None = None,
    oldest_pending_hours_threshold: float | None = None,
) -> dict[str, Any]:
    """Replace the project's SLA policy (its default target is the project's ``review_target_hours``), the
    evaluators' overrides and the queue-health thresholds. Reviews already queued keep their due times."""
    project = get_project(session, workspace_id=workspace_id, project_id=project_id)
    overrides = {}
    for name, override in (evaluators or {}).items():
        unknown = sorted(set(override) - set(POLICY_FIELDS))
        if unknown:
            raise ValidationFailed(
                f"An evaluator's SLA override may set {', '.join(POLICY_FIELDS)}; not {', '.join(unknown)}.",
                details={"evaluator_type": name, "fields": unknown},
            )
        overrides[name] = {key: value for key, value in override.items() if value is not None}
    project.review_target_hours = target_hours
    project.sla_warning_at = warning_at
    project.sla_escalation_contact = escalation_contact
    project.sla_pause_when_waiting = pause_when_waiting
    project.sla_overrides = overrides
    project.queue_pending_threshold = pending_count_threshold
    project.queue_oldest_threshold_hours = oldest_pending_hours_threshold
    return policy_document(project)
