"""The HITL review queue: enqueue, claim, resolve (by a person or by memory), overturn, re-open, bulk.

This is the one place a review changes state. Every decision, human or memory, is kept as a ``Decision``;
the review's resolution columns show the current one. A person's decision also becomes a control. Memory never
decides a review a person has claimed, and a person can overturn any decision memory made.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from casework.db.dialect import insert_ignoring_conflict
from casework.db.models import Control, Decision, DecisionControl, Project, Review, Run
from casework.db.types import utcnow
from casework.errors import (
    CaseworkError,
    DecisionAlreadySubmitted,
    ReviewAlreadyResolved,
    ReviewClaimed,
    ReviewNeedsAdjudication,
    ReviewNotAwaitingAdjudication,
    ReviewNotFound,
    RunNotFound,
    ValidationFailed,
)
from casework.events import EventType
from casework.ids import new_id
from casework.services import controls, events, risk_tiers, sla
from casework.services.auth import Principal, Role
from casework.services.evaluators import options_for as evaluator_options
from casework.services.projects import get_project, project_in_workspace
from casework.services.review_queries import review_record

AMBIGUOUS = "ambiguous"
MEMORY_REVIEWER = "casework-memory"
CLAIM_MINUTES = 10.0
SPOT_CHECK_PRIORITY = -10
REASONS = ("ambiguous", "low_confidence", "spot_check", "reopened", "manual", "tier_rule")
_PENDING_DEDUPE = text("status = 'pending' AND dedupe_key IS NOT NULL")


@dataclass(frozen=True)
class Feedback:
    """An expert's decision on a review. ``reasoning`` is what the judge will read in ``{memories}``."""

    classification: str
    reasoning: str
    reviewer: str
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FeedbackOutcome:
    review: Review
    control_id: str | None  # None while an overlapped review still waits for decisions or a lead
    created: bool  # False when this exact feedback had already been accepted (an idempotent repeat)
    # What the decision did to a decision memory had made: "confirmed" (agreed) or "overturned".
    memory: str | None = None


def _validate_options(options: Sequence[str]) -> list[str]:
    cleaned = [option.strip() for option in options]
    if not cleaned or any(not option for option in cleaned):
        raise ValidationFailed("options must list the classifications a reviewer may choose.")
    if len(set(cleaned)) != len(cleaned):
        raise ValidationFailed("options must not repeat a classification.", details={"options": cleaned})
    if AMBIGUOUS in cleaned:
        raise ValidationFailed(
            "'ambiguous' cannot be an option: it is what sends a case to a person, who must decide.",
            details={"options": cleaned},
        )
    return cleaned


def sampled(key: str, rate: float) -> bool:
    """Whether ``key`` falls in a sample of ``rate``: by a hash of it, so the answer never changes."""
    return rate >= 1 or (rate > 0 and zlib.crc32(key.encode()) % 100_000 < rate * 100_000)


def enqueue_review(
    session: Session,
    *,
    principal: Principal,
    project_id: str,
    evaluator_type: str,
    query: str,
    response: str,
    options: Sequence[str] | None,
    context: str | None = None,
    classification: str = AMBIGUOUS,
    confidence: float | None = None,
    explanation: str | None = None,
    run_id: str | None = None,
    trace_id: str | None = None,
    span_id: str | None = None,
    priority: int = 0,
    metadata: dict[str, Any] | None = None,
    kind: str = "review",
    reason: str = "manual",
    subject_id: str | None = None,
    suggestion: dict[str, Any] | None = None,
    tier: str | None = None,
) -> tuple[Review, bool]:
    """Queue a review; returns it and whether it is new. The same (project, evaluator, span or trace) while a
    review for it is pending returns that review instead of a duplicate (a spot check: the same subject)."""
    principal.require_write()
    project = get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    if run_id is not None:
        run = session.get(Run, run_id)
        if run is None or run.project_id != project_id:
            raise RunNotFound(f"No run with id {run_id!r} in this project.", details={"run_id": run_id})
    if options is None:
        options = evaluator_options(session, project_id=project_id, name=evaluator_type)
    if options is None:
        raise ValidationFailed(
            f"options is required: no evaluator {evaluator_type!r} in this project says which classifications "
            "a reviewer may choose.",
            details={"field": "options"},
        )
    # What its tier (or else its evaluator, its project) gives it now; the review keeps it, so that changing
    # the tiers, the evaluator or the SLA policy later leaves the queue as it is. A spot check measures an
    # automatic decision: one person is enough.
    routed_under = risk_tiers.tier_of(session, project_id, tier)
    if kind == "spot_check":
        required, policy = 1, risk_tiers.sla_policy(project, evaluator_type, routed_under)
        dedupe_key: str | None = f"spot:{subject_id}"
    else:
        given = risk_tiers.attention(
            session, project=project, evaluator_type=evaluator_type, tier=routed_under
        )
        required, policy = given.reviewers_required, given.sla
        dedupe_key = f"span:{span_id}" if span_id else (f"trace:{trace_id}" if trace_id else None)
    now = utcnow()
    values: dict[str, Any] = {
        "id": new_id("rev"),
        "project_id": project_id,
        "run_id": run_id,
        "evaluator_type": evaluator_type,
        "query": query,
        "response": response,
        "context": context,
        "options": _validate_options(options),
        "classification": classification,
        "confidence": confidence,
        "explanation": explanation,
        "trace_id": trace_id,
        "span_id": span_id,
        "dedupe_key": dedupe_key,
        "priority": priority,
        "attributes": metadata or {},
        "status": "pending",
        "created_at": now,
        "created_by": principal.identity,
        "kind": kind,
        "reason": reason,
        "subject_id": subject_id,
        "suggestion": suggestion,
        "tier": tier,
        # The SLA clock starts now (casework.services.sla), under the policy its tier, evaluator and project
        # give it (casework.services.risk_tiers.attention): the one place a review gets its due time.
        **sla.clock_values(policy, now=now),
        "reviewers_required": required,
        "decisions_submitted": 0,
    }
    if dedupe_key is None:
        session.add(Review(**values))
    elif not insert_ignoring_conflict(
        session,
        Review,
        values,
        conflict_columns=["project_id", "evaluator_type", "dedupe_key"],
        conflict_where=_PENDING_DEDUPE,
    ):
        existing = session.execute(
            select(Review).where(
                Review.project_id == project_id,
                Review.evaluator_type == evaluator_type,
                Review.dedupe_key == dedupe_key,
                Review.status == "pending",
            )
        ).scalar_one()
        return existing, False
    review = session.get_one(Review, values["id"])
    events.emit(
        session,
        EventType.review_created,
        workspace_id=principal.workspace_id,
        project_id=project_id,
        actor=principal.identity,
        object_type="review",
        object_id=review.id,
        data=review_record(review),
    )
    return review, True


def _not_found(review_id: str) -> ReviewNotFound:
    return ReviewNotFound(f"No review with id {review_id!r}.", details={"review_id": review_id})


def get_review(session: Session, *, principal: Principal, review_id: str) -> Review:
    review = session.get(Review, review_id)
    if review is None or not project_in_workspace(
        session, workspace_id=principal.workspace_id, project_id=review.project_id
    ):
        raise _not_found(review_id)
    return review


def _lock(session: Session, review_id: str) -> Review | None:
    """The review, locked and read afresh (what another transaction committed since this session read it)."""
    return session.execute(
        select(Review)
        .where(Review.id == review_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _locked(session: Session, principal: Principal, review_id: str) -> Review:
    review = _lock(session, review_id)
    if review is None or not project_in_workspace(
        session, workspace_id=principal.workspace_id, project_id=review.project_id
    ):
        raise _not_found(review_id)
    return review


def state_of(review: Review) -> dict[str, Any]:
    """What an event records as a review's state before a change (the review counts follow it)."""
    return {
        "status": review.status,
        "resolved_by": review.resolved_by,
        "classification": review.classification,
        "resolution_classification": review.resolution_classification,
    }


def _emit(
    session: Session, type: EventType, review: Review, *, actor: str, before: dict[str, Any] | None
) -> None:
    workspace_id = session.get_one(Project, review.project_id).workspace_id
    events.emit(
        session,
        type,
        workspace_id=workspace_id,
        project_id=review.project_id,
        actor=actor,
        object_type="review",
        object_id=review.id,
        data=review_record(review),
        before=before,
    )


def _resolution(review: Review) -> dict[str, Any]:
    return review_record(review)["resolution"] or {}


# --- claims ----------------------------------------------------------------------------------------------------


def claimed_by_other(review: Review, identity: str, now: datetime | None = None) -> bool:
    return bool(
        review.claimed_by
        and review.claimed_by != identity
        and review.claim_expires_at is not None
        and review.claim_expires_at > (now or utcnow())
    )


def is_claimed(review: Review, now: datetime | None = None) -> bool:
    return (
        review.claimed_by is not None
        and review.claim_expires_at is not None
        and review.claim_expires_at > (now or utcnow())
    )


def claim_review(
    session: Session, *, principal: Principal, review_id: str, minutes: float = CLAIM_MINUTES
) -> Review:
    """Claim (or renew the claim on) a pending review for ``minutes``: memory leaves it to this person, and
    other reviewers' "next review" skips it. Another person's live claim is a conflict."""
    principal.require_write()
    review = _locked(session, principal, review_id)
    if review.status == "resolved":
        raise ReviewAlreadyResolved(
            f"Review {review.id} was already resolved.",
            details={"review_id": review.id, "resolution": _resolution(review)},
        )
    now = utcnow()
    if claimed_by_other(review, principal.identity, now):
        raise ReviewClaimed(
            f"{review.claimed_by} is reviewing this case (claimed until {review.claim_expires_at:%H:%M} UTC).",
            details={
                "review_id": review.id,
                "claimed_by": review.claimed_by,
                "claim_expires_at": str(review.claim_expires_at),
            },
        )
    renewal = is_claimed(review, now) and review.claimed_by == principal.identity
    review.claimed_by = principal.identity
    review.claim_expires_at = now + timedelta(minutes=minutes)
    if not renewal:
        _emit(session, EventType.review_claimed, review, actor=principal.identity, before=None)
    return review


def release_claim(session: Session, *, principal: Principal, review_id: str) -> Review:
    principal.require_write()
    review = _locked(session, principal, review_id)
    if review.claimed_by == principal.identity:
        review.claimed_by = None
        review.claim_expires_at = None
    return review


def assign_review(session: Session, *, principal: Principal, review_id: str, assignee: str | None) -> Review:
    """Assign an open review to a named reviewer (None: unassign). Assigning to the same person again changes
    nothing and records nothing."""
    principal.require_write()
    review = _locked(session, principal, review_id)
    if review.status == "resolved":
        raise ReviewAlreadyResolved(
            f"Review {review.id} was already resolved.",
            details={"review_id": review.id, "resolution": _resolution(review)},
        )
    if review.assignee != assignee:
        before = state_of(review)
        review.assignee = assignee
        _emit(session, EventType.review_assigned, review, actor=principal.identity, before=before)
    return review


# --- a person decides --------------------------------------------------------------------------------------------


def submit_feedback(
    session: Session,
    *,
    principal: Principal,
    review_id: str,
    feedback: Feedback,
    overturn: bool = False,
    adjudicate: bool = False,
) -> FeedbackOutcome:
    """Resolve the review with an expert's decision and turn it into a control, in this one transaction.

    The same feedback again returns the first outcome. On a review memory resolved, the same classification
    confirms memory's decision; a different one overturns it, when ``overturn`` says so (else a conflict, so
    that nobody overturns by accident). The row lock makes concurrent submitters queue.

    A review that needs several reviewers (``reviewers_required`` > 1) collects one decision per reviewer
    first; see :func:`_submit_overlap`. A lead (an admin key) settles a disagreement with ``adjudicate``.
    """
    principal.require_write()
    review = _locked(session, principal, review_id)
    return _decide(session, review, feedback, principal, overturn=overturn, adjudicate=adjudicate)


def _decide(
    session: Session,
    review: Review,
    feedback: Feedback,
    principal: Principal,
    *,
    overturn: bool = False,
    adjudicate: bool = False,
) -> FeedbackOutcome:
    """The one path a person's decision takes, for the single endpoint, bulk and the web page alike."""
    _check_option(review, feedback)
    if adjudicate:
        return _adjudicate(session, review, feedback, principal)
    if review.reviewers_required > 1 and not (review.status == "resolved" and review.resolved_by == "memory"):
        return _submit_overlap(session, review, feedback, principal)
    return _check(review, feedback, overturn) or _apply(session, review, feedback, principal)


def _check_option(review: Review, feedback: Feedback) -> None:
    if feedback.classification not in review.options:
        raise ValidationFailed(
            f"classification must be one of {review.options}, not {feedback.classification!r}.",
            details={"field": "classification", "allowed": list(review.options)},
        )


def _check(review: Review, feedback: Feedback, overturn: bool) -> FeedbackOutcome | None:
    """The outcome of an idempotent repeat, None when the feedback is to be applied; raises when it cannot be."""
    _check_option(review, feedback)
    if review.status == "needs_adjudication":
        raise _needs_adjudication(review)
    if review.status != "resolved":
        return None
    if review.resolved_by == "human":
        same = (
            review.resolution_classification == feedback.classification
            and review.resolution_reasoning == feedback.reasoning
            and review.resolution_reviewer == feedback.reviewer
            and list(review.resolution_tags or []) == list(feedback.tags)
        )
        if same and review.control_id:
            return FeedbackOutcome(review=review, control_id=review.control_id, created=False)
        raise ReviewAlreadyResolved(
            f"Review {review.id} was already resolved by {review.resolution_reviewer}; its control can be "
            "edited under /api/v1/controls.",
            details={"review_id": review.id, "resolution": _resolution(review)},
        )
    if review.resolution_classification != feedback.classification and not overturn:
        raise ReviewAlreadyResolved(
            f"Memory already decided review {review.id} as {review.resolution_classification}. Send the same "
            "classification to confirm it, or overturn: true to replace it with yours.",
            details={"review_id": review.id, "resolution": _resolution(review), "overturnable": True},
        )
    return None


def _needs_adjudication(review: Review) -> ReviewNeedsAdjudication:
    return ReviewNeedsAdjudication(
        f"The reviewers of review {review.id} disagreed: a lead (an admin) decides it, with adjudicate: true.",
        details={"review_id": review.id, "status": review.status},
    )


# --- several reviewers (overlap) and adjudication ----------------------------------------------------------------


def submitted_decisions(session: Session, review_id: str) -> list[Decision]:
    """The independent decisions of an overlapped review, oldest first."""
    return list(
        session.execute(
            select(Decision)
            .where(Decision.review_id == review_id, Decision.status == "submitted")
            .order_by(Decision.created_at, Decision.id)
        ).scalars()
    )


def _same(decision: Decision, feedback: Feedback) -> bool:
    return (
        decision.classification == feedback.classification
        and decision.reasoning == feedback.reasoning
        and list(decision.tags or []) == list(feedback.tags)
    )


def _submit_overlap(
    session: Session, review: Review, feedback: Feedback, principal: Principal
) -> FeedbackOutcome:
    """One reviewer's independent decision: kept as a "submitted" Decision. The last of the N required
    resolves the review when all agree (one control, every reviewer credited), else sends it to a lead."""
    mine = next((d for d in submitted_decisions(session, review.id) if d.reviewer == feedback.reviewer), None)
    if mine is not None:
        if _same(mine, feedback):
            return FeedbackOutcome(review=review, control_id=review.control_id, created=False)
        raise DecisionAlreadySubmitted(
            f"{feedback.reviewer} already decided review {review.id} as {mine.classification}: one decision per "
            "reviewer.",
            details={
                "review_id": review.id,
                "reviewer": feedback.reviewer,
                "classification": mine.classification,
            },
        )
    if review.status == "needs_adjudication":
        raise _needs_adjudication(review)
    if review.status == "resolved":
        raise ReviewAlreadyResolved(
            f"Review {review.id} was already resolved by {review.resolution_reviewer}.",
            details={"review_id": review.id, "resolution": _resolution(review)},
        )
    before = state_of(review)
    session.add(
        Decision(
            id=new_id("dec"),
            review_id=review.id,
            project_id=review.project_id,
            by="human",
            status="submitted",
            classification=feedback.classification,
            reasoning=feedback.reasoning,
            reviewer=feedback.reviewer,
            tags=list(feedback.tags),
            submitted_by=principal.identity,
            created_at=utcnow(),
        )
    )
    review.decisions_submitted += 1
    session.flush()
    if review.decisions_submitted < review.reviewers_required:
        _emit(session, EventType.review_decision_submitted, review, actor=principal.identity, before=before)
        return FeedbackOutcome(review=review, control_id=None, created=True)
    decided = submitted_decisions(session, review.id)
    if len({d.classification for d in decided}) > 1:
        review.status = "needs_adjudication"
        review.claimed_by = None
        review.claim_expires_at = None
        _emit(session, EventType.review_needs_adjudication, review, actor=principal.identity, before=before)
        return FeedbackOutcome(review=review, control_id=None, created=True)
    return _apply(session, review, _agreed(decided), principal, before=before)


def _agreed(decided: Sequence[Decision]) -> Feedback:
    """The one decision that N agreeing reviewers make together: their reasoning (each once), all credited."""
    reasons = list(dict.fromkeys(d.reasoning.strip() for d in decided))
    if len(reasons) == 1:
        reasoning = reasons[0]
    else:
        reasoning = "\n\n".join(f"{d.reviewer}: {d.reasoning.strip()}" for d in decided)
    reviewers = ", ".join(dict.fromkeys(d.reviewer for d in decided))
    if len(reviewers) > 300:
        reviewers = reviewers[:297] + "..."
    tags = list(dict.fromkeys(tag for d in decided for tag in d.tags or []))
    return Feedback(decided[0].classification, reasoning, reviewers, tags)


def _adjudicate(
    session: Session, review: Review, feedback: Feedback, principal: Principal
) -> FeedbackOutcome:
    """A lead settles a disagreement; only this decision becomes the control."""
    principal.require_admin()
    if review.status == "resolved":
        repeat = _check(review, feedback, False)  # the same adjudication again is idempotent
        assert repeat is not None
        return repeat
    if review.status != "needs_adjudication":
        raise ReviewNotAwaitingAdjudication(
            f"Review {review.id} does not need adjudication: its reviewers have not disagreed "
            f"({review.decisions_submitted} of {review.reviewers_required} decisions).",
            details={
                "review_id": review.id,
                "status": review.status,
                "decisions_submitted": review.decisions_submitted,
                "reviewers_required": review.reviewers_required,
            },
        )
    return _apply(session, review, feedback, principal, before=state_of(review))


def has_submitted(session: Session, review: Review, principal: Principal) -> bool:
    """Whether the caller gave a decision on this review (as the reviewer their label names, or with this key)."""
    return any(
        d.reviewer == principal.label or d.submitted_by == principal.identity
        for d in submitted_decisions(session, review.id)
    )


def decisions_hidden(session: Session, review: Review, principal: Principal) -> bool:
    """Blind overlap: while an overlapped review is open, a reviewer sees nobody else's decision until they
    have given their own. A lead (admin) sees them all."""
    return (
        review.reviewers_required > 1
        and review.status != "resolved"
        and principal.role is not Role.admin
        and not has_submitted(session, review, principal)
    )


def _apply(
    session: Session,
    review: Review,
    feedback: Feedback,
    principal: Principal,
    *,
    before: dict[str, Any] | None = None,
) -> FeedbackOutcome:
    before = before or state_of(review)
    # A person's decision is in (for several reviewers, it was counted as it came; a lead's adds none).
    review.decisions_submitted = max(review.decisions_submitted, 1)
    memory_outcome = None
    if review.status == "resolved":  # memory decided it: the person confirms or overturns
        agreed = review.resolution_classification == feedback.classification
        memory_outcome = "confirmed" if agreed else "overturned"
        end_current_decision(
            session,
            review,
            status=memory_outcome,
            reason=f"{'confirmed' if agreed else 'overturned'} by {feedback.reviewer}",
        )
    control = controls.create_control(
        session,
        workspace_id=principal.workspace_id,
        project_id=review.project_id,
        evaluator_type=review.evaluator_type,
        classification=feedback.classification,
        reasoning=feedback.reasoning,
        tags=feedback.tags,
        reviewer=feedback.reviewer,
        actor=principal.identity,
        review_id=review.id,
        query=review.query,
        response=review.response,
        context=review.context,
    )
    _resolve(
        session,
        review,
        by="human",
        classification=feedback.classification,
        reasoning=feedback.reasoning,
        reviewer=feedback.reviewer,
        tags=list(feedback.tags),
        submitted_by=principal.identity,
        control_id=control.id,
    )
    _emit(session, EventType.review_resolved, review, actor=principal.identity, before=before)
    return FeedbackOutcome(review=review, control_id=control.id, created=True, memory=memory_outcome)


def _resolve(
    session: Session,
    review: Review,
    *,
    by: str,
    classification: str,
    reasoning: str,
    reviewer: str,
    tags: list[str],
    submitted_by: str,
    control_id: str | None,
    confidence: float | None = None,
    votes: Sequence[dict[str, Any]] = (),
) -> Decision:
    now = utcnow()
    decision = Decision(
        id=new_id("dec"),
        review_id=review.id,
        project_id=review.project_id,
        by=by,
        status="current",
        classification=classification,
        reasoning=reasoning,
        reviewer=reviewer,
        tags=tags,
        submitted_by=submitted_by,
        control_id=control_id,
        confidence=confidence,
        votes=list(votes),
        created_at=now,
    )
    session.add(decision)
    for vote in votes:
        session.add(
            DecisionControl(decision_id=decision.id, control_id=vote["control_id"], score=vote["score"])
        )
    sla.stop_clock(review, now=now)
    review.status = "resolved"
    review.resolved_at = now
    review.resolved_by = by
    review.resolution_classification = classification
    review.resolution_reasoning = reasoning
    review.resolution_reviewer = reviewer
    review.resolution_tags = tags
    review.resolution_submitted_by = submitted_by
    review.control_id = control_id
    review.claimed_by = None
    review.claim_expires_at = None
    return decision


def current_decision(session: Session, review_id: str) -> Decision | None:
    return session.execute(
        select(Decision)
        .where(Decision.review_id == review_id, Decision.status == "current")
        .order_by(Decision.created_at.desc())
        .limit(1)
    ).scalar_one_or_none()


def end_current_decision(session: Session, review: Review, *, status: str, reason: str) -> Decision | None:
    decision = current_decision(session, review.id)
    if decision is not None:
        decision.status = status
        decision.ended_at = utcnow()
        decision.ended_reason = reason
    return decision


def decisions_of(session: Session, *, principal: Principal, review_id: str) -> list[Decision]:
    """Every decision the review has had, oldest first; blind overlap hides other reviewers' decisions from a
    reviewer who has not given theirs (:func:`decisions_hidden`)."""
    review = get_review(session, principal=principal, review_id=review_id)
    return _visible_decisions(session, review, principal)


def _visible_decisions(session: Session, review: Review, principal: Principal) -> list[Decision]:
    found = list(
        session.execute(
            select(Decision).where(Decision.review_id == review.id).order_by(Decision.created_at, Decision.id)
        ).scalars()
    )
    if decisions_hidden(session, review, principal):
        found = [d for d in found if d.status != "submitted"]
    return found


@dataclass(frozen=True)
class ReviewView:
    """A review as one caller may see it: with the decisions they may see, and whether others are hidden."""

    review: Review
    decisions: list[Decision]
    hidden: bool


def view_review(session: Session, *, principal: Principal, review_id: str) -> ReviewView:
    review = get_review(session, principal=principal, review_id=review_id)
    return ReviewView(
        review=review,
        decisions=_visible_decisions(session, review, principal),
        hidden=decisions_hidden(session, review, principal),
    )


# --- memory decides, suggests, re-opens ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryDecision:
    """What memory concluded about a review: its classification, raw score and calibrated confidence, and the
    controls that voted (``{"control_id", "score", "classification"}``)."""

    classification: str
    confidence: float  # calibrated: among decisions at this confidence, about this share were right
    score: float  # raw, as the evidence records it
    explanation: str
    votes: list[dict[str, Any]]
    decides_alone: bool  # the evidence says this classification at this score may be decided alone
    spot_check_rate: float = 0.0
    calibrated: bool = False  # the confidence comes from evidence (else it is the raw score)

    def suggestion(self) -> dict[str, Any]:
        return {
            "classification": self.classification,
            "confidence": self.confidence,
            "calibrated": self.calibrated,
            "score": self.score,
            "explanation": self.explanation,
            "control_ids": [vote["control_id"] for vote in self.votes],
            "votes": self.votes,
            "created_at": utcnow().isoformat().replace("+00:00", "Z"),
        }


def _votes_hold(session: Session, decision: MemoryDecision) -> bool:
    """Whether every control memory's conclusion rests on is still active and says what it voted. A pass reads
    memory, then settles what it concluded, later: a control corrected or retired in between must not decide
    (or suggest) with what it no longer says. Its correction re-opens what it decided and that is decided again
    (casework.subscribers.memory_pass); a review it had not decided yet stays with the people."""
    return _cited_hold(session, decision.votes)


def _cited_hold(session: Session, votes: list[dict[str, Any]]) -> bool:
    voted = {str(vote["control_id"]): vote.get("classification") for vote in votes}
    if not voted:
        return True
    holding = dict(
        session.execute(
            select(Control.id, Control.classification).where(
                Control.id.in_(list(voted)), Control.status == "active"
            )
        ).all()
    )
    return all(holding.get(control_id) == classification for control_id, classification in voted.items())


def forget_suggestion(session: Session, *, review_id: str) -> None:
    """Memory found nothing for this pending review (the controls its suggestion cited were retired, or no
    longer come close): people see no suggestion rather than a stale one. Only a suggestion that rests on a
    control changed since it was made goes: a later pass may have written a fresh one meanwhile."""
    review = _lock(session, review_id)
    if review is None or not memory_may_settle(review) or not review.suggestion:
        return
    if not _cited_hold(session, list(review.suggestion.get("votes") or [])):
        review.suggestion = None


def settle_by_memory(session: Session, *, review_id: str, decision: MemoryDecision) -> str:
    """Apply memory's conclusion to a pending review: resolve it when memory may decide alone and nobody has
    it open, else attach (or refresh) the suggestion. Returns "resolved", "suggested" or "skipped" (a person got
    there first)."""
    review = _lock(session, review_id)
    if review is None or not memory_may_settle(review):
        return "skipped"
    if decision.classification not in review.options:
        return "skipped"
    if not _votes_hold(session, decision):
        return "skipped"
    tier = risk_tiers.tier_of(session, review.project_id, review.tier)
    alone = decision.decides_alone and risk_tiers.memory_may_decide(tier, decision.classification)
    if not alone or is_claimed(review):
        if not _same_suggestion(review.suggestion, decision):  # unchanged: no write
            review.suggestion = decision.suggestion()
        return "suggested"
    before = state_of(review)
    review.suggestion = decision.suggestion()
    main = decision.votes[0]["control_id"] if decision.votes else None
    _resolve(
        session,
        review,
        by="memory",
        classification=decision.classification,
        reasoning=decision.explanation or "Decided with evaluation memory.",
        reviewer=MEMORY_REVIEWER,
        tags=[],
        submitted_by=MEMORY_REVIEWER,
        control_id=main,
        confidence=decision.confidence,
        votes=decision.votes,
    )
    voters = ", ".join(f"{vote['control_id']} ({vote['score']:.2f})" for vote in decision.votes)
    _emit(
        session,
        EventType.review_resolved,
        review,
        actor=f"{MEMORY_REVIEWER} (controls {voters})",
        before=before,
    )
    if sampled(f"memory:{review.id}", risk_tiers.spot_check_rate(tier, "memory", decision.spot_check_rate)):
        queue_spot_check(
            session,
            workspace_id=session.get_one(Project, review.project_id).workspace_id,
            project_id=review.project_id,
            evaluator_type=review.evaluator_type,
            interaction=(review.query, review.response, review.context),
            options=list(review.options),
            subject_id=review.id,
            automatic={
                "subject": "memory",
                "classification": decision.classification,
                "score": decision.score,
                "confidence": decision.confidence,
            },
            run_id=review.run_id,
            tier=review.tier,
        )
    return "resolved"


def memory_may_settle(review: Review) -> bool:
    """Memory touches only a pending review nobody has decided yet: never one with some of its several
    reviewers' decisions in, nor one waiting for a lead (that status is not pending)."""
    return review.status == "pending" and review.decisions_submitted == 0


def _same_suggestion(current: dict[str, Any] | None, decision: MemoryDecision) -> bool:
    return (
        current is not None
        and current.get("classification") == decision.classification
        and current.get("confidence") == decision.confidence
        and current.get("control_ids") == [vote["control_id"] for vote in decision.votes]
    )


def queue_spot_check(
    session: Session,
    *,
    workspace_id: str,
    project_id: str,
    evaluator_type: str,
    interaction: tuple[str, str, str | None],
    options: list[str],
    subject_id: str,
    automatic: dict[str, Any],
    run_id: str | None = None,
    tier: str | None = None,
) -> Review:
    """A person checks an automatic decision (memory's on a review, or the judge's on an evaluation): a review
    of its own, of lower priority, whose outcome is evidence. ``automatic`` records what was decided, and how
    sure: the reviewer's page does not show it, so that the check is blind."""
    principal = Principal(key_id="spot-check", workspace_id=workspace_id, role=Role.admin, label="casework")
    query, response, context = interaction
    review, _ = enqueue_review(
        session,
        principal=principal,
        project_id=project_id,
        evaluator_type=evaluator_type,
        query=query,
        response=response,
        context=context,
        options=options,
        classification=automatic["classification"],
        confidence=automatic.get("confidence"),
        run_id=run_id,
        priority=SPOT_CHECK_PRIORITY,
        metadata={"automatic": automatic},
        kind="spot_check",
        reason="spot_check",
        subject_id=subject_id,
        tier=tier,
    )
    return review


def reopen(session: Session, *, review_id: str, reason: str, actor: str) -> bool:
    """Send a review memory resolved back to pending: its decision is kept in history, ended with ``reason``."""
    review = _lock(session, review_id)
    if review is None or review.status != "resolved" or review.resolved_by != "memory":
        return False
    before = state_of(review)
    end_current_decision(session, review, status="reopened", reason=reason)
    review.status = "pending"
    review.reason = "reopened"
    review.resolved_at = None
    review.resolved_by = None
    review.resolution_classification = None
    review.resolution_reasoning = None
    review.resolution_reviewer = None
    review.resolution_tags = None
    review.resolution_submitted_by = None
    review.control_id = None
    project = session.get_one(Project, review.project_id)
    tier = risk_tiers.tier_of(session, review.project_id, review.tier)
    sla.start_clock(review, risk_tiers.sla_policy(project, review.evaluator_type, tier), now=utcnow())
    _emit(session, EventType.review_reopened, review, actor=actor, before=before)
    return True


def overturn_with(session: Session, *, review_id: str, source: Review, reason: str, actor: str) -> bool:
    """Replace memory's decision on a review with a person's decision made elsewhere (a spot check of it):
    no second control, the person's already is one."""
    review = _lock(session, review_id)
    if review is None or review.status != "resolved" or review.resolved_by != "memory":
        return False
    before = state_of(review)
    end_current_decision(session, review, status="overturned", reason=reason)
    _resolve(
        session,
        review,
        by="human",
        classification=source.resolution_classification or "",
        reasoning=source.resolution_reasoning or "",
        reviewer=source.resolution_reviewer or "",
        tags=list(source.resolution_tags or []),
        submitted_by=source.resolution_submitted_by or actor,
        control_id=source.control_id,
    )
    _emit(session, EventType.review_resolved, review, actor=actor, before=before)
    return True


def resolved_by_memory_with(session: Session, *, control_ids: Sequence[str]) -> list[str]:
    """The reviews whose current decision memory made with any of ``control_ids`` voting."""
    return sorted(
        set(
            session.execute(
                select(Decision.review_id)
                .join(DecisionControl, DecisionControl.decision_id == Decision.id)
                .where(
                    DecisionControl.control_id.in_(list(control_ids)),
                    Decision.by == "memory",
                    Decision.status == "current",
                )
            ).scalars()
        )
    )


# --- bulk --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BulkItemResult:
    review_id: str | None
    control_id: str | None = None
    created: bool = False
    error: CaseworkError | None = None


def bulk_feedback(
    session: Session, *, principal: Principal, items: Sequence[tuple[str, Feedback]]
) -> list[BulkItemResult]:
    """Apply each item as the single endpoint would; a bad item is rejected alone and never blocks the others.

    Every item is checked before anything is written, so no item can fail half-way: what is accepted is
    written together, in one flush. The reviews are locked in id order, so concurrent bulks cannot deadlock.
    """
    principal.require_write()
    ids = sorted({review_id for review_id, _ in items})
    locked = session.execute(
        select(Review)
        .where(Review.id.in_(ids))
        .order_by(Review.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalars()
    visible: dict[str, bool] = {}
    reviews: dict[str, Review] = {}
    for review in locked:
        if review.project_id not in visible:
            visible[review.project_id] = project_in_workspace(
                session, workspace_id=principal.workspace_id, project_id=review.project_id
            )
        if visible[review.project_id]:
            reviews[review.id] = review
    results = []
    for review_id, feedback in items:
        try:
            target = reviews.get(review_id)
            if target is None:
                raise _not_found(review_id)
            outcome = _decide(session, target, feedback, principal)
            results.append(
                BulkItemResult(review_id=review_id, control_id=outcome.control_id, created=outcome.created)
            )
        except CaseworkError as error:
            results.append(BulkItemResult(review_id=review_id, error=error))
    return results
