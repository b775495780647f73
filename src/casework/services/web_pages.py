"""What each page of the reviewer UI shows, read in one transaction per page."""

from __future__ import annotations

import re
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Date, Integer, cast, func, select, text
from sqlalchemy.orm import Session

from casework.db.models import (
    Control,
    ControlVersion,
    Decision,
    Evaluation,
    Evaluator,
    Event,
    Project,
    Review,
    Span,
)
from casework.db.types import utcnow
from casework.errors import (
    DecisionAlreadySubmitted,
    EvaluatorNotFound,
    GoldenSetNotFound,
    ReviewAlreadyResolved,
    ReviewClaimed,
    ReviewNeedsAdjudication,
    TraceNotFound,
    ValidationFailed,
)
from casework.events import ALL_TYPES
from casework.services import agreement_reports, review_counts, risk_tiers, rollups, sla
from casework.services import controls as control_service
from casework.services import reviews as review_service
from casework.services.auth import Principal, Role
from casework.services.control_conflicts import Conflict, find_conflicts
from casework.services.evaluators import get_evaluator, list_evaluators, update_evaluator
from casework.services.evaluators import latest as latest_evaluator
from casework.services.evaluators import options_for as evaluator_options
from casework.services.events import list_audit
from casework.services.golden_compare import compare_runs
from casework.services.golden_runs import list_runs
from casework.services.golden_sets import list_golden_sets, read_golden_set
from casework.services.pagination import to_json_time
from casework.services.projects import get_project, update_project
from casework.services.review_queries import ReviewFilters, list_reviews
from casework.services.reviews import Feedback
from casework.services.traces import TraceTree, get_trace
from casework.tracing.openinference import interaction_of


@dataclass
class QueueHealth:
    pending: int
    oldest: datetime | None


def queue_health(session: Session, project_id: str) -> QueueHealth:
    """Pending now (kept counted) and the oldest pending review (first entry of the pending-age index)."""
    oldest = session.execute(
        select(Review.created_at)
        .where(Review.project_id == project_id, PENDING_ONLY)
        .order_by(Review.created_at)
        .limit(1)
    ).scalar_one_or_none()
    return QueueHealth(
        pending=review_counts.counts(session, project_id)[review_counts.PENDING], oldest=oldest
    )


# A literal, not a bound parameter: only then may SQLite use the partial index on pending reviews.
PENDING_ONLY = text("reviews.status = 'pending'")


@dataclass
class ProjectRow:
    project: Project
    health: QueueHealth
    overdue: int = 0


def projects_page(session: Session, *, principal: Principal) -> list[ProjectRow]:
    projects = session.execute(
        select(Project).where(Project.workspace_id == principal.workspace_id).order_by(Project.name)
    ).scalars()
    now = utcnow()
    return [
        ProjectRow(
            project=p,
            health=queue_health(session, p.id),
            overdue=sla.overdue_count(session, project_id=p.id, now=now),
        )
        for p in projects
    ]


@dataclass(frozen=True)
class Routing:
    """Why a review is waiting for a person: a short label for the queue, and the detail behind it."""

    label: str
    detail: str


def why_queued(review: Review, threshold: float | None) -> Routing:
    """Why this review was sent to people: the reason stored when it was queued (a spot check, a risk tier's
    rule, a re-opening); otherwise what the judge (ours, or the caller's for a review queued through the API)
    said: ambiguous, something that is not an option, or less sure than its evaluator's threshold."""
    if review.kind == "spot_check" or review.reason == "spot_check":
        return Routing(
            "spot check", "A random share of automatic decisions is checked by people: this is one of them."
        )
    if review.reason == "tier_rule":
        tier = f" {review.tier}" if review.tier else ""
        return Routing(f"risk tier{tier}", f"Its risk tier{tier} sends this verdict to people.")
    if review.reason == "reopened":
        return Routing(
            "re-opened",
            "Re-opened: a control memory decided it with was changed or retired, or a person overturned memory.",
        )
    confidence = review.confidence
    if review.classification == "ambiguous":
        return Routing("judge said ambiguous", "The judge answered ambiguous.")
    if review.classification not in (review.options or []):
        return Routing(
            "answer not an option", f"The judge answered {review.classification!r}, not one of the options."
        )
    if confidence is not None and threshold is not None and confidence < threshold:
        return Routing(
            f"confidence under {threshold:.2f}",
            f"Confidence {confidence:.2f} is under the evaluator's threshold, {threshold:.2f}.",
        )
    if not (review.attributes or {}).get("evaluation_id"):
        return Routing("sent through the API", "Queued through the API, not by an evaluator.")
    return Routing("judge's verdict", "The judge's verdict, sent for a person to confirm.")


@dataclass
class QueueRow:
    review: Review
    routing: Routing
    deciding: str | None = None  # another person who has it open now
    suggestion: Suggestion | None = None  # memory's, on a pending review that shows one


@dataclass
class QueuePage:
    project: Project
    health: QueueHealth
    rows: list[QueueRow]
    next_cursor: str | None
    evaluators: list[str]
    overdue: int = 0


def queue_page(
    session: Session, *, principal: Principal, filters: ReviewFilters, cursor: str | None, limit: int = 50
) -> QueuePage:
    project = get_project(session, workspace_id=principal.workspace_id, project_id=filters.project_id)
    page = list_reviews(session, principal=principal, filters=filters, limit=limit, cursor=cursor)
    evaluators = list_evaluators(session, principal=principal, project_id=project.id)
    thresholds = {e.name: e.ambiguity_threshold for e in evaluators}
    now = utcnow()
    return QueuePage(
        project=project,
        health=queue_health(session, project.id),
        rows=[
            QueueRow(
                r,
                why_queued(r, thresholds.get(r.evaluator_type)),
                holder_name(r.claimed_by or "")
                if review_service.claimed_by_other(r, principal.identity, now)
                else None,
                _suggestion(session, r, controls=False) if _shows_suggestion(r) else None,
            )
            for r in page.reviews
        ],
        next_cursor=page.next_cursor,
        evaluators=[e.name for e in evaluators],
        overdue=sla.overdue_count(session, project_id=project.id, now=utcnow()),
    )


@dataclass(frozen=True)
class Claim:
    """Who has the review open, and until when: the caller (``mine``) or another person."""

    mine: bool
    holder: str
    until: datetime


# Below this, or when the confidence is a raw vote score, a suggestion is shown but never pre-selected: a weak
# suggestion must not steer a person.
STRONG_SUGGESTION = 0.8


@dataclass(frozen=True)
class Suggestion:
    """Memory's suggestion on a pending review, as far as the stored record is well formed."""

    classification: str
    confidence: float | None
    calibrated: bool
    explanation: str
    controls: list[Control]
    threshold: float = STRONG_SUGGESTION

    @property
    def strong(self) -> bool:
        return self.calibrated and self.confidence is not None and self.confidence >= self.threshold


@dataclass
class ReviewPage:
    review: Review
    project: Project
    trace: TraceTree | None
    conversation: list[dict[str, Any]]
    memories_seen: list[Control]
    project_tags: list[str]
    next_id: str | None
    previous_id: str | None
    routing: Routing | None = None
    claim: Claim | None = None
    suggestion: Suggestion | None = None
    watch_suggestion: bool = False
    # Several reviewers: the decisions this person may see (blind until they gave theirs), and whether theirs is in.
    decisions: list[Decision] = field(default_factory=list)
    decisions_hidden: bool = False
    decided_by_me: bool = False


def holder_name(identity: str) -> str:
    """A claim's holder as people know them: the key's label, without the key id audit records add."""
    return re.sub(r" \([^()]*\)$", "", identity)


def _claim(session: Session, principal: Principal, review: Review, *, take: bool) -> Claim | None:
    """The review's live claim; with ``take``, a writer opening a pending review claims (or renews) it unless
    another person holds it."""
    mine_to_take = take and review.status == "pending" and principal.role is not Role.viewer
    if mine_to_take and not review_service.claimed_by_other(review, principal.identity):
        # Read again under the row lock claim_review takes: someone may have claimed it since it was read.
        session.expire(review)
        try:
            review = review_service.claim_review(session, principal=principal, review_id=review.id)
        except ReviewClaimed:  # someone claimed it a moment ago: theirs, shown below
            session.refresh(review)
    if not review_service.is_claimed(review) or review.claimed_by is None or review.claim_expires_at is None:
        return None
    return Claim(
        mine=review.claimed_by == principal.identity,
        holder=holder_name(review.claimed_by),
        until=review.claim_expires_at,
    )


def _shows_suggestion(review: Review) -> bool:
    """Whether people see memory's suggestion on this review: only while it is pending, and never on a spot
    check (the check is blind) or on a review several people decide independently (their agreement is
    measured: a suggestion, pre-selected when strong, would steer each of them the same way)."""
    return review.status == "pending" and review.kind != "spot_check" and review.reviewers_required == 1


def _suggestion(session: Session, review: Review, *, controls: bool = True) -> Suggestion | None:
    """Memory's suggestion, with the controls it rests on (looked for in the review's own project only; none
    with ``controls=False``, as the queue's rows need)."""
    stored = review.suggestion
    if review.kind == "spot_check" or not isinstance(stored, dict):
        return None
    classification = stored.get("classification")
    if not isinstance(classification, str) or classification not in (review.options or []):
        return None
    confidence = stored.get("confidence")
    named = stored.get("control_ids")
    ids = [i for i in named if isinstance(i, str)][:50] if isinstance(named, list) and controls else []
    found = (
        {
            c.id: c
            for c in session.execute(
                select(Control).where(Control.project_id == review.project_id, Control.id.in_(ids))
            ).scalars()
        }
        if ids
        else {}
    )
    explanation = stored.get("explanation")
    return Suggestion(
        classification=classification,
        confidence=float(confidence)
        if isinstance(confidence, (int, float)) and not isinstance(confidence, bool)
        else None,
        calibrated=stored.get("calibrated") is True,
        explanation=explanation if isinstance(explanation, str) else "",
        controls=[found[i] for i in ids if i in found],
    )


def review_page(session: Session, *, principal: Principal, review_id: str, claim: bool = False) -> ReviewPage:
    """The review and what surrounds it; with ``claim``, a writer opening it claims it (see :func:`_claim`)."""
    review = review_service.get_review(session, principal=principal, review_id=review_id)
    held = _claim(session, principal, review, take=claim)
    project = get_project(session, workspace_id=principal.workspace_id, project_id=review.project_id)
    trace = None
    conversation: list[dict[str, Any]] = []
    if review.trace_id:
        try:
            trace = get_trace(session, principal=principal, trace_id=review.trace_id, project_id=project.id)
        except TraceNotFound:  # queued by hand with a trace id Casework never received
            trace = None
    if trace is not None:
        span = next((s for s in trace.spans if s.span_id == review.span_id), None)
        if span is not None and span.session_id:
            turns = session.execute(
                select(Span)
                .where(Span.project_id == project.id, Span.session_id == span.session_id, Span.kind == "LLM")
                .order_by(Span.start_time)
                .limit(200)
            ).scalars()
            for turn in turns:
                interaction = interaction_of(turn.attributes)
                if interaction is not None:
                    conversation.append(
                        {
                            "span_id": turn.span_id,
                            "query": interaction.query,
                            "response": interaction.response,
                        }
                    )
    memories = _memories_seen(session, review)
    neighbours = _neighbours(session, principal, review)
    view = review_service.view_review(session, principal=principal, review_id=review.id)
    evaluator = latest_evaluator(session, project_id=project.id, name=review.evaluator_type)
    shown = _shows_suggestion(review)
    suggestion = _suggestion(session, review) if shown else None
    return ReviewPage(
        review=review,
        project=project,
        trace=trace,
        conversation=conversation,
        memories_seen=memories,
        project_tags=project_tags(session, project.id),
        next_id=neighbours[1],
        previous_id=neighbours[0],
        routing=why_queued(review, evaluator.ambiguity_threshold if evaluator else None),
        claim=held,
        suggestion=suggestion,
        # No suggestion yet: the page asks for one while it is open (the memory pass of a decision just made
        # attaches it to its look-alikes a moment later).
        watch_suggestion=shown and suggestion is None,
        decisions=[d for d in view.decisions if d.status == "submitted"],
        decisions_hidden=view.hidden,
        decided_by_me=review_service.has_submitted(session, review, principal),
    )


def suggestion_now(session: Session, *, principal: Principal, review_id: str) -> Suggestion | None:
    """Memory's suggestion on a review as it stands, for an open review page waiting for one (reads only)."""
    review = review_service.get_review(session, principal=principal, review_id=review_id)
    return _suggestion(session, review) if _shows_suggestion(review) else None


def renew_claim(session: Session, *, principal: Principal, review_id: str) -> Review:
    """The open review page keeps its claim alive."""
    return review_service.claim_review(session, principal=principal, review_id=review_id)


def release_claim(
    session: Session, *, principal: Principal, review_id: str, until: str | None = None
) -> Review:
    """The reviewer left the page without deciding. ``until`` is the claim's end as that page last saw it: when
    the claim has been renewed since (the same person reloaded the page, or opened it again), the page that
    left is not the one holding it, and the claim stays."""
    review = review_service.get_review(session, principal=principal, review_id=review_id)
    if until and to_json_time(review.claim_expires_at) != until:
        return review
    return review_service.release_claim(session, principal=principal, review_id=review_id)


def _free(reviews: list[Review], principal: Principal) -> list[Review]:
    """The reviews nobody else has open nor is assigned, those assigned to this person first: "next" never
    sends two people to the same case, nor anyone to a case meant for someone else."""
    now = utcnow()
    free = [
        r
        for r in reviews
        if not review_service.claimed_by_other(r, principal.identity, now)
        and r.assignee in (None, principal.label)
    ]
    return sorted(free, key=lambda r: r.assignee != principal.label)  # stable: queue order otherwise


def _memories_seen(session: Session, review: Review, limit: int = 50) -> list[Control]:
    """The controls the judge saw, as the review's metadata names them. Metadata is whatever the client sent, so
    the ids are only looked for among the controls of the review's own project (never another workspace's), and
    anything that is not an id is ignored."""
    named = (review.attributes or {}).get("memory_control_ids")
    ids = [i for i in named if isinstance(i, str)][:limit] if isinstance(named, list) else []
    if not ids:
        return []
    query = select(Control).where(Control.project_id == review.project_id, Control.id.in_(ids))
    return list(session.execute(query).scalars())


def _neighbours(session: Session, principal: Principal, review: Review) -> tuple[str | None, str | None]:
    """The pending reviews before and after this one in queue order (a short window of the queue), leaving out
    those another person has open."""
    page = list_reviews(
        session,
        principal=principal,
        filters=ReviewFilters(project_id=review.project_id, needs_my_decision=True),
        limit=200,
    )
    free = {r.id for r in _free(page.reviews, principal)}
    ids = [r.id for r in page.reviews if r.id == review.id or r.id in free]
    if review.id not in ids:
        return None, next((i for i in ids if i != review.id), None)
    at = ids.index(review.id)
    return (ids[at - 1] if at > 0 else None), (ids[at + 1] if at + 1 < len(ids) else None)


def project_tags(session: Session, project_id: str, scan: int = 1000) -> list[str]:
    """Tags of the project's most recent controls, most used first: suggestions for a new decision."""
    counts: dict[str, int] = {}
    for tags in session.execute(
        select(Control.tags)
        .where(Control.project_id == project_id)
        .order_by(Control.created_at.desc())
        .limit(scan)
    ).scalars():
        for tag in tags or []:
            counts[tag] = counts.get(tag, 0) + 1
    return sorted(counts, key=lambda t: (-counts[t], t))[:50]


@dataclass
class Decided:
    """After a decision: the project and the next pending review nobody else has open; or, when the review was
    decided while the page was open, the review page again (``overtaken``) and nothing written."""

    project_id: str
    next_id: str | None
    overtaken: ReviewPage | None = None


def decide(
    session: Session, *, principal: Principal, review_id: str, feedback: Feedback, overturn: bool = False
) -> Decided:
    """Submit the decision (``overturn``: replacing memory's); then the next pending review (highest priority,
    oldest) that nobody else has open, if any."""
    current = review_service.get_review(session, principal=principal, review_id=review_id)
    # A lead deciding a review whose reviewers disagreed adjudicates it.
    adjudicate = current.status == "needs_adjudication" and principal.role is Role.admin
    try:
        outcome = review_service.submit_feedback(
            session,
            principal=principal,
            review_id=review_id,
            feedback=feedback,
            overturn=overturn,
            adjudicate=adjudicate,
        )
    except (ReviewAlreadyResolved, ReviewNeedsAdjudication, DecisionAlreadySubmitted):
        # Refused before anything was written: decided by others meanwhile, or this person already decided.
        again = review_page(session, principal=principal, review_id=review_id)
        return Decided(project_id=again.project.id, next_id=None, overtaken=again)
    project_id = outcome.review.project_id
    queue = list_reviews(
        session,
        principal=principal,
        filters=ReviewFilters(project_id=project_id, needs_my_decision=True),
        limit=50,
    )
    free = _free(queue.reviews, principal)
    return Decided(project_id=project_id, next_id=free[0].id if free else None)


@dataclass
class ControlsPage:
    project: Project
    controls: list[Control]
    next_cursor: str | None
    evaluators: list[str]
    conflicts: list[Conflict] = field(default_factory=list)  # policy ambiguity: shown above the list


def controls_page(
    session: Session,
    *,
    principal: Principal,
    project_id: str,
    q: str | None = None,
    evaluator_type: str | None = None,
    tag: str | None = None,
    reviewer: str | None = None,
    status: str = "active",
    cursor: str | None = None,
    limit: int = 50,
) -> ControlsPage:
    """Evaluation memory, newest first, with the evaluators to filter by."""
    project = get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    page = control_service.list_controls(
        session,
        principal=principal,
        project_id=project_id,
        q=q,
        evaluator_type=evaluator_type,
        tag=tag,
        reviewer=reviewer,
        status=status,
        limit=limit,
        cursor=cursor,
    )
    names = session.execute(
        select(Control.evaluator_type).where(Control.project_id == project_id).distinct()
    ).scalars()
    evaluators = sorted(
        {*names, *(e.name for e in list_evaluators(session, principal=principal, project_id=project_id))}
    )
    return ControlsPage(
        project=project,
        controls=page.controls,
        next_cursor=page.next_cursor,
        evaluators=evaluators,
        conflicts=find_conflicts(session, principal=principal, project_id=project_id)
        if cursor is None
        else [],
    )


@dataclass
class ControlPage:
    control: Control
    project: Project
    history: list[ControlVersion]
    project_tags: list[str] = field(default_factory=list)
    usage: control_service.ControlUsage | None = None
    options: list[str] = field(default_factory=list)  # what its classification may be changed to


def control_page(session: Session, *, principal: Principal, control_id: str) -> ControlPage:
    """The control, its versions, and what it did: the reviews memory resolved with it, the evaluations it
    informed."""
    control = control_service.get_control(session, principal=principal, control_id=control_id)
    return ControlPage(
        control=control,
        project=get_project(session, workspace_id=principal.workspace_id, project_id=control.project_id),
        history=control_service.control_history(session, principal=principal, control_id=control_id),
        project_tags=project_tags(session, control.project_id),
        usage=control_service.control_usage(session, principal=principal, control_id=control_id),
        options=_control_options(session, control),
    )


def _control_options(session: Session, control: Control) -> list[str]:
    """The evaluator's options; without an evaluator of that name, the options of the review the control was
    decided on, else the classifications its evaluator's controls already have."""
    known = evaluator_options(session, project_id=control.project_id, name=control.evaluator_type)
    if known is None and control.review_id:
        review = session.get(Review, control.review_id)
        known = list(review.options) if review is not None else None
    if known is None:
        known = sorted(
            session.execute(
                select(Control.classification)
                .where(
                    Control.project_id == control.project_id, Control.evaluator_type == control.evaluator_type
                )
                .distinct()
                .limit(100)
            ).scalars()
        )
    return known if control.classification in known else [control.classification, *known]


def edit_control(
    session: Session, *, principal: Principal, control_id: str, changes: dict[str, Any]
) -> Control:
    """A new version from the control page. A classification must be one of the evaluator's options: changing
    it re-opens the reviews memory resolved with the control (the provenance subscriber)."""
    classification = changes.get("classification")
    if classification is not None:
        control = control_service.get_control(session, principal=principal, control_id=control_id)
        allowed = _control_options(session, control)
        if classification not in allowed:
            raise ValidationFailed(
                f"classification must be one of {allowed}, not {classification!r}.",
                details={"field": "classification", "allowed": allowed},
            )
    return control_service.update_control(
        session, principal=principal, control_id=control_id, changes=changes
    )


@dataclass
class DayRate:
    day: str
    verdicts: int
    ambiguous: int

    @property
    def rate(self) -> float:
        return self.ambiguous / self.verdicts if self.verdicts else 0.0


@dataclass
class Overview:
    project: Project
    health: QueueHealth
    resolved_by_people: int
    resolved_by_memory: int
    controls: int
    days: list[DayRate]
    evaluators: list[Evaluator] = field(default_factory=list)
    sla: SlaState | None = None
    # GET /api/v1/projects/{id}/agreement/trend's answer, per week: the overview's agreement chart.
    agreement: dict[str, Any] | None = None
    # What the page leaves to store (a trend computed for it, or a stored one to mark asked for).
    agreement_served: agreement_reports.Served | None = None
    trends: dict[str, Any] = field(default_factory=dict)  # as GET /api/v1/projects/{id}/trends, by day


@dataclass
class SlaState:
    """The overview's SLA panel: the policy, what is overdue now, the queue alerts, the last 30 days."""

    target_hours: float
    warning_at: float
    overdue_count: int
    overdue: list[Review]
    pending_alert_since: datetime | None
    oldest_alert_since: datetime | None
    decided: int
    breached: int
    median_seconds: float | None

    @property
    def breach_rate(self) -> float | None:
        return self.breached / self.decided if self.decided else None


def sla_state(session: Session, project: Project, *, now: datetime, days: int = 30) -> SlaState:
    count, overdue = sla.overdue_reviews(session, project_id=project.id, now=now, limit=20)
    first_day, last_day = (now - timedelta(days=days - 1)).date(), now.date()
    totals = rollups.sums(
        session,
        project_id=project.id,
        by="project_id",
        first_day=first_day,
        last_day=last_day,
        decisions_only=True,
    )
    histogram: Counter[int] = Counter()
    for counts in rollups.histograms(
        session, project_id=project.id, by="project_id", first_day=first_day, last_day=last_day
    ).values():
        histogram.update(counts)
    return SlaState(
        target_hours=project.review_target_hours,
        warning_at=project.sla_warning_at,
        overdue_count=count,
        overdue=overdue,
        pending_alert_since=project.queue_pending_alert_at,
        oldest_alert_since=project.queue_oldest_alert_at,
        decided=sum(int(r.resolved_human + r.resolved_memory) for r in totals),
        breached=sum(int(r.breached) for r in totals),
        median_seconds=rollups.percentile(histogram, 0.5),
    )


def overview_page(session: Session, *, principal: Principal, project_id: str, days: int = 30) -> Overview:
    # Imported here: sla_reports reads this module's queue_health.
    from casework.services import sla_reports

    project = get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    counted = review_counts.counts(session, project_id)
    now = utcnow()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    since = now - timedelta(days=days)
    # Evaluations are written once, stamped with the time they were stored: the days before today never
    # change. They are counted once per process and day (grouping a month of 250,000 evaluations took
    # 170 ms, bench/ui.py); only today's are counted on each view.
    past = _past_days(session, project_id, since.date().isoformat(), today.date().isoformat())
    controls = session.execute(
        select(func.count()).where(Control.project_id == project_id, Control.status == "active")
    ).scalar_one()
    served = agreement_reports.serve(
        session, principal=principal, project_id=project_id, scope=agreement_reports.Scope("trend")
    )
    return Overview(
        project=project,
        health=queue_health(session, project_id),
        resolved_by_people=counted[review_counts.resolved_by("human")],
        resolved_by_memory=counted[review_counts.resolved_by("memory")],
        controls=controls,
        days=[d for d in past if d.day >= since.date().isoformat()]
        + _rates(session, project_id, today, None),
        evaluators=list_evaluators(session, principal=principal, project_id=project_id),
        sla=sla_state(session, project, now=now, days=days),
        agreement=served.answer,
        agreement_served=served,
        trends=sla_reports.trends(
            session,
            workspace_id=principal.workspace_id,
            project_id=project_id,
            first_day=(now - timedelta(days=days - 1)).date(),
            last_day=now.date(),
        ),
    )


def _rates(session: Session, project_id: str, start: datetime, end: datetime | None) -> list[DayRate]:
    """Completed verdicts and ambiguous ones per UTC day, from ``start`` (to ``end``)."""
    day = (
        cast(Evaluation.created_at, Date)
        if session.get_bind().dialect.name == "postgresql"
        else func.date(Evaluation.created_at)
    )
    query = select(day.label("day"), func.count(), func.sum(cast(Evaluation.ambiguous, Integer))).where(
        Evaluation.project_id == project_id, Evaluation.created_at >= start, Evaluation.status == "completed"
    )
    if end is not None:
        query = query.where(Evaluation.created_at < end)
    rows = session.execute(query.group_by(day).order_by(day)).all()
    return [DayRate(day=str(r[0]), verdicts=r[1], ambiguous=int(r[2] or 0)) for r in rows]


_PAST_DAYS: OrderedDict[tuple[str, str, str], list[DayRate]] = OrderedDict()


def _past_days(session: Session, project_id: str, first_day: str, today: str) -> list[DayRate]:
    key = (project_id, first_day, today)
    found = _PAST_DAYS.get(key)
    if found is None:
        start = datetime.fromisoformat(first_day).replace(tzinfo=timezone.utc)
        end = datetime.fromisoformat(today).replace(tzinfo=timezone.utc)
        found = _PAST_DAYS[key] = _rates(session, project_id, start, end)
        while len(_PAST_DAYS) > 1000:
            _PAST_DAYS.popitem(last=False)
    return found


# What the audit trail records (services/reviews.py, controls.py, memory_pass.py): the audit page's choices.
AUDIT_ACTIONS = tuple(sorted(ALL_TYPES))


@dataclass
class AuditTrailPage:
    project: Project | None  # None: the workspace's own changes
    events: list[Event]
    next_cursor: str | None
    error: str | None = None  # filters that cannot be applied: said in the page, with no events


def audit_page(
    session: Session,
    *,
    principal: Principal,
    project_id: str | None,
    action: str | None,
    object_id: str | None,
    cursor: str | None,
    actor: str | None = None,
    since: str = "",
    until: str = "",
) -> AuditTrailPage:
    """A project's audit trail (or, with no project, the workspace's own: admins only) with the page's filters;
    ``since`` and ``until`` as typed (days, YYYY-MM-DD)."""
    project = None
    if project_id is None:
        principal.require_admin()
    else:
        project = get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    try:
        page = list_audit(
            session,
            principal=principal,
            project_id=project_id,
            action=action,
            object_id=object_id,
            actor=actor,
            since=_day(since, "from"),
            until=_day(until, "to"),
            cursor=cursor,
        )
    except ValidationFailed as error:
        return AuditTrailPage(project=project, events=[], next_cursor=None, error=error.message)
    return AuditTrailPage(project=project, events=page.events, next_cursor=page.next_cursor)


def _day(text: str, name: str) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValidationFailed(
            f"{name} must be a day as YYYY-MM-DD, not {text[:40]!r}.", details={"field": name}
        ) from None


@dataclass
class SettingsPage:
    project: Project
    evaluators: list[Evaluator]


def settings_page(session: Session, *, principal: Principal, project_id: str) -> SettingsPage:
    project = get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    return SettingsPage(
        project=project, evaluators=list_evaluators(session, principal=principal, project_id=project_id)
    )


def change_evaluator(
    session: Session, *, principal: Principal, project_id: str, evaluator_id: str, changes: dict[str, Any]
) -> tuple[Evaluator, bool]:
    """An admin's change to one of the project's evaluators from its settings: a new version, as
    ``PATCH /api/v1/evaluators/{id}`` makes (the same service, so the same rules and the same event)."""
    principal.require_admin()
    evaluator = get_evaluator(session, principal=principal, evaluator_id=evaluator_id)
    if evaluator.project_id != project_id:
        raise EvaluatorNotFound(
            f"No evaluator with id {evaluator_id!r} in this project.", details={"evaluator_id": evaluator_id}
        )
    return update_evaluator(session, principal=principal, evaluator_id=evaluator_id, changes=changes)


def change_review_target(session: Session, *, principal: Principal, project_id: str, hours: float) -> None:
    principal.require_write()
    update_project(
        session, workspace_id=principal.workspace_id, project_id=project_id, review_target_hours=hours
    )


@dataclass
class RiskTiersPage:
    project: Project
    policy: dict[str, Any]
    report: dict[str, Any]


def risk_tiers_page(session: Session, *, principal: Principal, project_id: str) -> RiskTiersPage:
    project = get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    return RiskTiersPage(
        project=project,
        policy=risk_tiers.get_policy(session, principal=principal, project_id=project_id),
        report=risk_tiers.report(session, principal=principal, project_id=project_id, days=30),
    )


def preview_risk_tiers(
    session: Session,
    *,
    principal: Principal,
    project_id: str,
    document: dict[str, Any],
    default_spot_check_rate: float = 0.0,
) -> tuple[RiskTiersPage, dict[str, Any]]:
    """The page, and what ``document`` would have sent to people over the last 30 days, spot checks included
    (nothing saved)."""
    page = risk_tiers_page(session, principal=principal, project_id=project_id)
    return page, risk_tiers.impact(
        session,
        principal=principal,
        project_id=project_id,
        document=document,
        days=30,
        default_spot_check_rate=default_spot_check_rate,
    )


@dataclass(frozen=True)
class GoldenPage:
    project: Project
    golden_sets: list[dict[str, Any]]  # each with its newest runs under "recent_runs"


def golden_page(session: Session, *, principal: Principal, project_id: str) -> GoldenPage:
    """The project's golden sets, each with its newest runs side by side."""
    project = get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    sets = [
        {**found, "recent_runs": list_runs(session, principal=principal, golden_set_id=found["id"])[:10]}
        for found in list_golden_sets(session, principal=principal, project_id=project_id)
    ]
    return GoldenPage(project=project, golden_sets=sets)


@dataclass(frozen=True)
class GoldenComparePage:
    project: Project
    golden_set: dict[str, Any]
    comparison: dict[str, Any]


def golden_compare_page(
    session: Session, *, principal: Principal, project_id: str, golden_set_id: str, first: str, second: str
) -> GoldenComparePage:
    """Two runs of one of the project's golden sets side by side."""
    project = get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    golden = read_golden_set(session, principal=principal, golden_set_id=golden_set_id)
    if golden["project_id"] != project.id:
        raise GoldenSetNotFound(
            f"No golden set with id {golden_set_id!r} in this project.",
            details={"golden_set_id": golden_set_id},
        )
    comparison = compare_runs(
        session, principal=principal, golden_set_id=golden_set_id, first_id=first, second_id=second
    )
    return GoldenComparePage(project=project, golden_set=golden, comparison=comparison)
