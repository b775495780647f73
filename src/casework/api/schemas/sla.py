"""SLA policies, the SLA report and trends."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from casework.api.schemas.common import Label, Reviewer, Strict

TargetHours = Field(gt=0, le=24 * 365, description="Hours from queued to decision.")
WarningAt = Field(gt=0, lt=1, description="The share of the target at which a review is due soon.")


class SlaOverride(Strict):
    """An evaluator's changes to the project's policy: the fields it sets replace the project's."""

    target_hours: float | None = Field(default=None, gt=0, le=24 * 365)
    warning_at: float | None = Field(default=None, gt=0, lt=1)
    escalation_contact: Reviewer | None = None
    pause_when_waiting: bool | None = None


class QueueThresholds(Strict):
    pending_count: int | None = Field(
        default=None,
        ge=1,
        le=100_000_000,
        description="Alert when this many reviews are pending (None: no alert).",
    )
    oldest_pending_hours: float | None = Field(
        default=None, gt=0, le=24 * 365, description="Alert when the oldest pending review is this old."
    )


class SlaPolicyUpdate(Strict):
    target_hours: float = TargetHours
    warning_at: float = Field(default=0.75, gt=0, lt=1)
    escalation_contact: Reviewer | None = Field(
        default=None, description="Who is told when a review is overdue (named in the alert events)."
    )
    pause_when_waiting: bool = Field(
        default=False,
        description="Pause a review's clock while it waits on someone outside (an open ticket in Jira, "
        "ServiceNow, Zendesk or Azure DevOps).",
    )
    evaluators: dict[Label, SlaOverride] = Field(default_factory=dict, max_length=200)
    queue_thresholds: QueueThresholds = Field(default_factory=QueueThresholds)


class QueueThresholdsPublic(BaseModel):
    pending_count: int | None
    oldest_pending_hours: float | None
    clear_below_share: float = Field(description="An alert clears below this share of its threshold.")


class QueueAlerts(BaseModel):
    pending_count_since: datetime | None
    oldest_pending_since: datetime | None


class SlaPolicyPublic(BaseModel):
    project_id: str
    target_hours: float = Field(description="The project's default target (also its review_target_hours).")
    warning_at: float
    escalation_contact: str | None
    pause_when_waiting: bool
    evaluators: dict[str, SlaOverride]
    queue_thresholds: QueueThresholdsPublic
    queue_alerts: QueueAlerts = Field(
        description="Which queue-health thresholds are crossed now, since when."
    )


class DecisionTimes(BaseModel):
    decided: int
    breached: int
    breach_rate: float | None
    p50_seconds: float | None
    p90_seconds: float | None


class OverdueReview(BaseModel):
    id: str
    evaluator_type: str
    created_at: datetime
    due_at: datetime
    overdue_seconds: float


class SlaReport(BaseModel):
    project_id: str
    since: date
    until: date
    overall: DecisionTimes
    by_evaluator: dict[str, DecisionTimes]
    by_reviewer: dict[str, DecisionTimes]
    overdue_count: int
    overdue: list[OverdueReview] = Field(description="The longest overdue first, at most 100.")
    oldest_pending: datetime | None
    pending: int


class EvaluatorAmbiguity(BaseModel):
    interactions_evaluated: int
    routed_to_people: int
    ambiguity_rate: float | None


class TrendBucket(BaseModel):
    start: date
    interactions_evaluated: int
    routed_to_people: int
    ambiguity_rate: float | None
    reviews_created: int
    resolved_by_people: int
    resolved_by_memory: int
    time_to_decision_p50_seconds: float | None
    time_to_decision_p90_seconds: float | None
    time_to_decision_p99_seconds: float | None
    breached: int
    breach_rate: float | None
    controls_created: int
    judge_human_compared: int = Field(
        description="Decisions by people in the bucket, each against the judge."
    )
    judge_human_agreement: float | None = Field(
        description="Share of those where the judge's verdict (the one the review was queued with) was the "
        "person's decision."
    )
    reviewer_pairs: int = Field(
        description="Pairs of independent decisions on the overlapped reviews decided in the bucket."
    )
    inter_reviewer_agreement: float | None = Field(
        description="Share of those pairs that agreed (pairwise percent agreement, pooled over the bucket's "
        "reviews; kappa and alpha: GET /api/v1/projects/{id}/agreement)."
    )
    by_evaluator: dict[str, EvaluatorAmbiguity] = Field(
        description="Per evaluator that judged anything in the range: its interactions and the share sent to "
        "people (in CSV: columns ambiguity_rate:<evaluator>)."
    )


class Trends(BaseModel):
    project_id: str
    bucket: str
    evaluator_type: str | None
    buckets: list[TrendBucket]
