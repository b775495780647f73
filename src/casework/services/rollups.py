"""The kept daily roll-ups that trends and the SLA report read: per project, day (UTC), evaluator and, for
decisions, reviewer. They change in the transaction that makes each change (``follow`` is called by
``events.emit``; evaluations are counted where they are stored), so reading 90 days costs a few hundred rows
however many reviews there are.

Time to decision is kept as a histogram of buckets a quarter of a power of two wide (so a percentile read from
it is within about 9% of the exact one); the Prometheus histogram's ``le`` bounds are some of the same bounds.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from casework.db.dialect import insert_statement, upsert_adding
from casework.db.models import Control, Decision, DecisionTimeBucket, Evaluation, Review, ReviewRollup
from casework.events import EventType

BUCKETS_PER_DOUBLING = 4
MAX_BUCKET = 4 * 30  # 2**30 seconds: 34 years
COUNTERS = (
    "evaluated",
    "routed",
    "created",
    "resolved_human",
    "resolved_memory",
    "breached",
    "decision_seconds",
    "controls_created",
    "judge_compared",
    "judge_agreed",
    "reviewer_pairs",
    "reviewer_pairs_agreed",
)


def bucket_of(seconds: float) -> int:
    """The histogram bucket of a decision that took ``seconds``: bucket b holds (2**((b-1)/4), 2**(b/4)]."""
    if seconds <= 1:
        return 0
    return min(math.ceil(BUCKETS_PER_DOUBLING * math.log2(seconds) - 1e-9), MAX_BUCKET)


def upper_bound(bucket: int) -> float:
    return float(2 ** (bucket / BUCKETS_PER_DOUBLING))


def estimate(bucket: int) -> float:
    """The value a percentile falling in ``bucket`` is reported as: the bucket's geometric middle."""
    return 1.0 if bucket == 0 else float(2 ** ((bucket - 0.5) / BUCKETS_PER_DOUBLING))


def percentile(histogram: Mapping[int, int], share: float) -> float | None:
    total = sum(histogram.values())
    if not total:
        return None
    rank = max(1, math.ceil(share * total))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return round(estimate(bucket), 1)
    return None  # unreachable: the counts add up to total


def day_of(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def _parse(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def bump(session: Session, rows: Iterable[tuple[tuple[str, str, str, str], Mapping[str, float]]]) -> None:
    """Add counts to roll-up rows ``((project_id, day, evaluator_type, reviewer), {counter: delta})``, touching
    the rows in one order so that concurrent transactions never deadlock on them."""
    merged: dict[tuple[str, str, str, str], Counter[str]] = defaultdict(Counter)
    for key, changes in rows:
        merged[key].update(changes)
    if not merged:
        return
    values = []
    for (project_id, day, evaluator_type, reviewer), changes in sorted(merged.items()):
        row: dict[str, Any] = {name: 0 for name in COUNTERS}
        row.update(changes)
        row.update(project_id=project_id, day=day, evaluator_type=evaluator_type, reviewer=reviewer)
        values.append(row)
    statement = upsert_adding(
        session,
        ReviewRollup,
        keys=("project_id", "day", "evaluator_type", "reviewer"),
        columns=COUNTERS,
    )
    session.execute(statement, values)


def _bump_histogram(session: Session, key: tuple[str, str, str, str], bucket: int) -> None:
    project_id, day, evaluator_type, reviewer = key
    statement = upsert_adding(
        session,
        DecisionTimeBucket,
        keys=("project_id", "day", "evaluator_type", "reviewer", "bucket"),
        columns=("n",),
    )
    session.execute(
        statement,
        [
            {
                "project_id": project_id,
                "day": day,
                "evaluator_type": evaluator_type,
                "reviewer": reviewer,
                "bucket": bucket,
                "n": 1,
            }
        ],
    )


def follow(session: Session, type: str, *, project_id: str, data: Mapping[str, Any]) -> None:
    """Count one event: a review queued, a decision (by a person or by memory), a control created."""
    if type == EventType.review_created.value:
        created = _parse(data.get("created_at"))
        if created is not None:
            bump(session, [((project_id, day_of(created), data["evaluator_type"], ""), {"created": 1})])
    elif type == EventType.review_resolved.value:
        _count_decision(session, project_id, data)
    elif type == EventType.control_created.value:
        created = _parse(data.get("created_at"))
        if created is not None:
            key = (project_id, day_of(created), data["evaluator_type"], "")
            bump(session, [(key, {"controls_created": 1})])


def _count_decision(session: Session, project_id: str, data: Mapping[str, Any]) -> None:
    resolution = data.get("resolution") or {}
    resolved_at = _parse(resolution.get("resolved_at"))
    created_at = _parse(data.get("created_at"))
    if resolved_at is None or created_at is None:
        return
    seconds = max((resolved_at - created_at).total_seconds(), 0.0)
    due_at = _parse(data.get("due_at"))
    by = resolution.get("resolved_by")
    key = (project_id, day_of(resolved_at), data["evaluator_type"], str(resolution.get("reviewer") or ""))
    changes = {
        "resolved_human" if by == "human" else "resolved_memory": 1,
        "breached": int(due_at is not None and resolved_at > due_at),
        "decision_seconds": seconds,
    }
    if by == "human":
        changes.update(
            agreement(
                data.get("classification"),
                resolution.get("classification"),
                _submitted(session, [str(data["id"])]).get(str(data["id"]), []),
            )
        )
    bump(session, [(key, changes)])
    project, day, evaluator_type, reviewer = key
    _bump_histogram(session, (project, day, evaluator_type, ""), bucket_of(seconds))
    _bump_histogram(session, (project, day, "", reviewer), bucket_of(seconds))


def agreement(judged: Any, decided: Any, submitted: Iterable[str]) -> dict[str, int]:
    """The agreement counters of one decision by people: the judge's verdict (the one the review was queued
    with) against the decision, and each pair of the reviewers' independent decisions on an overlapped review."""
    found = Counter(submitted)
    decisions = sum(found.values())
    return {
        "judge_compared": int(judged is not None and decided is not None),
        "judge_agreed": int(judged is not None and judged == decided),
        "reviewer_pairs": decisions * (decisions - 1) // 2,
        "reviewer_pairs_agreed": sum(n * (n - 1) // 2 for n in found.values()),
    }


def _submitted(
    session: Session, review_ids: list[str], project_id: str | None = None
) -> dict[str, list[str]]:
    """The independent decisions (classifications) submitted on overlapped reviews, per review."""
    query = select(Decision.review_id, Decision.classification).where(Decision.status == "submitted")
    query = query.where(Decision.project_id == project_id) if project_id else query
    query = query.where(Decision.review_id.in_(review_ids)) if review_ids else query
    found: dict[str, list[str]] = defaultdict(list)
    for review_id, classification in session.execute(query):
        found[review_id].append(classification)
    return found


def count_evaluations(session: Session, project_id: str, evaluations: Iterable[Evaluation]) -> None:
    """Count stored evaluations: how many interactions each evaluator judged, and how many it sent to people."""
    rows = [
        (
            (project_id, day_of(evaluation.created_at), evaluation.evaluator_type, ""),
            # Sent to people: ambiguous, or sent by a risk tier's rule (the evaluation then names its review).
            {"evaluated": 1, "routed": int(evaluation.review_id is not None)},
        )
        for evaluation in evaluations
        if evaluation.status == "completed"
    ]
    bump(session, rows)


# --- reading -----------------------------------------------------------------------------------------------------


def _range(
    model: Any, project_id: str, first_day: date | None, last_day: date | None, evaluator_type: str | None
) -> list[Any]:
    where = [model.project_id == project_id]
    if first_day is not None:
        where.append(model.day >= first_day.isoformat())
    if last_day is not None:
        where.append(model.day <= last_day.isoformat())
    if evaluator_type is not None:
        where.append(model.evaluator_type == evaluator_type)
    return where


def sums(
    session: Session,
    *,
    project_id: str,
    by: str,
    then_by: str | None = None,
    first_day: date | None = None,
    last_day: date | None = None,
    evaluator_type: str | None = None,
    decisions_only: bool = False,
) -> list[Any]:
    """The counters summed per ``by`` (``day``, ``evaluator_type`` or ``reviewer``), in the database: a row per
    group with ``key`` and each counter; with ``then_by``, per pair of values (``key`` and ``then``).
    ``decisions_only``: only the rows that count decisions."""
    groups = [getattr(ReviewRollup, by).label("key")]
    if then_by is not None:
        groups.append(getattr(ReviewRollup, then_by).label("then"))
    where = _range(ReviewRollup, project_id, first_day, last_day, evaluator_type)
    if decisions_only:
        where.append(ReviewRollup.reviewer != "")
    columns = [func.coalesce(func.sum(getattr(ReviewRollup, name)), 0).label(name) for name in COUNTERS]
    return list(session.execute(select(*groups, *columns).where(*where).group_by(*groups)).all())


def histograms(
    session: Session,
    *,
    project_id: str,
    by: str,
    first_day: date | None = None,
    last_day: date | None = None,
    evaluator_type: str | None = None,
) -> dict[str, dict[int, int]]:
    """Time-to-decision histograms per ``by`` (``day``, ``evaluator_type`` or ``reviewer``), summed in the
    database."""
    group = getattr(DecisionTimeBucket, by)
    where = _range(DecisionTimeBucket, project_id, first_day, last_day, evaluator_type)
    # Each decision is in two histograms: its evaluator's (reviewer "") and its reviewer's (evaluator "").
    if by == "reviewer":
        where.append(DecisionTimeBucket.evaluator_type == "")
    else:
        where.append(DecisionTimeBucket.reviewer == "")
    found: dict[str, dict[int, int]] = defaultdict(dict)
    for key, bucket, n in session.execute(
        select(group, DecisionTimeBucket.bucket, func.sum(DecisionTimeBucket.n))
        .where(*where)
        .group_by(group, DecisionTimeBucket.bucket)
    ).all():
        found[key][bucket] = int(n)
    return dict(found)


# --- rebuilding (after rows were written around the services, as benchmarks do) --------------------------------


def rebuild(session: Session, project_id: str) -> None:
    """Recompute a project's roll-ups from its reviews, evaluations and controls. Decisions are counted once
    each, by the review's current resolution (a decision memory made and a person overturned counts once)."""
    session.execute(delete(ReviewRollup).where(ReviewRollup.project_id == project_id))
    session.execute(delete(DecisionTimeBucket).where(DecisionTimeBucket.project_id == project_id))
    rows: list[tuple[tuple[str, str, str, str], Mapping[str, float]]] = []
    for created_at, evaluator_type in session.execute(
        select(Review.created_at, Review.evaluator_type).where(Review.project_id == project_id)
    ):
        rows.append(((project_id, day_of(created_at), evaluator_type, ""), {"created": 1}))
    for created_at, evaluator_type in session.execute(
        select(Control.created_at, Control.evaluator_type).where(Control.project_id == project_id)
    ):
        rows.append(((project_id, day_of(created_at), evaluator_type, ""), {"controls_created": 1}))
    for created_at, evaluator_type, review_id in session.execute(
        select(Evaluation.created_at, Evaluation.evaluator_type, Evaluation.review_id).where(
            Evaluation.project_id == project_id, Evaluation.status == "completed"
        )
    ):
        rows.append(
            (
                (project_id, day_of(created_at), evaluator_type, ""),
                {"evaluated": 1, "routed": int(review_id is not None)},
            )
        )
    histogram: Counter[tuple[str, str, str, str, int]] = Counter()
    submitted = _submitted(session, [], project_id=project_id)
    for review in session.execute(
        select(
            Review.id,
            Review.classification,
            Review.resolution_classification,
            Review.created_at,
            Review.resolved_at,
            Review.due_at,
            Review.evaluator_type,
            Review.resolved_by,
            Review.resolution_reviewer,
        ).where(Review.project_id == project_id, Review.status == "resolved")
    ):
        seconds = max((review.resolved_at - review.created_at).total_seconds(), 0.0)
        key = (
            project_id,
            day_of(review.resolved_at),
            review.evaluator_type,
            review.resolution_reviewer or "",
        )
        rows.append(
            (
                key,
                {
                    "resolved_human" if review.resolved_by == "human" else "resolved_memory": 1,
                    "breached": int(review.due_at is not None and review.resolved_at > review.due_at),
                    "decision_seconds": seconds,
                    **(
                        agreement(
                            review.classification,
                            review.resolution_classification,
                            submitted.get(review.id, []),
                        )
                        if review.resolved_by == "human"
                        else {}
                    ),
                },
            )
        )
        project, day, evaluator_type, reviewer = key
        histogram[(project, day, evaluator_type, "", bucket_of(seconds))] += 1
        histogram[(project, day, "", reviewer, bucket_of(seconds))] += 1
    bump(session, rows)
    if histogram:
        session.execute(
            insert_statement(session, DecisionTimeBucket.__table__),
            [
                {"project_id": p, "day": d, "evaluator_type": e, "reviewer": r, "bucket": b, "n": n}
                for (p, d, e, r, b), n in sorted(histogram.items())
            ],
        )
