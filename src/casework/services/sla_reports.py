"""The SLA report and trends of a project, read from the kept roll-ups (casework.services.rollups) and the
pending-review indexes: never a scan of the reviews."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy.orm import Session

from casework.db.types import utcnow
from casework.errors import ValidationFailed
from casework.services import rollups
from casework.services.projects import get_project
from casework.services.sla import overdue_reviews
from casework.services.web_pages import queue_health

REPORT_DAYS = 30
MAX_TREND_DAYS = 3 * 366
OVERDUE_LISTED = 100


@dataclass
class _Tally:
    counts: Counter[str] = field(default_factory=Counter)
    histogram: Counter[int] = field(default_factory=Counter)

    def add(self, row: Any) -> None:
        for name in rollups.COUNTERS:
            self.counts[name] += getattr(row, name)

    def add_histogram(self, histogram: dict[int, int]) -> None:
        self.histogram.update(histogram)

    @property
    def decided(self) -> int:
        return int(self.counts["resolved_human"] + self.counts["resolved_memory"])

    def decision_times(self) -> dict[str, Any]:
        decided = self.decided
        return {
            "decided": decided,
            "breached": int(self.counts["breached"]),
            "breach_rate": _share(int(self.counts["breached"]), decided),
            "p50_seconds": rollups.percentile(self.histogram, 0.5),
            "p90_seconds": rollups.percentile(self.histogram, 0.9),
        }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def sla_report(
    session: Session,
    *,
    workspace_id: str,
    project_id: str,
    since: date | None = None,
    until: date | None = None,
) -> dict[str, Any]:
    """Breach rate and time to decision (p50, p90) overall, by evaluator and by reviewer, over decisions made
    from ``since`` to ``until`` (default: the last 30 days); the reviews overdue now; the oldest pending."""
    get_project(session, workspace_id=workspace_id, project_id=project_id)
    now = utcnow()
    until = until or now.date()
    since = since or until - timedelta(days=REPORT_DAYS - 1)
    _check_range(since, until)
    overall = _Tally()
    groups: dict[str, dict[str, _Tally]] = {}
    for by in ("evaluator_type", "reviewer"):
        tallies: dict[str, _Tally] = defaultdict(_Tally)
        rows = rollups.sums(
            session, project_id=project_id, by=by, first_day=since, last_day=until, decisions_only=True
        )
        for row in rows:
            tallies[row.key].add(row)
            if by == "reviewer":
                overall.add(row)
        histograms = rollups.histograms(
            session, project_id=project_id, by=by, first_day=since, last_day=until
        )
        for key, histogram in histograms.items():
            tallies[key].add_histogram(histogram)
            if by == "reviewer":
                overall.add_histogram(histogram)
        groups[by] = {key: tally for key, tally in tallies.items() if tally.decided}
    count, overdue = overdue_reviews(session, project_id=project_id, now=now, limit=OVERDUE_LISTED)
    health = queue_health(session, project_id)
    return {
        "project_id": project_id,
        "since": since,
        "until": until,
        "overall": overall.decision_times(),
        "by_evaluator": {k: t.decision_times() for k, t in sorted(groups["evaluator_type"].items())},
        "by_reviewer": {k: t.decision_times() for k, t in sorted(groups["reviewer"].items())},
        "overdue_count": count,
        "overdue": [
            {
                "id": review.id,
                "evaluator_type": review.evaluator_type,
                "created_at": review.created_at,
                "due_at": review.due_at,
                "overdue_seconds": round((now - review.due_at).total_seconds(), 3) if review.due_at else 0.0,
            }
            for review in overdue
        ],
        "oldest_pending": health.oldest,
        "pending": health.pending,
    }


def _check_range(first: date, last: date) -> None:
    if last < first:
        raise ValidationFailed("from must not be after to.", details={"from": str(first), "to": str(last)})
    if (last - first).days > MAX_TREND_DAYS:
        raise ValidationFailed(
            f"A range covers at most {MAX_TREND_DAYS} days.", details={"from": str(first), "to": str(last)}
        )


def bucket_start(day: date, bucket: str) -> date:
    return day - timedelta(days=day.weekday()) if bucket == "week" else day


def trends(
    session: Session,
    *,
    workspace_id: str,
    project_id: str,
    first_day: date | None = None,
    last_day: date | None = None,
    bucket: str = "day",
    evaluator_type: str | None = None,
) -> dict[str, Any]:
    """Per day (or ISO week, from Monday) from ``first_day`` to ``last_day`` (default: the last 30 days): the
    interactions evaluated and the share sent to people, reviews queued, decisions by people and by memory, time
    to decision (p50, p90, p99), the SLA breach rate, controls created, and agreement on the decisions people
    made (the judge's verdict against theirs; pairs of reviewers on overlapped reviews). Every bucket of the
    range is listed."""
    get_project(session, workspace_id=workspace_id, project_id=project_id)
    last_day = last_day or utcnow().date()
    first_day = first_day or last_day - timedelta(days=REPORT_DAYS - 1)
    _check_range(first_day, last_day)
    window: dict[str, Any] = {
        "project_id": project_id,
        "first_day": first_day,
        "last_day": last_day,
        "evaluator_type": evaluator_type,
    }
    tallies: dict[date, _Tally] = {}
    evaluators: dict[date, dict[str, Counter[str]]] = {}
    start = bucket_start(first_day, bucket)
    while start <= last_day:
        tallies[start], evaluators[start] = _Tally(), defaultdict(Counter)
        start += timedelta(days=7 if bucket == "week" else 1)
    judged: set[str] = set()
    for row in rollups.sums(session, by="day", then_by="evaluator_type", **window):
        start = bucket_start(date.fromisoformat(row.key), bucket)
        tallies[start].add(row)
        if row.evaluated:
            judged.add(row.then)
            evaluators[start][row.then].update(evaluated=row.evaluated, routed=row.routed)
    for day, histogram in rollups.histograms(session, by="day", **window).items():
        tallies[bucket_start(date.fromisoformat(day), bucket)].add_histogram(histogram)
    return {
        "project_id": project_id,
        "bucket": bucket,
        "evaluator_type": evaluator_type,
        "buckets": [
            _trend_bucket(start, tally, {name: evaluators[start][name] for name in sorted(judged)})
            for start, tally in tallies.items()
        ],
    }


def _trend_bucket(start: date, tally: _Tally, evaluators: dict[str, Counter[str]]) -> dict[str, Any]:
    counts = tally.counts
    decided = tally.decided
    return {
        "start": start,
        "interactions_evaluated": counts["evaluated"],
        "routed_to_people": counts["routed"],
        "ambiguity_rate": _share(counts["routed"], counts["evaluated"]),
        "reviews_created": counts["created"],
        "resolved_by_people": counts["resolved_human"],
        "resolved_by_memory": counts["resolved_memory"],
        "time_to_decision_p50_seconds": rollups.percentile(tally.histogram, 0.5),
        "time_to_decision_p90_seconds": rollups.percentile(tally.histogram, 0.9),
        "time_to_decision_p99_seconds": rollups.percentile(tally.histogram, 0.99),
        "breached": counts["breached"],
        "breach_rate": _share(counts["breached"], decided),
        "controls_created": counts["controls_created"],
        "judge_human_compared": counts["judge_compared"],
        "judge_human_agreement": _share(counts["judge_agreed"], counts["judge_compared"]),
        "reviewer_pairs": counts["reviewer_pairs"],
        "inter_reviewer_agreement": _share(counts["reviewer_pairs_agreed"], counts["reviewer_pairs"]),
        # The ambiguity rate of each evaluator that judged anything in the range (the same names in every
        # bucket, so that a chart or a spreadsheet gets one series per evaluator).
        "by_evaluator": {
            name: {
                "interactions_evaluated": int(found["evaluated"]),
                "routed_to_people": int(found["routed"]),
                "ambiguity_rate": _share(int(found["routed"]), int(found["evaluated"])),
            }
            for name, found in evaluators.items()
        },
    }
