"""Agreement, computed by the server: between reviewers on overlapped reviews, and between the judge and people.

Inter-reviewer: percent agreement (pairwise), Cohen's kappa per reviewer pair, Fleiss' kappa and Krippendorff's
alpha (nominal, or ordinal when the evaluator declares its options ordered), each with a 95% bootstrap interval
and the number of items (casework.services.agreement_stats). Judge-vs-human: per evaluator version, the judge's
first verdict, and its re-evaluation with memory, against the person's decision (spot checks included). The
trend gives both per week (or day, or month), with the number of controls the evaluator had by then.

Every figure is computed from counts (casework.services.agreement_tallies): the tally of the reviews in scope is
the sum of the kept tallies of its days, with its part-days at either end (and any day changed since its tally
was kept) counted from the rows (casework.services.agreement_days), so a scope nobody asked for before costs a
few hundred small rows, not a pass over every decision. The categories, their order and the level come from the
evaluators' options now, whatever the day the counts were kept.

What the endpoints serve is stored and refreshed in the background (casework.services.agreement_reports): every
change agreement reads (a decision, a resolution, an evaluation, a control, an evaluator version) writes an event
in its own transaction, and the project's events make the refresh.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from typing import Any, Literal

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.db.dialect import utc_day
from casework.db.models import Control, Evaluator
from casework.services import agreement_days
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
    judge_vs_human_of_counts,
    pair_agreements,
)
from casework.services.agreement_tallies import Tally

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
    """The submitted decisions in scope, from their tally: the categories and level; the distinct rows of counts
    per category (one per review; every statistic here depends on a review only through that row), how many
    reviews have each and on which day; per reviewer, their decisions; per pair of reviewers, their table."""

    def __init__(self, tally: Tally, scales: dict[str, tuple[list[str], bool]]) -> None:
        self._tally = tally
        self.evaluator_types = set(tally.evaluators)
        seen = {label for _, pattern in tally.patterns for label, _ in pattern}
        self.categories, self.level = _scale_for(scales, self.evaluator_types, seen)
        index = {label: i for i, label in enumerate(self.categories)}
        k = len(self.categories)
        rows = []
        for (day, pattern), n in tally.patterns.items():
            row = [0] * k
            for label, chosen in pattern:
                row[index[label]] = chosen
            rows.append((day, tuple(row), n))
        rows.sort()  # by day, then row: the order the counts are repeated in (ties in the most common m)
        self.days = [row[0] for row in rows]
        self.patterns = np.array([row[1] for row in rows], dtype=float).reshape(len(rows), k)
        self.frequencies = np.array([row[2] for row in rows], dtype=np.int64)

    def counts(self, days: set[str] | None = None) -> np.ndarray:
        """One row of counts per overlapped review (at least two decisions), of the given days or all."""
        keep = self.patterns.sum(axis=1) >= 2
        if days is not None:
            keep &= np.array([day in days for day in self.days], dtype=bool)
        return np.repeat(self.patterns[keep], self.frequencies[keep], axis=0)

    def per_reviewer(self) -> list[dict[str, Any]]:
        tally = self._tally
        reviewers = []
        for name in sorted(tally.decisions):
            final = tally.decided[name]
            median = tally.times[name].median() if name in tally.times else None
            reviewers.append(
                {
                    "reviewer": name,
                    "decisions": tally.decisions[name],
                    "agreement_with_final": round(tally.agreed[name] / final, 4) if final else None,
                    "decided_reviews": final,
                    "median_seconds_to_decide": round(max(median or 0.0, 0.0) / 1000, 3),
                }
            )
        return reviewers

    def pair_tables(self) -> dict[tuple[str, str], np.ndarray]:
        """Per pair of reviewers (in name order), the k x k table of their classifications on shared reviews."""
        index = {label: i for i, label in enumerate(self.categories)}
        k = len(self.categories)
        tables: dict[tuple[str, str], np.ndarray] = {}
        for (first, second, first_label, second_label), n in self._tally.pairs.items():
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
    gathered = agreement_days.gather(
        session, project_id, evaluator_type=evaluator_type, created_from=created_from, created_to=created_to
    )
    return report_of(
        session, gathered.tally, project_id=project_id, evaluator_type=evaluator_type, pairs=pairs
    )


def report_of(
    session: Session, tally: Tally, *, project_id: str, evaluator_type: str | None, pairs: bool = True
) -> dict[str, Any]:
    """The agreement report of the reviews ``tally`` counted."""
    scales = _scales(session, project_id)
    data = _Decisions(tally, scales)
    counts = data.counts()
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
    versions = []
    for (evaluator_id, name, version), judged in _judged(tally).items():
        labels = scales.get(name, ([], False))[0]
        versions.append(
            {
                "evaluator_id": evaluator_id,
                "evaluator_type": name,
                "version": version,
                **judge_vs_human_of_counts(judged.first, labels=labels),
                "with_memory": judge_vs_human_of_counts(judged.with_memory, labels=labels),
            }
        )
    return {
        "project_id": project_id,
        "evaluator_type": evaluator_type,
        "inter_reviewer": inter,
        "reviewers": data.per_reviewer(),
        "judge_vs_human": versions,
    }


class _Verdicts:
    """The judge's verdicts against people's decisions, counted: its first verdict's (judge, person) pairs, and
    its re-evaluation's where it re-evaluated."""

    def __init__(self) -> None:
        self.first: Counter[tuple[str, str]] = Counter()
        self.with_memory: Counter[tuple[str, str]] = Counter()

    def add(self, first: str, reevaluated: str | None, human: str, n: int) -> None:
        self.first[(first, human)] += n
        if reevaluated is not None:
            self.with_memory[(reevaluated, human)] += n

    @property
    def items(self) -> int:
        return sum(self.first.values())


def _judged(tally: Tally) -> dict[tuple[str, str, int], _Verdicts]:
    """Per evaluator version (in name and version order), the reviews a person resolved on its verdicts (the
    review it queued, or a spot check of its automatic decision)."""
    found: defaultdict[tuple[str, str, int], _Verdicts] = defaultdict(_Verdicts)
    for (evaluator_id, name, version, _, first, reevaluated, human), n in tally.judged.items():
        found[(evaluator_id, name, version)].add(first, reevaluated, human, n)
    return dict(sorted(found.items(), key=lambda kv: (kv[0][1], kv[0][2])))


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
    gathered = agreement_days.gather(
        session, project_id, evaluator_type=evaluator_type, created_from=created_from, created_to=created_to
    )
    return trend_of(
        session, gathered.tally, project_id=project_id, evaluator_type=evaluator_type, bucket=bucket
    )


def trend_of(
    session: Session, tally: Tally, *, project_id: str, evaluator_type: str | None, bucket: Bucket
) -> dict[str, Any]:
    """The agreement trend of the reviews ``tally`` counted."""
    data = _Decisions(tally, _scales(session, project_id))
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
    controls = _control_days(session, project_id, evaluator_type=evaluator_type)
    # Per evaluator version and bucket, and per bucket for all versions pooled.
    by_version: defaultdict[tuple[str, str, int], defaultdict[date, _Verdicts]] = defaultdict(
        lambda: defaultdict(_Verdicts)
    )
    pooled: defaultdict[date, _Verdicts] = defaultdict(_Verdicts)
    for (evaluator_id, name, version, day, first, reevaluated, human), n in tally.judged.items():
        start = _bucket_start(date.fromisoformat(day), bucket)
        by_version[(evaluator_id, name, version)][start].add(first, reevaluated, human, n)
        pooled[start].add(first, reevaluated, human, n)
    series = [
        {
            "evaluator_id": evaluator_id,
            "evaluator_type": name,
            "version": version,
            "points": _judge_points(buckets, bucket, controls, {name}),
        }
        for (evaluator_id, name, version), buckets in sorted(
            by_version.items(), key=lambda kv: (kv[0][1], kv[0][2])
        )
    ]
    return {
        "project_id": project_id,
        "evaluator_type": evaluator_type,
        "bucket": bucket,
        "level": data.level,
        "inter_reviewer": inter,
        "judge_vs_human": series,
        "judge_vs_human_all": _judge_points(pooled, bucket, controls, {name for _, name, _ in by_version}),
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
    buckets: dict[date, _Verdicts], bucket: Bucket, controls: dict[str, list[str]], names: set[str]
) -> list[dict[str, Any]]:
    points = []
    for start in sorted(buckets):
        end = _next_bucket(start, bucket).isoformat()  # controls made before this day
        within = buckets[start]
        points.append(
            {
                "start": start.isoformat(),
                "items": within.items,
                "controls": sum(bisect.bisect_left(controls.get(name, []), end) for name in names),
                "first": _judge_estimate(within.first),
                "with_memory": _judge_estimate(within.with_memory),
            }
        )
    return points


def _judge_estimate(pairs: Counter[tuple[str, str]]) -> dict[str, Any]:
    """Accuracy and Cohen's kappa (with its bootstrap interval) of the judge's verdicts against people's,
    counted as (judge, person) pairs."""
    labels = sorted({label for pair, n in pairs.items() if n for label in pair})
    index = {label: i for i, label in enumerate(labels)}
    k = len(labels)
    table = np.zeros(k * k, dtype=float)
    for (judged, human), n in pairs.items():
        table[index[judged] * k + index[human]] += n
    items = sum(pairs.values())
    value = float(_kappa_of_tables(table.reshape(k, k))) if items and k >= 2 else None
    resampled = (
        _kappa_of_tables(_resample_weights(table, BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED).reshape(-1, k, k))
        if value is not None and items >= 2
        else None
    )
    return {
        "accuracy": round(sum(n for (j, h), n in pairs.items() if j == h) / items, 4) if items else None,
        "cohen_kappa": _estimate(value, resampled, items),
    }
