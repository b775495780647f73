"""The memory pass: which pending reviews memory should look at again (after a new control, or when a review
was re-opened). Deciding them is the runner's (casework.worker.runner), and resolving them the review service's.

A review whose evaluator_type is not a registered evaluator is looked at too, by precedent, with its own options:
memory must never skip a review silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.db.models import Control, Evaluator, Review
from casework.definitions import EvaluatorDefinition, precedent
from casework.memory.retrieval import WordsCache
from casework.memory.similarity import ControlWords, Words, similarity
from casework.services.evaluators import definition_of, latest


@dataclass(frozen=True)
class Target:
    id: str
    query: str
    response: str
    context: str | None
    options: tuple[str, ...]
    # Memory's best controls for it once the new ones are counted, from the ones it had (its suggestion's
    # votes): no need to search memory again. None: search (memory has not looked at it yet).
    votes: tuple[tuple[str, float], ...] | None = None


@dataclass
class PassPlan:
    """One evaluator's pending reviews to look at, and how memory decides for that evaluator."""

    project_id: str
    evaluator_type: str
    definition: EvaluatorDefinition
    evaluator: Evaluator | None
    reviews: list[Target] = field(default_factory=list)


def definition_for(
    session: Session, *, project_id: str, evaluator_type: str, options: Sequence[str]
) -> tuple[EvaluatorDefinition, Evaluator | None]:
    """The evaluator's definition; for a type no evaluator is registered under, the precedent judge."""
    evaluator = latest(session, project_id=project_id, name=evaluator_type)
    if evaluator is not None:
        return definition_of(evaluator), evaluator
    return precedent(tuple(options), name=evaluator_type), None


def _target(review: Review, votes: tuple[tuple[str, float], ...] | None = None) -> Target:
    return Target(review.id, review.query, review.response, review.context, tuple(review.options), votes)


def plan_for_controls(session: Session, *, control_ids: Sequence[str], scan: int = 5000) -> list[PassPlan]:
    """For each (project, evaluator) of the new active controls, the pending reviews (of the newest ``scan``)
    whose memory they change: those whose best ``memory_k`` controls they now enter. A review memory has not
    looked at yet is looked up in full; for the others, their suggestion's votes and the new controls' scores are
    all memory needs. So a control that is like nothing pending costs one comparison per pending review: the scan
    reads only ids (their words cached by review id; a text only when not cached), and the rest only of the
    reviews that match."""
    found = list(session.execute(select(Control).where(Control.id.in_(list(control_ids)))).scalars())
    groups: dict[tuple[str, str], list[Control]] = {}
    for control in found:
        if control.status == "active":
            groups.setdefault((control.project_id, control.evaluator_type), []).append(control)
    plans = []
    for (project_id, evaluator_type), group in sorted(groups.items()):
        pending = (
            session.execute(
                select(Review.id)
                .where(
                    Review.project_id == project_id,
                    Review.status == "pending",
                    Review.evaluator_type == evaluator_type,
                    Review.kind == "review",
                )
                .order_by(Review.created_at.desc())
                .limit(scan)
            )
            .scalars()
            .all()
        )
        if not pending:
            continue
        interactions = _words_of(session, pending)
        notes = [(c.id, ControlWords.of(c.query, c.response, c.reasoning, list(c.tags))) for c in group]
        definition, evaluator = definition_for(
            session,
            project_id=project_id,
            evaluator_type=evaluator_type,
            options=_options(session, pending[0]),
        )
        close: dict[str, dict[str, float]] = {}
        for review_id in pending:
            words = interactions.get(review_id)
            if words is None:  # gone meanwhile
                continue
            new = {cid: round(similarity(words, note), 4) for cid, note in notes}
            new = {cid: score for cid, score in new.items() if score >= definition.memory_min_score}
            if new:
                close[review_id] = new
        plan = PassPlan(project_id, evaluator_type, definition, evaluator)
        for review in _reviews(session, sorted(close)):
            new = close[review.id]
            if review.suggestion is None:
                plan.reviews.append(_target(review))
                continue
            merged = {vote["control_id"]: vote["score"] for vote in review.suggestion.get("votes") or []}
            merged.update(new)
            best = sorted(merged.items(), key=lambda pair: (-pair[1], pair[0]))[: definition.memory_k]
            if any(cid in new for cid, _ in best):
                plan.reviews.append(_target(review, votes=tuple(best)))
        if plan.reviews:
            plans.append(plan)
    return plans


# The words of pending reviews the memory pass compared recently: a review's interaction never changes.
REVIEW_WORDS: WordsCache[str, Words] = WordsCache()


def _words_of(session: Session, review_ids: Sequence[str]) -> dict[str, Words]:
    """The words of these reviews: cached ones as they are, the others from their text (read in chunks)."""
    found: dict[str, Words] = {}
    missing: list[str] = []
    for review_id in review_ids:
        words = REVIEW_WORDS.get(review_id)
        if words is None:
            missing.append(review_id)
        else:
            found[review_id] = words
    for start in range(0, len(missing), 500):
        rows = session.execute(
            select(Review.id, Review.query, Review.response).where(
                Review.id.in_(missing[start : start + 500])
            )
        )
        for review_id, query, response in rows:
            words = Words.of(query, response)
            REVIEW_WORDS.put(review_id, words)
            found[review_id] = words
    return found


def _options(session: Session, review_id: str) -> list[str]:
    return list(session.execute(select(Review.options).where(Review.id == review_id)).scalar_one())


def _reviews(session: Session, ids: list[str]) -> list[Review]:
    """The reviews ``ids`` still pending, in id order, read in chunks (a bound parameter list has limits)."""
    found: list[Review] = []
    for start in range(0, len(ids), 500):
        found += session.execute(
            select(Review)
            .where(Review.id.in_(ids[start : start + 500]), Review.status == "pending")
            .order_by(Review.id)
        ).scalars()
    return found


def pending_citing(
    session: Session, *, project_id: str, evaluator_type: str, control_ids: Sequence[str], scan: int = 5000
) -> list[str]:
    """The pending reviews (of the newest ``scan``, as a new control's pass) whose memory suggestion cites any of
    these controls: when a control is corrected or retired, what people are shown must not rest on what it no
    longer says. Rare (a control changed), so a read of the evaluator's pending reviews, not an index."""
    wanted = set(control_ids)
    rows = session.execute(
        select(Review.id, Review.suggestion)
        .where(
            Review.project_id == project_id,
            Review.evaluator_type == evaluator_type,
            Review.status == "pending",
        )
        .order_by(Review.created_at.desc())
        .limit(scan)
    )
    return sorted(
        review_id
        for review_id, suggestion in rows
        if suggestion and wanted & {vote.get("control_id") for vote in suggestion.get("votes") or []}
    )


def plan_for_reviews(session: Session, *, review_ids: Sequence[str]) -> list[PassPlan]:
    """The pending reviews among ``review_ids`` (re-opened ones, say), grouped by evaluator."""
    reviews = session.execute(
        select(Review).where(Review.id.in_(list(review_ids)), Review.status == "pending").order_by(Review.id)
    ).scalars()
    plans: dict[tuple[str, str], PassPlan] = {}
    for review in reviews:
        key = (review.project_id, review.evaluator_type)
        if key not in plans:
            definition, evaluator = definition_for(
                session,
                project_id=review.project_id,
                evaluator_type=review.evaluator_type,
                options=review.options,
            )
            plans[key] = PassPlan(review.project_id, review.evaluator_type, definition, evaluator)
        plans[key].reviews.append(_target(review))
    return list(plans.values())
