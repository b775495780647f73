"""After new controls: which pending reviews they may settle, and settling them by memory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.db.models import Control, Evaluator, Review
from casework.db.types import utcnow
from casework.evaluators.judge import Verdict
from casework.memory.retrieval import DEFAULT_MIN_SCORE
from casework.memory.similarity import content_words, control_similarity
from casework.services import audit, review_counts
from casework.services.evaluators import latest

MEMORY_REVIEWER = "casework-memory"


@dataclass
class PassPlan:
    """The evaluator, and the pending reviews most similar to the new controls."""

    evaluator: Evaluator
    reviews: list[Review]
    control_ids: list[str]


def plan_pass(
    session: Session, *, control_ids: Sequence[str], limit: int = 50, scan: int = 5000
) -> list[PassPlan]:
    """For each (project, evaluator) of the new controls: its pending reviews most similar to any of them
    (at most ``limit``; the newest ``scan`` pending reviews are compared)."""
    controls = list(session.execute(select(Control).where(Control.id.in_(control_ids))).scalars())
    groups: dict[tuple[str, str], list[Control]] = {}
    for control in controls:
        if control.status == "active":
            groups.setdefault((control.project_id, control.evaluator_type), []).append(control)
    plans = []
    for (project_id, evaluator_type), group in groups.items():
        evaluator = latest(session, project_id=project_id, name=evaluator_type)
        if evaluator is None:
            continue
        pending = session.execute(
            select(Review)
            .where(
                Review.project_id == project_id,
                Review.status == "pending",
                Review.evaluator_type == evaluator_type,
            )
            .order_by(Review.created_at.desc())
            .limit(scan)
        ).scalars()
        notes = [
            (
                content_words(f"{c.query or ''} {c.response or ''}"),
                content_words(f"{c.reasoning} {' '.join(c.tags)}"),
            )
            for c in group
        ]
        scored = []
        for review in pending:
            words = content_words(f"{review.query} {review.response}")
            score = max(control_similarity(words, control_interaction=i, control_notes=n) for i, n in notes)
            if score >= DEFAULT_MIN_SCORE:
                scored.append((score, review))
        scored.sort(key=lambda pair: -pair[0])
        plans.append(
            PassPlan(
                evaluator=evaluator, reviews=[r for _, r in scored[:limit]], control_ids=[c.id for c in group]
            )
        )
    return plans


def resolve_by_memory(session: Session, *, decisions: Sequence[tuple[str, Verdict, str]]) -> list[str]:
    """Resolve each (review id, verdict, control id) still pending; returns the ids resolved."""
    resolved = []
    for review_id, verdict, control_id in decisions:
        review = session.execute(
            select(Review).where(Review.id == review_id).with_for_update()
        ).scalar_one_or_none()
        if review is None or review.status != "pending":
            continue  # a person got there first
        review.status = "resolved"
        review.resolved_at = utcnow()
        review.resolved_by = "memory"
        review.resolution_classification = verdict.classification
        review.resolution_reasoning = verdict.explanation or "Decided with evaluation memory."
        review.resolution_reviewer = MEMORY_REVIEWER
        review.resolution_tags = []
        review.resolution_submitted_by = MEMORY_REVIEWER
        review.control_id = control_id
        review_counts.bump(
            session, review.project_id, {review_counts.PENDING: -1, review_counts.resolved_by("memory"): 1}
        )
        audit.record(
            session,
            project_id=review.project_id,
            actor=f"{MEMORY_REVIEWER} (control {control_id})",
            action="review.resolved",
            object_type="review",
            object_id=review.id,
            before={"status": "pending", "classification": review.classification},
            after={
                "status": "resolved",
                "resolved_by": "memory",
                "classification": verdict.classification,
                "confidence": verdict.confidence,
                "control_id": control_id,
            },
        )
        resolved.append(review.id)
    return resolved
