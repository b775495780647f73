"""Agreement, computed by the server: between reviewers on overlapped reviews, and between the judge and people.

Inter-reviewer: percent agreement (pairwise), Cohen's kappa per reviewer pair, Fleiss' kappa and Krippendorff's
alpha (nominal, or ordinal when the evaluator declares its options ordered), each with a 95% bootstrap interval
and the number of items (casework.services.agreement_stats). Judge-vs-human: per evaluator version, the judge's
first verdict, and its re-evaluation with memory, against the person's decision (spot checks included). The
trend gives both per week (or day, or month), with the number of controls the evaluator had by then.

What the endpoints serve is stored and refreshed in the background (casework.services.agreement_reports): every
change agreement reads (a decision, a resolution, an evaluation, a control, an evaluator version) writes an event
in its own transaction, and the project's events make the refresh.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any, Literal

import numpy as np
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, aliased

from casework.db.dialect import milliseconds_between, utc_day
from casework.db.models import Control, Decision, Evaluation, Evaluator, Review
from casework.services.agreement_stats import (
    BOOTSTRAP_SAMPLES,
    BOOTSTRAP_SEED,
    PAIR_BOOTSTRAP_SAMPLES,
    Level,
    Rating,
    _estimate,
    _kappa_of_tables,
    _resample_weights,
    agreement_of_counts,
    alpha_estimate,
    inter_rater,
    judge_vs_human,
    pair_agreements,
)

__all__ = ["Rating", "compute_report", "compute_trend", "inter_rater", "judge_vs_human"]

Bucket = Literal["day", "week", "month"]


def _bucket_start(day: date, bucket: Bucket) -> date:
    if bucket == "week":
        return day - timedelta(days=day.weekday())
    if bucket == "month":
        return day.replace(day=1)
    return day


def _next_bucket(start: date, bucket: Bucket) -> date:
    if bucket == "week":
        return start + timedelta(days=7)
    if bucket == "month":
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return start + timedelta(days=1)


def _scales(session: Session, project_id: str) -> dict[str, tuple[list[str], bool]]:
    """Each evaluator's options and whether they are ordered, from its newest version."""
    found: dict[str, tuple[int, list[str], bool]] = {}
    rows = session.execute(
        select(Evaluator.name, Evaluator.version, Evaluator.options, Evaluator.ordered).where(
            Evaluator.project_id == project_id
        )
    ).all()
    for name, version, options, ordered in rows:
        if name not in found or version > found[name][0]:
            found[name] = (version, list(options), bool(ordered))
    return {name: (options, ordered) for name, (_, options, ordered) in found.items()}


def _scale_for(
    scales: dict[str, tuple[list[str], bool]], evaluator_types: set[str], seen: set[str]
) -> tuple[list[str], Level]:
    """The categories in order, and the level: ordinal when the data is one evaluator's, whose options are
    declared ordered and hold every classification given; nominal otherwise."""
    categories: list[str] = []
    for name in sorted(evaluator_types):
        for option in scales.get(name, ([], False))[0]:
            if option not in categories:
                categories.append(option)
    level: Level = "nominal"
    if len(evaluator_types) == 1:
        options, ordered = scales.get(next(iter(evaluator_types)), ([], False))
        if ordered and seen <= set(options):
            level = "ordinal"
    categories += sorted(seen - set(categories))
    return categories, level


class _Decisions:
    """The submitted decisions in scope, counted by the database: per review, how many chose each category,
    grouped into distinct rows of counts per day (every statistic here depends on a review only through that
    row); per reviewer, their decisions; per pair of reviewers, their table of classifications on the reviews
    both decided. Nothing is read per decision."""

    def __init__(
        self,
        session: Session,
        project_id: str,
        *,
        evaluator_type: str | None,
        created_from: datetime | None,
        created_to: datetime | None,
    ) -> None:
        self._session = session
        self._project_id = project_id
        self._evaluator_type = evaluator_type
        self._created_from = created_from
        self._created_to = created_to
        seen_rows = session.execute(
            self._scoped(select(Review.evaluator_type, Decision.classification).distinct())
        ).all()
        self.evaluator_types = {row[0] for row in seen_rows}
        seen = {row[1] for row in seen_rows}
        self.categories, self.level = _scale_for(_scales(session, project_id), self.evaluator_types, seen)
        k = len(self.categories)
        day = utc_day(session, Review.created_at).label("day")
        chosen = [
            func.sum(case((Decision.classification == label, 1), else_=0)).label(f"c{i}")
            for i, label in enumerate(self.categories)
        ]
        per_review = self._scoped(select(Decision.review_id, day, *chosen)).group_by(Decision.review_id, day)
        inner = per_review.subquery()
        columns = [inner.c[f"c{i}"] for i in range(k)]
        rows = session.execute(
            select(inner.c.day, *columns, func.count()).group_by(inner.c.day, *columns)
        ).all()
        self.days = [row[0] for row in rows]
        self.patterns = np.array([row[1 : k + 1] for row in rows], dtype=float).reshape(len(rows), k)
        self.frequencies = np.array([row[k + 1] for row in rows], dtype=np.int64)

    def _scoped(self, query: Any) -> Any:
        query = query.join(Review, Review.id == Decision.review_id).where(
            Decision.project_id == self._project_id, Decision.status == "submitted"
        )
        if self._evaluator_type:
            query = query.where(Review.evaluator_type == self._evaluator_type)
        if self._created_from:
            query = query.where(Review.created_at >= self._created_from)
        if self._created_to:
            query = query.where(Review.created_at < self._created_to)
        return query

    def counts(self, days: set[str] | None = None) -> np.ndarray:
        """One row of counts per overlapped review (at least two decisions), of the given days or all."""
        keep = self.patterns.sum(axis=1) >= 2
        if days is not None:
            keep &= np.array([day in days for day in self.days], dtype=bool)
        return np.repeat(self.patterns[keep], self.frequencies[keep], axis=0)

    def per_reviewer(self) -> list[dict[str, Any]]:
        decided = (Review.status == "resolved") & Review.resolution_classification.is_not(None)
        rows = self._session.execute(
            self._scoped(
                select(
                    Decision.reviewer,
                    func.count(),
                    func.sum(case((decided, 1), else_=0)),
                    func.sum(
                        case(
                            (decided & (Decision.classification == Review.resolution_classification), 1),
                            else_=0,
                        )
                    ),
                )
            ).group_by(Decision.reviewer)
        ).all()
        elapsed = milliseconds_between(self._session, Review.created_at, Decision.created_at)
        ranked = self._scoped(
            select(
                Decision.reviewer.label("reviewer"),
                elapsed.label("ms"),
                func.row_number().over(partition_by=Decision.reviewer, order_by=elapsed).label("rank"),
                func.count().over(partition_by=Decision.reviewer).label("n"),
            )
        ).subquery()
        # The median: the middle time, or the mean of the middle two (integer division picks them).
        middle = (ranked.c.rank == (ranked.c.n + 1) // 2) | (ranked.c.rank == ranked.c.n // 2 + 1)
        medians: dict[str, float | None] = dict(
            self._session.execute(
                select(ranked.c.reviewer, func.avg(ranked.c.ms)).where(middle).group_by(ranked.c.reviewer)
            ).all()
        )
        return [
            {
                "reviewer": name,
                "decisions": int(decisions),
                "agreement_with_final": round(int(agreed) / int(final), 4) if final else None,
                "decided_reviews": int(final),
                "median_seconds_to_decide": round(max(float(medians.get(name) or 0.0), 0.0) / 1000, 3),
            }
            for name, decisions, final, agreed in sorted(rows)
        ]

    def pair_tables(self) -> dict[tuple[str, str], np.ndarray]:
        """Per pair of reviewers (in name order), the k x k table of their classifications on shared reviews."""
        other = aliased(Decision)
        index = {label: i for i, label in enumerate(self.categories)}
        k = len(self.categories)
        query = self._scoped(
            select(
                Decision.reviewer, other.reviewer, Decision.classification, other.classification, func.count()
            )
        ).join(
            other,
            (other.review_id == Decision.review_id)
            & (other.status == "submitted")
            & (other.reviewer > Decision.reviewer),
        )
        query = query.group_by(
            Decision.reviewer, other.reviewer, Decision.classification, other.classification
        )
        tables: dict[tuple[str, str], np.ndarray] = {}
        for first, second, first_label, second_label, n in self._session.execute(query).all():
            if second < first:  # the database's collation may order names otherwise than Python does
                first, second, first_label, second_label = second, first, second_label, first_label
            table = tables.setdefault((first, second), np.zeros((k, k), dtype=float))
            table[index[first_label], index[second_label]] += n
        return dict(sorted(tables.items()))


def compute_report(
    session: Session,
    *,
    project_id: str,
    evaluator_type: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    pairs: bool = True,
) -> dict[str, Any]:
    """The agreement report of a project: inter-reviewer (overlapped reviews), per reviewer, judge-vs-human.
    ``pairs=False`` skips Cohen's kappa per pair of reviewers (a crowd of 123 raters makes 7,503 pairs)."""
    data = _Decisions(
        session, project_id, evaluator_type=evaluator_type, created_from=created_from, created_to=created_to
    )
    counts = data.counts()
    reviewers = data.per_reviewer()
    inter = {
        "items": int(counts.shape[0]),
        "ratings": int(counts.sum()),
        "categories": data.categories,
        "level": data.level,
        **agreement_of_counts(counts, level=data.level),
        "pairs": pair_agreements(data.pair_tables(), samples=PAIR_BOOTSTRAP_SAMPLES, seed=BOOTSTRAP_SEED)
        if pairs
        else [],
    }
    judged = _judged(
        session, project_id, evaluator_type=evaluator_type, created_from=created_from, created_to=created_to
    )
    versions = []
    for (evaluator_id, name, version), rows in sorted(judged.items(), key=lambda kv: (kv[0][1], kv[0][2])):
        labels = rows[0]["options"]
        versions.append(
            {
                "evaluator_id": evaluator_id,
                "evaluator_type": name,
                "version": version,
                **judge_vs_human([(r["first"], r["human"]) for r in rows], labels=labels),
                "with_memory": judge_vs_human(
                    [(r["reevaluated"], r["human"]) for r in rows if r["reevaluated"] is not None],
                    labels=labels,
                ),
            }
        )
    return {
        "project_id": project_id,
        "evaluator_type": evaluator_type,
        "inter_reviewer": inter,
        "reviewers": reviewers,
        "judge_vs_human": versions,
    }


def _judged(
    session: Session,
    project_id: str,
    *,
    evaluator_type: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
) -> dict[tuple[str, str, int], list[dict[str, Any]]]:
    """Per evaluator version, the reviews a person resolved on its verdicts (the review it queued, or a spot
    check of its automatic decision): the judge's first verdict, its re-evaluation with memory (None when it
    was not re-evaluated), the person's decision, and when the review was made."""
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
        utc_day(session, Review.created_at),
    )
    scales = _scales(session, project_id)
    by_review = select(*columns).join(Review, Review.id == Evaluation.review_id)
    by_spot_check = (
        select(*columns).join(Review, Review.subject_id == Evaluation.id).where(Review.kind == "spot_check")
    )
    found: dict[tuple[str, str, int], dict[str, dict[str, Any]]] = defaultdict(dict)
    for statement in (by_review, by_spot_check):
        statement = statement.where(
            Evaluation.project_id == project_id, Review.status == "resolved", Review.resolved_by == "human"
        )
        if evaluator_type:
            statement = statement.where(Evaluation.evaluator_type == evaluator_type)
        if created_from:
            statement = statement.where(Review.created_at >= created_from)
        if created_to:
            statement = statement.where(Review.created_at < created_to)
        for row in session.execute(statement).all():
            (
                evaluator_id,
                name,
                version,
                initial,
                final,
                reevaluated,
                review_id,
                queued,
                human,
                day,
            ) = row
            first = initial if reevaluated and initial is not None else (final or queued)
            found[(evaluator_id, name, version)][review_id] = {
                "first": first,
                "reevaluated": (final or queued) if reevaluated else None,
                "human": human or "",
                "day": day,
                "options": scales.get(name, ([], False))[0],
            }
    return {key: list(rows.values()) for key, rows in found.items()}


def compute_trend(
    session: Session,
    *,
    project_id: str,
    evaluator_type: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    bucket: Bucket,
) -> dict[str, Any]:
    """Agreement over time: per bucket of reviews' creation, inter-reviewer alpha (with its interval and n),
    and the judge's first verdict and re-evaluation with memory against people (accuracy, Cohen's kappa with
    its interval, n), with the number of controls the evaluator had by the bucket's end."""
    data = _Decisions(
        session, project_id, evaluator_type=evaluator_type, created_from=created_from, created_to=created_to
    )
    days_of: dict[date, set[str]] = defaultdict(set)
    for day in data.days:
        days_of[_bucket_start(date.fromisoformat(day), bucket)].add(day)
    inter = []
    for start in sorted(days_of):
        counts = data.counts(days_of[start])
        if not counts.shape[0]:
            continue
        inter.append(
            {
                "start": start.isoformat(),
                "items": int(counts.shape[0]),
                "ratings": int(counts.sum()),
                "krippendorff_alpha": alpha_estimate(counts, level=data.level),
            }
        )
    judged = _judged(
        session, project_id, evaluator_type=evaluator_type, created_from=created_from, created_to=created_to
    )
    controls = _control_days(session, project_id, evaluator_type=evaluator_type)
    series = []
    for (evaluator_id, name, version), rows in sorted(judged.items(), key=lambda kv: (kv[0][1], kv[0][2])):
        series.append(
            {
                "evaluator_id": evaluator_id,
                "evaluator_type": name,
                "version": version,
                "points": _judge_points(rows, bucket, controls, {name}),
            }
        )
    pooled = [row for rows in judged.values() for row in rows]
    return {
        "project_id": project_id,
        "evaluator_type": evaluator_type,
        "bucket": bucket,
        "level": data.level,
        "inter_reviewer": inter,
        "judge_vs_human": series,
        "judge_vs_human_all": _judge_points(pooled, bucket, controls, {name for _, name, _ in judged}),
    }


def _control_days(session: Session, project_id: str, *, evaluator_type: str | None) -> dict[str, list[str]]:
    """Per evaluator, the days its controls were made, in order."""
    query = select(Control.evaluator_type, utc_day(session, Control.created_at)).where(
        Control.project_id == project_id
    )
    if evaluator_type:
        query = query.where(Control.evaluator_type == evaluator_type)
    times: dict[str, list[str]] = defaultdict(list)
    for name, created in session.execute(query).all():
        times[name].append(created)
    for values in times.values():
        values.sort()
    return times


def _judge_points(
    rows: list[dict[str, Any]], bucket: Bucket, controls: dict[str, list[str]], names: set[str]
) -> list[dict[str, Any]]:
    by_bucket: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_bucket[_bucket_start(date.fromisoformat(row["day"]), bucket)].append(row)
    points = []
    for start in sorted(by_bucket):
        end = _next_bucket(start, bucket).isoformat()  # controls made before this day
        within = by_bucket[start]
        points.append(
            {
                "start": start.isoformat(),
                "items": len(within),
                "controls": sum(bisect.bisect_left(controls.get(name, []), end) for name in names),
                "first": _judge_estimate([(r["first"], r["human"]) for r in within]),
                "with_memory": _judge_estimate(
                    [(r["reevaluated"], r["human"]) for r in within if r["reevaluated"] is not None]
                ),
            }
        )
    return points


def _judge_estimate(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Accuracy and Cohen's kappa (with its bootstrap interval) of the judge's verdicts against people's."""
    labels = sorted({label for pair in pairs for label in pair})
    index = {label: i for i, label in enumerate(labels)}
    k = len(labels)
    table = np.zeros(k * k, dtype=float)
    for judged, human in pairs:
        table[index[judged] * k + index[human]] += 1
    value = float(_kappa_of_tables(table.reshape(k, k))) if pairs and k >= 2 else None
    resampled = (
        _kappa_of_tables(_resample_weights(table, BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED).reshape(-1, k, k))
        if value is not None and len(pairs) >= 2
        else None
    )
    return {
        "accuracy": round(sum(j == h for j, h in pairs) / len(pairs), 4) if pairs else None,
        "cohen_kappa": _estimate(value, resampled, len(pairs)),
    }
