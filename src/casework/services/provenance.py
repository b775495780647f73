"""Undo: what changes when a control changes, or a person overturns memory (the provenance subscriber).

Every memory decision names the controls that voted (decision_controls). So:
- a control whose classification changes, or that leaves memory (retired), re-opens every review memory
  resolved with it, and the evaluations the precedent vote decided with it are marked superseded;
- a person overturning memory's decision flags the controls that voted for the wrong classification (the
  control page shows them as a conflict) and re-opens every other review memory resolved with them;
- a spot check that disagrees with the decision it checks overturns it (a review) or supersedes it (an
  evaluation).
Re-opened reviews go back to pending, and the memory pass decides them again under today's memory.
Nothing is deleted: the ended decisions stay in each review's history.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from casework.db.models import Decision, Evaluation, EvaluationControl, Evaluator, Event, Review
from casework.db.types import utcnow
from casework.events import EventType
from casework.services import controls, reviews

ACTOR = "casework-memory-provenance"


def follow(session: Session, event: Event) -> None:
    if event.type in (EventType.control_updated.value, EventType.control_retired.value):
        _control_changed(session, event)
    elif event.type == EventType.review_resolved.value:
        _overturned(session, event)
        _spot_check_decided(session, event)


def _control_changed(session: Session, event: Event) -> None:
    before, after = event.before or {}, event.data
    left = before.get("status") == "active" and after.get("status") != "active"
    changed = before.get("classification") != after.get("classification") and after.get("status") == "active"
    if not (left or changed):
        return
    what = (
        f"was {after.get('status')}"
        if left
        else f"changed from {before.get('classification')} to {after.get('classification')}"
    )
    reason = f"control {event.object_id} {what} by {event.actor}"
    reopen_with(session, control_ids=[event.object_id], reason=reason)
    supersede_decided_with(session, control_id=event.object_id, reason=reason)


def reopen_with(session: Session, *, control_ids: list[str], reason: str, keep: str | None = None) -> int:
    reopened = 0
    for review_id in reviews.resolved_by_memory_with(session, control_ids=control_ids):
        if review_id != keep and reviews.reopen(session, review_id=review_id, reason=reason, actor=ACTOR):
            reopened += 1
    return reopened


def supersede_decided_with(session: Session, *, control_id: str, reason: str) -> int:
    """Evaluations the precedent vote decided (not routed to people) with this control."""
    ids = list(
        session.execute(
            select(Evaluation.id)
            .join(EvaluationControl, EvaluationControl.evaluation_id == Evaluation.id)
            .join(Evaluator, Evaluator.id == Evaluation.evaluator_id)
            .where(
                EvaluationControl.control_id == control_id,
                Evaluator.kind == "precedent",
                Evaluation.ambiguous.is_(False),
                Evaluation.status == "completed",
                Evaluation.superseded_at.is_(None),
            )
        ).scalars()
    )
    return supersede(session, evaluation_ids=ids, reason=reason)


def supersede(session: Session, *, evaluation_ids: list[str], reason: str) -> int:
    if not evaluation_ids:
        return 0
    session.execute(
        update(Evaluation)
        .where(Evaluation.id.in_(evaluation_ids), Evaluation.superseded_at.is_(None))
        .values(superseded_at=utcnow(), superseded_reason=reason[:2000])
    )
    return len(evaluation_ids)


def _overturned(session: Session, event: Event) -> None:
    before, resolution = event.before or {}, event.data.get("resolution") or {}
    if not (
        before.get("status") == "resolved"
        and before.get("resolved_by") == "memory"
        and resolution.get("resolved_by") == "human"
        and resolution.get("classification") != before.get("resolution_classification")
    ):
        return
    decision = session.execute(
        select(Decision)
        .where(
            Decision.review_id == event.object_id, Decision.by == "memory", Decision.status == "overturned"
        )
        .order_by(Decision.ended_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    if decision is None:
        return
    wrong = [
        vote["control_id"] for vote in decision.votes if vote.get("classification") == decision.classification
    ]
    if not wrong:
        return
    note = {
        "kind": "overturned",
        "review_id": event.object_id,
        "memory_said": decision.classification,
        "person_said": resolution.get("classification"),
        "by": resolution.get("reviewer"),
        "at": event.created_at.isoformat().replace("+00:00", "Z"),
    }
    controls.flag_for_attention(session, control_ids=wrong, note=note)
    reopen_with(
        session,
        control_ids=wrong,
        reason=f"review {event.object_id}, which these controls decided, was overturned by {resolution.get('reviewer')}",
        keep=event.object_id,
    )


def _spot_check_decided(session: Session, event: Event) -> None:
    data = event.data
    resolution = data.get("resolution") or {}
    if data.get("kind") != "spot_check" or resolution.get("resolved_by") != "human":
        return
    automatic = (data.get("metadata") or {}).get("automatic") or {}
    subject = data.get("subject_id") or ""
    if not automatic or automatic.get("classification") == resolution.get("classification"):
        return  # the check agreed
    reason = (
        f"spot check {event.object_id} by {resolution.get('reviewer')} said {resolution.get('classification')}, "
        f"not {automatic.get('classification')}"
    )
    if subject.startswith("evn_"):
        supersede(session, evaluation_ids=[subject], reason=reason)
        return
    checked = session.get(Review, subject)
    spot_check = session.get(Review, event.object_id)
    if checked is None or spot_check is None or checked.resolved_by != "memory":
        return
    reviews.overturn_with(session, review_id=checked.id, source=spot_check, reason=reason, actor=ACTOR)
