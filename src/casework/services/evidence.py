"""Evidence: how automatic decisions compare with people's, kept per project, evaluator and method.

Two subjects. ``memory``: every human decision replayed as if memory had decided it, from the controls that
existed before it and without its own (``replay``), and people's verdicts on a sample of memory's real
decisions (``spot_check``). ``judge``: the judge's first verdict against the person who decided the review it
caused (``review``) or who spot-checked a confident one (``spot_check``). casework.memory.calibration turns them
into thresholds; nothing here is ever taken from the future.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casework.db.dialect import insert_ignoring_conflict
from casework.db.models import Decision, Evaluation, Evaluator, MemoryEvidence, Review
from casework.db.types import utcnow
from casework.definitions import EvaluatorDefinition
from casework.memory.calibration import Calibration, Sample, fewest_samples

# Bumped when memory's way of deciding changes: older evidence then measures something else.
METHOD_VERSION = "2"


def memory_method(definition: EvaluatorDefinition) -> str:
    """What memory's decisions depend on: its evidence is kept apart from any other method's."""
    parts: dict[str, Any] = {
        "v": METHOD_VERSION,
        "kind": definition.kind,
        "k": definition.memory_k,
        "min": definition.memory_min_score,
        "budget": definition.memory_candidates,
    }
    if definition.kind == "llm":
        parts.update(
            system=definition.reeval_system_prompt,
            human=definition.reeval_human_prompt,
            model=definition.model,
            options=list(definition.options),
        )
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
    return f"{definition.kind}:{digest}"


def judge_method(definition: EvaluatorDefinition) -> str:
    """The judge's first pass depends on its evaluation prompts and model."""
    parts = [definition.evaluation_system_prompt, definition.evaluation_human_prompt, definition.model or ""]
    return "judge:" + hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def record(
    session: Session,
    *,
    project_id: str,
    evaluator_type: str,
    subject: str,
    source: str,
    review_id: str,
    method: str,
    predicted: str | None,
    score: float,
    human: str,
    decided_at: datetime,
) -> bool:
    """Keep one sample (once: a sample recorded again is ignored)."""
    return insert_ignoring_conflict(
        session,
        MemoryEvidence,
        {
            "project_id": project_id,
            "evaluator_type": evaluator_type,
            "subject": subject,
            "source": source,
            "review_id": review_id,
            "method": method,
            "predicted": predicted,
            "score": round(score, 6),
            "human": human,
            "correct": predicted == human,
            "decided_at": decided_at,
            "created_at": utcnow(),
        },
        conflict_columns=["subject", "source", "review_id", "method"],
    )


def state(
    session: Session, *, project_id: str, evaluator_type: str, subject: str, method: str
) -> tuple[int, int]:
    """(how many samples, the newest's id): what a cached calibration is valid for."""
    count, newest = session.execute(
        select(func.count(), func.max(MemoryEvidence.id)).where(
            MemoryEvidence.project_id == project_id,
            MemoryEvidence.evaluator_type == evaluator_type,
            MemoryEvidence.subject == subject,
            MemoryEvidence.method == method,
        )
    ).one()
    return int(count), int(newest or 0)


def samples(
    session: Session, *, project_id: str, evaluator_type: str, subject: str, method: str
) -> list[Sample]:
    rows = session.execute(
        select(MemoryEvidence.score, MemoryEvidence.predicted, MemoryEvidence.correct).where(
            MemoryEvidence.project_id == project_id,
            MemoryEvidence.evaluator_type == evaluator_type,
            MemoryEvidence.subject == subject,
            MemoryEvidence.method == method,
        )
    )
    return [
        Sample(score=score, predicted=predicted, correct=bool(correct)) for score, predicted, correct in rows
    ]


@dataclass(frozen=True)
class ReplayCase:
    """A human decision to replay: the interaction, who decided what, when, and the control it made."""

    review_id: str
    project_id: str
    evaluator_type: str
    options: list[str]
    query: str
    response: str
    context: str | None
    human: str
    decided_at: datetime
    control_id: str | None
    kind: str
    subject_id: str | None
    # The judge's first verdict on the interaction, when an evaluation queued the review, and the method (the
    # evaluator version's prompts and model) it came from.
    judge_classification: str | None
    judge_confidence: float | None
    judge_method: str | None
    # For a spot check: the automatic decision it checks, and the raw score it was made at.
    checked_classification: str | None
    checked_score: float | None


def replay_case(session: Session, *, review_id: str) -> ReplayCase | None:
    """The review's current human decision, if it has one."""
    review = session.get(Review, review_id)
    if review is None or review.status != "resolved" or review.resolved_by != "human":
        return None
    decision = session.execute(
        select(Decision)
        .where(Decision.review_id == review_id, Decision.by == "human", Decision.status == "current")
        .order_by(Decision.created_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    decided_at = decision.created_at if decision else (review.resolved_at or utcnow())
    judge_classification = judge_confidence = judge = None
    evaluation_id = (review.attributes or {}).get("evaluation_id") if review.kind == "review" else None
    if isinstance(evaluation_id, str):
        evaluation = session.get(Evaluation, evaluation_id)
        if evaluation is not None and evaluation.project_id == review.project_id:
            judge_classification = evaluation.initial_classification
            judge_confidence = evaluation.initial_confidence
            version = session.get(Evaluator, evaluation.evaluator_id)
            judge = judge_method(_definition(version)) if version is not None else None
    automatic = (review.attributes or {}).get("automatic") or {}
    return ReplayCase(
        review_id=review.id,
        project_id=review.project_id,
        evaluator_type=review.evaluator_type,
        options=list(review.options),
        query=review.query,
        response=review.response,
        context=review.context,
        human=review.resolution_classification or "",
        decided_at=decided_at,
        control_id=review.control_id,
        kind=review.kind,
        subject_id=review.subject_id,
        judge_classification=judge_classification,
        judge_confidence=judge_confidence,
        judge_method=judge,
        checked_classification=automatic.get("classification") if review.kind == "spot_check" else None,
        checked_score=automatic.get("score") if review.kind == "spot_check" else None,
    )


def _definition(evaluator: Evaluator) -> EvaluatorDefinition:
    return EvaluatorDefinition(
        name=evaluator.name,
        options=tuple(evaluator.options),
        evaluation_system_prompt=evaluator.evaluation_system_prompt,
        evaluation_human_prompt=evaluator.evaluation_human_prompt,
        model=evaluator.model,
    )


def human_decisions(session: Session, *, project_id: str, evaluator_type: str) -> list[str]:
    """Every review of the evaluator a person decided, oldest decision first (for replaying them all)."""
    return list(
        session.execute(
            select(Review.id)
            .where(
                Review.project_id == project_id,
                Review.evaluator_type == evaluator_type,
                Review.status == "resolved",
                Review.resolved_by == "human",
            )
            .order_by(Review.resolved_at, Review.id)
        ).scalars()
    )


def current_version(session: Session, *, project_id: str, name: str) -> Evaluator | None:
    return session.execute(
        select(Evaluator)
        .where(Evaluator.project_id == project_id, Evaluator.name == name)
        .order_by(Evaluator.version.desc())
        .limit(1)
    ).scalar_one_or_none()


def percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def summary_record(
    calibration: Calibration, definition: EvaluatorDefinition, *, subject: str
) -> dict[str, Any]:
    """The evidence in numbers and in plain words, as the API and the overview page show it."""
    who = "memory" if subject == "memory" else "the judge"
    classes = []
    sentences = []
    for option in definition.options:
        found = calibration.classes[option]
        lower, upper = found.interval or (0.0, 1.0)
        shown = calibration.confidence(found.threshold, option) if found.threshold is not None else None
        classes.append(
            {
                "classification": option,
                "samples": found.samples,
                "decides_alone": found.threshold is not None,
                "threshold": shown,
                "raw_threshold": found.threshold,
                "decided_above": found.above,
                "precision": found.precision,
                "interval": [round(lower, 4), round(upper, 4)] if found.above else None,
            }
        )
        if found.threshold is not None and found.precision is not None:
            sentences.append(
                f"{who} decides {option} alone above {shown:.2f}: {percent(found.precision)} right "
                f"[{percent(lower)}-{percent(upper)}] on {found.above} past decisions"
            )
        else:
            needed = fewest_samples(calibration.target)
            sentences.append(
                f"{who} only suggests {option}: not yet enough evidence that it is right "
                f"{percent(calibration.target)} of the time ({found.samples} past decisions where it would have "
                f"said {option}; at least {needed} right in a row are needed)"
            )
    mode = definition.memory_mode if subject == "memory" else definition.ambiguity_mode
    if subject == "memory" and mode == "suggest":
        sentences = [
            f"memory only suggests (memory_mode is suggest); {calibration.samples} past decisions measured"
        ]
    return {
        "subject": subject,
        "mode": mode,
        "target": calibration.target,
        "samples": calibration.samples,
        "coverage": round(calibration.coverage, 4),
        "classes": classes,
        "curve": [point.__dict__ for point in calibration.curve],
        "reliability": [point.__dict__ for point in calibration.reliability],
        "summary": "; ".join(sentences) + ".",
    }
