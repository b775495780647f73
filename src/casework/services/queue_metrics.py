"""What /metrics reports about the loop, read from the database at scrape time: pending reviews by project,
evaluator and age, overdue reviews, decisions by who made them, time to decision, evaluations and how many went
to people, agreement (judge against people, reviewer against reviewer), webhook delivery failures. Every label is bounded (projects, evaluators, a few age buckets): never a
review or trace id.

Counters come from the kept roll-ups (casework.services.rollups), so they survive restarts and agree across
processes: every process reports the same totals, as a database-wide counter should.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, func, literal, or_, select, text
from sqlalchemy.orm import Session

from casework.db.models import DecisionTimeBucket, Project, Review, ReviewRollup, WebhookAttempt
from casework.db.types import utcnow
from casework.services import rollups, sla

# The age buckets of pending reviews: (label, at most this old).
AGE_BUCKETS: tuple[tuple[str, timedelta | None], ...] = (
    ("0-1h", timedelta(hours=1)),
    ("1h-4h", timedelta(hours=4)),
    ("4h-24h", timedelta(hours=24)),
    ("1d-3d", timedelta(days=3)),
    ("3d+", None),
)
# The time-to-decision histogram's bounds: some of the roll-up histogram's own bounds (2**(b/4) seconds), about
# 1 minute, 4 minutes, 17 minutes, 68 minutes, 4.5 hours, 18 hours, 3 days and 12 days.
DECISION_BUCKETS = (24, 32, 40, 48, 56, 64, 72, 80)
_PENDING = text("reviews.status = 'pending'")
# The roll-ups' counters summed per project and evaluator at each scrape (a few rows per project and day).
_SUMMED = (
    "resolved_human",
    "resolved_memory",
    "evaluated",
    "routed",
    "decision_seconds",
    "judge_compared",
    "judge_agreed",
    "reviewer_pairs",
    "reviewer_pairs_agreed",
)

ProjectKey = tuple[str, str]  # (project id, project name)


@dataclass
class Histogram:
    counts: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    total_seconds: float = 0.0

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus buckets: (le, how many at most that), ending with +Inf."""
        found = []
        for bound in DECISION_BUCKETS:
            le = rollups.upper_bound(bound)
            found.append((f"{le:.1f}", sum(n for bucket, n in self.counts.items() if bucket <= bound)))
        found.append(("+Inf", sum(self.counts.values())))
        return found


@dataclass
class Snapshot:
    projects: dict[str, str]  # id -> name
    pending: dict[tuple[str, str, str], int]  # (project id, evaluator, age bucket) -> reviews
    overdue: dict[str, int]  # project id -> reviews waiting for a decision past their due time
    decisions: dict[tuple[str, str, str], int]  # (project id, evaluator, human|memory) -> decisions
    evaluated: dict[tuple[str, str], int]  # (project id, evaluator) -> interactions judged
    routed: dict[tuple[str, str], int]  # (project id, evaluator) -> of which sent to people
    decision_times: dict[tuple[str, str], Histogram]  # (project id, evaluator)
    webhook_failures: int
    oldest_pending: dict[str, float] = field(default_factory=dict)  # project id -> seconds
    # (project id, "pending_count" | "oldest_pending_hours") -> whether the sweep has it crossed now
    thresholds_crossed: dict[tuple[str, str], bool] = field(default_factory=dict)
    # (project id, evaluator, "judge_human" | "reviewer_reviewer") -> (pairs compared, pairs that agreed): the
    # judge's verdict against each decision by people; each pair of reviewers on an overlapped review
    agreement: dict[tuple[str, str, str], tuple[int, int]] = field(default_factory=dict)


def snapshot(session: Session, *, now: datetime | None = None) -> Snapshot:
    now = now or utcnow()
    projects: dict[str, str] = {}
    crossed: dict[tuple[str, str], bool] = {}
    for row in session.execute(select(Project)).scalars():
        projects[row.id] = row.name
        if row.queue_pending_threshold is not None:
            crossed[(row.id, "pending_count")] = row.queue_pending_alert_at is not None
        if row.queue_oldest_threshold_hours is not None:
            crossed[(row.id, "oldest_pending_hours")] = row.queue_oldest_alert_at is not None
    oldest = {
        project_id: (now - created).total_seconds()
        for project_id, created in session.execute(
            select(Review.project_id, func.min(Review.created_at)).where(_PENDING).group_by(Review.project_id)
        ).all()
        if created is not None
    }
    age = Review.created_at
    whens = [(age > now - limit, literal(label)) for label, limit in AGE_BUCKETS if limit is not None]
    bucket = case(*whens, else_=literal(AGE_BUCKETS[-1][0]))
    pending = {
        (project_id, evaluator, label): n
        for project_id, evaluator, label, n in session.execute(
            select(Review.project_id, Review.evaluator_type, bucket, func.count())
            .where(_PENDING)
            .group_by(Review.project_id, Review.evaluator_type, bucket)
        ).all()
    }
    overdue = dict(
        session.execute(
            select(Review.project_id, func.count()).where(*sla.overdue_now(now)).group_by(Review.project_id)
        ).all()
    )
    decisions: dict[tuple[str, str, str], int] = {}
    evaluated: dict[tuple[str, str], int] = {}
    routed: dict[tuple[str, str], int] = {}
    times: dict[tuple[str, str], Histogram] = defaultdict(Histogram)
    agreement: dict[tuple[str, str, str], tuple[int, int]] = {}
    for sums in session.execute(
        select(
            ReviewRollup.project_id,
            ReviewRollup.evaluator_type,
            *(func.sum(getattr(ReviewRollup, name)).label(name) for name in _SUMMED),
        ).group_by(ReviewRollup.project_id, ReviewRollup.evaluator_type)
    ).all():
        project_id, evaluator = sums.project_id, sums.evaluator_type
        decisions[(project_id, evaluator, "human")] = int(sums.resolved_human or 0)
        decisions[(project_id, evaluator, "memory")] = int(sums.resolved_memory or 0)
        evaluated[(project_id, evaluator)] = int(sums.evaluated or 0)
        routed[(project_id, evaluator)] = int(sums.routed or 0)
        times[(project_id, evaluator)].total_seconds = float(sums.decision_seconds or 0.0)
        agreement[(project_id, evaluator, "judge_human")] = (
            int(sums.judge_compared or 0),
            int(sums.judge_agreed or 0),
        )
        agreement[(project_id, evaluator, "reviewer_reviewer")] = (
            int(sums.reviewer_pairs or 0),
            int(sums.reviewer_pairs_agreed or 0),
        )
    for project_id, evaluator, histogram_bucket, n in session.execute(
        select(
            DecisionTimeBucket.project_id,
            DecisionTimeBucket.evaluator_type,
            DecisionTimeBucket.bucket,
            func.sum(DecisionTimeBucket.n),
        )
        .where(DecisionTimeBucket.reviewer == "")  # the evaluators' histograms (casework.services.rollups)
        .group_by(DecisionTimeBucket.project_id, DecisionTimeBucket.evaluator_type, DecisionTimeBucket.bucket)
    ).all():
        times[(project_id, evaluator)].counts[histogram_bucket] += int(n)
    failures = session.execute(
        select(func.count())
        .select_from(WebhookAttempt)
        .where(
            or_(
                WebhookAttempt.status_code.is_(None),
                WebhookAttempt.status_code < 200,
                WebhookAttempt.status_code >= 300,
            )
        )
    ).scalar_one()
    return Snapshot(
        projects=projects,
        pending=pending,
        overdue=overdue,
        decisions=decisions,
        evaluated=evaluated,
        routed=routed,
        decision_times=dict(times),
        webhook_failures=int(failures),
        oldest_pending=oldest,
        thresholds_crossed=crossed,
        agreement=agreement,
    )
