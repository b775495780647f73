"""What agreement reads, counted: the tally of some reviews' decisions and resolutions, which adds up.

Every figure of the agreement report and trend (casework.services.agreement) depends on the reviews in scope only
through counts: per review, how many of its independent decisions chose each classification (the statistics
depend on a review only through that row of counts, so only the distinct rows and how many reviews have each
are kept, per day); per pair of reviewers, their table of classifications on the reviews both decided; per
reviewer, their decisions, those on resolved reviews, those that agreed with the resolution, and how long each
took; per evaluator version, how often the judge's first verdict (and its re-evaluation with memory) was each
classification when a person decided each. Counts of disjoint sets of reviews add up to the counts of their
union, so a report over any dates is the sum of the tallies of its days (casework.services.agreement_days keeps
one per project, evaluator and day) and of the part-days at its ends, counted here from the rows.

Classifications are kept by name, not by position: the categories' order and level depend on the evaluators'
current options, resolved when a report is made. Time to decide is kept per decision to the millisecond (as a
count per millisecond value), so a reviewer's median over many days is exactly the median of their decisions'
times, each to the millisecond.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, aliased

from casework.db.dialect import milliseconds_between, utc_day
from casework.db.models import Decision, Evaluation, Review

Pattern = tuple[tuple[str, int], ...]  # a review's (classification, decisions) pairs, by name, none zero
Judged = tuple[
    str, str, int, str, str, str | None, str
]  # version's (id, name, number), day, first, re-evaluated, human
Key = tuple[str, str]  # (evaluator_type, day)


class Times:
    """How long a reviewer's decisions took, in whole milliseconds: chunks of (values, how many) that add up."""

    def __init__(self) -> None:
        self._chunks: list[tuple[Any, Any]] = []

    def add(self, values: Iterable[int] | np.ndarray, counts: Iterable[int] | np.ndarray) -> None:
        self._chunks.append((values, counts))

    def extend(self, other: Times) -> None:
        self._chunks.extend(other._chunks)

    def merged(self) -> tuple[np.ndarray, np.ndarray]:
        """The distinct values in order and how many decisions took each."""
        if not self._chunks:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        values = np.concatenate([np.asarray(v, dtype=np.int64) for v, _ in self._chunks])
        counts = np.concatenate([np.asarray(c, dtype=np.int64) for _, c in self._chunks])
        distinct, position = np.unique(values, return_inverse=True)
        return distinct, np.bincount(position, weights=counts, minlength=len(distinct)).astype(np.int64)

    def median(self) -> float | None:
        """The middle time, or the mean of the middle two."""
        values, counts = self.merged()
        n = int(counts.sum())
        if not n:
            return None
        reached = np.cumsum(counts)
        low = values[np.searchsorted(reached, (n + 1) // 2)]
        high = values[np.searchsorted(reached, n // 2 + 1)]
        return (float(low) + float(high)) / 2


@dataclass
class Tally:
    """The counts agreement reads, of a set of reviews (see the module's docstring); ``add`` another set's."""

    patterns: Counter[tuple[str, Pattern]] = field(default_factory=Counter)  # (day, pattern) -> reviews
    pairs: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)  # (a, b, a's, b's) -> reviews
    decisions: Counter[str] = field(default_factory=Counter)  # reviewer -> decisions
    decided: Counter[str] = field(default_factory=Counter)  # reviewer -> of those, on resolved reviews
    agreed: Counter[str] = field(default_factory=Counter)  # reviewer -> of those, the resolution's
    times: defaultdict[str, Times] = field(default_factory=lambda: defaultdict(Times))
    judged: Counter[Judged] = field(default_factory=Counter)  # -> reviews a person resolved
    evaluators: set[str] = field(default_factory=set)  # the evaluators of the reviews with decisions

    def add(self, other: Tally) -> None:
        self.patterns.update(other.patterns)
        self.pairs.update(other.pairs)
        self.decisions.update(other.decisions)
        self.decided.update(other.decided)
        self.agreed.update(other.agreed)
        for name, times in other.times.items():
            self.times[name].extend(times)
        self.judged.update(other.judged)
        self.evaluators |= other.evaluators

    @classmethod
    def total(cls, tallies: Iterable[Tally]) -> Tally:
        result = cls()
        for tally in tallies:
            result.add(tally)
        return result

    def as_json(self) -> dict[str, Any]:
        times = {}
        for name in sorted(self.times):
            values, counts = self.times[name].merged()
            times[name] = [values.tolist(), counts.tolist()]
        return {
            "patterns": [[day, dict(pattern), n] for (day, pattern), n in sorted(self.patterns.items())],
            "pairs": [[*key, n] for key, n in sorted(self.pairs.items())],
            "reviewers": {
                name: [self.decisions[name], self.decided[name], self.agreed[name]]
                for name in sorted(self.decisions)
            },
            "times": times,
            "judged": [[*key, n] for key, n in sorted(self.judged.items(), key=lambda kv: repr(kv[0]))],
            "evaluators": sorted(self.evaluators),
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Tally:
        tally = cls()
        tally.patterns.update(
            {(day, tuple(sorted(pattern.items()))): n for day, pattern, n in value["patterns"]}
        )
        tally.pairs.update({(a, b, first, second): n for a, b, first, second, n in value["pairs"]})
        for name, (decisions, decided, agreed) in value["reviewers"].items():
            tally.decisions[name] = decisions
            tally.decided[name] = decided
            tally.agreed[name] = agreed
        for name, (values, counts) in value["times"].items():
            tally.times[name].add(values, counts)
        tally.judged.update({tuple(row[:-1]): row[-1] for row in value["judged"]})
        tally.evaluators.update(value["evaluators"])
        return tally


class _Scope:
    """The submitted decisions of a project's reviews made in ``[start, end)``, of one evaluator or all."""

    def __init__(
        self,
        project_id: str,
        evaluator_type: str | None,
        start: datetime | None,
        end: datetime | None,
    ) -> None:
        self.project_id = project_id
        self.evaluator_type = evaluator_type
        self.start = start
        self.end = end

    def reviews(self, query: Any) -> Any:
        query = query.where(Review.project_id == self.project_id)
        if self.evaluator_type is not None:
            query = query.where(Review.evaluator_type == self.evaluator_type)
        if self.start is not None:
            query = query.where(Review.created_at >= self.start)
        if self.end is not None:
            query = query.where(Review.created_at < self.end)
        return query

    def decisions(self, query: Any) -> Any:
        query = query.join(Review, Review.id == Decision.review_id).where(
            Decision.project_id == self.project_id, Decision.status == "submitted"
        )
        return self.reviews(query)


def count_rows(
    session: Session,
    project_id: str,
    *,
    evaluator_type: str | None,
    start: datetime | None,
    end: datetime | None,
) -> dict[Key, Tally]:
    """The tallies of the project's reviews made in ``[start, end)`` (of one evaluator, or all), counted by the
    database from the rows, per evaluator and day."""
    scope = _Scope(project_id, evaluator_type, start, end)
    found: defaultdict[Key, Tally] = defaultdict(Tally)
    _count_decisions(session, scope, found)
    _count_judged(session, scope, found)
    return dict(found)


def _count_decisions(session: Session, scope: _Scope, found: defaultdict[Key, Tally]) -> None:
    labels = sorted(session.execute(scope.decisions(select(Decision.classification).distinct())).scalars())
    if not labels:
        return
    evaluator = Review.evaluator_type
    day = utc_day(session, Review.created_at)
    # Per review, how many chose each classification; then how many reviews have each row, per day.
    chosen = [
        func.sum(case((Decision.classification == label, 1), else_=0)).label(f"c{i}")
        for i, label in enumerate(labels)
    ]
    per_review = (
        scope.decisions(select(evaluator.label("evaluator"), day.label("day"), *chosen))
        .group_by(Decision.review_id, evaluator, day)
        .subquery()
    )
    columns = [per_review.c[f"c{i}"] for i in range(len(labels))]
    grouped = [per_review.c.evaluator, per_review.c.day, *columns]
    for name, on, *given, n in session.execute(select(*grouped, func.count()).group_by(*grouped)).all():
        tally = found[(name, on)]
        tally.patterns[(on, tuple((label, int(c)) for label, c in zip(labels, given, strict=True) if c))] += n
        tally.evaluators.add(name)
    # Per pair of reviewers (in name order), their classifications on the reviews both decided.
    other = aliased(Decision)
    pairs = scope.decisions(
        select(
            evaluator, day, Decision.reviewer, other.reviewer, Decision.classification, other.classification
        ).add_columns(func.count())
    ).join(
        other,
        (other.review_id == Decision.review_id)
        & (other.status == "submitted")
        & (other.reviewer > Decision.reviewer),
    )
    pairs = pairs.group_by(
        evaluator, day, Decision.reviewer, other.reviewer, Decision.classification, other.classification
    )
    for name, on, first, second, first_label, second_label, n in session.execute(pairs).all():
        if second < first:  # the database's collation may order names otherwise than Python does
            first, second, first_label, second_label = second, first, second_label, first_label
        found[(name, on)].pairs[(first, second, first_label, second_label)] += n
    # Per reviewer: decisions, those on resolved reviews, those the resolution agreed with, and their times.
    decided = (Review.status == "resolved") & Review.resolution_classification.is_not(None)
    agreed = decided & (Decision.classification == Review.resolution_classification)
    elapsed = milliseconds_between(session, Review.created_at, Decision.created_at)
    per_reviewer = scope.decisions(
        select(
            evaluator,
            day,
            Decision.reviewer,
            elapsed,
            func.count(),
            func.sum(case((decided, 1), else_=0)),
            func.sum(case((agreed, 1), else_=0)),
        )
    ).group_by(evaluator, day, Decision.reviewer, elapsed)
    times: defaultdict[tuple[str, str, str], Counter[int]] = defaultdict(Counter)
    for name, on, reviewer, ms, n, in_resolved, in_agreement in session.execute(per_reviewer).all():
        tally = found[(name, on)]
        tally.decisions[reviewer] += n
        tally.decided[reviewer] += int(in_resolved)
        tally.agreed[reviewer] += int(in_agreement)
        times[(name, on, reviewer)][_whole_milliseconds(float(ms))] += n
    for (name, on, reviewer), counted in times.items():
        values = sorted(counted)
        found[(name, on)].times[reviewer].add(values, [counted[v] for v in values])


def _whole_milliseconds(ms: float) -> int:
    """Rounded half up, the same on both databases (their own ROUND differ at halves)."""
    return math.floor(ms + 0.5)


def _count_judged(session: Session, scope: _Scope, found: defaultdict[Key, Tally]) -> None:
    """Per evaluator version, the reviews a person resolved on its verdicts (the review it queued, or a spot
    check of its automatic decision): the judge's first verdict, its re-evaluation with memory (None when it
    was not re-evaluated) and the person's decision. A review counts once per version."""
    columns = (
        Evaluation.evaluator_id,
        Evaluation.evaluator_type,
        Evaluation.evaluator_version,
        Evaluation.initial_classification,
        Evaluation.classification,
        Evaluation.reevaluated,
        Review.id,
        Review.classification,
        Review.resolution_classification,
        Review.evaluator_type,
        utc_day(session, Review.created_at),
    )
    by_review = select(*columns).join(Review, Review.id == Evaluation.review_id)
    by_spot_check = (
        select(*columns).join(Review, Review.subject_id == Evaluation.id).where(Review.kind == "spot_check")
    )
    rows: dict[tuple[str, str, int, str], tuple[Key, str, str | None, str]] = {}
    for statement in (by_review, by_spot_check):
        statement = scope.reviews(
            statement.where(
                Evaluation.project_id == scope.project_id,
                Review.status == "resolved",
                Review.resolved_by == "human",
            )
        )
        for row in session.execute(statement).all():
            evaluator_id, name, version, initial, final, reevaluated, review_id, queued, human, kind, on = row
            first = initial if reevaluated and initial is not None else (final or queued)
            with_memory = (final or queued) if reevaluated else None
            rows[(evaluator_id, name, version, review_id)] = ((kind, on), first, with_memory, human or "")
    for (evaluator_id, name, version, _), (key, first, with_memory, human) in rows.items():
        found[key].judged[(evaluator_id, name, version, key[1], first, with_memory, human)] += 1
