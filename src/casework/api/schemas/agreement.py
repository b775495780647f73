"""Agreement between reviewers, and between the judge and people."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class Estimate(BaseModel):
    value: float | None = Field(
        description="The statistic; null when it is undefined (too few items, one class)."
    )
    interval: list[float] | None = Field(
        description="95% percentile bootstrap interval over items (fixed seed)."
    )
    items: int = Field(description="Items it was computed on.")


class AlphaEstimate(Estimate):
    level: Literal["nominal", "ordinal"] = Field(
        description="ordinal when the evaluator declares its options ordered (its options' order is the scale), "
        "nominal otherwise."
    )


class PairAgreement(BaseModel):
    reviewers: list[str]
    agreement: float = Field(description="Share of the items both rated on which they agreed.")
    cohen_kappa: Estimate


class InterReviewer(BaseModel):
    items: int = Field(description="Overlapped reviews with at least two decisions.")
    ratings: int
    categories: list[str]
    percent_agreement: Estimate = Field(
        description="Share of agreeing pairs of decisions per review, averaged."
    )
    fleiss_kappa: Estimate = Field(description="On the reviews with the most common number of decisions.")
    level: Literal["nominal", "ordinal"] = Field(description="The level Krippendorff's alpha is computed at.")
    krippendorff_alpha: AlphaEstimate
    pairs: list[PairAgreement] = Field(
        description="Cohen's kappa per pair of reviewers, on the reviews both decided."
    )


class ReviewerAgreement(BaseModel):
    reviewer: str
    decisions: int
    agreement_with_final: float | None = Field(description="Share of their decisions equal to the final one.")
    decided_reviews: int = Field(description="Their decisions on reviews that are resolved.")
    median_seconds_to_decide: float = Field(
        description="From the review's creation to their decision: the median of their decisions' times, each to "
        "the millisecond."
    )


class JudgeComparison(BaseModel):
    items: int
    accuracy: float | None
    cohen_kappa: float | None
    labels: list[str]
    confusion: dict[str, dict[str, int]] = Field(description="confusion[judge's verdict][person's decision].")


class JudgeAgreement(JudgeComparison):
    evaluator_id: str
    evaluator_type: str
    version: int
    with_memory: JudgeComparison = Field(
        description="The judge's re-evaluation with memory (its verdict after seeing similar controls) against "
        "the person's decision, on the reviews where it re-evaluated."
    )


class Freshness(BaseModel):
    as_of: datetime = Field(
        description="The time of the data the answer was computed from: it is stored, and refreshed in the "
        "background after the project's events (at most every 15 seconds)."
    )
    stale: bool = Field(description="The project has events after as_of: a refresh is on its way.")
    events_since: int = Field(description="How many of the project's events came after as_of.")


class AgreementReport(Freshness):
    project_id: str
    evaluator_type: str | None
    inter_reviewer: InterReviewer
    reviewers: list[ReviewerAgreement]
    judge_vs_human: list[JudgeAgreement] = Field(
        description="Per evaluator version: the judge's first verdict (before any re-evaluation with memory; on "
        "the review it queued, or the spot check of its automatic decision) against the person's decision."
    )


class InterReviewerPoint(BaseModel):
    start: str = Field(description="The bucket's first day (UTC), by the reviews' creation.")
    items: int = Field(description="Overlapped reviews created in the bucket.")
    ratings: int
    krippendorff_alpha: AlphaEstimate


class JudgeEstimate(BaseModel):
    accuracy: float | None
    cohen_kappa: Estimate


class JudgePoint(BaseModel):
    start: str
    items: int = Field(
        description="Reviews a person resolved on the judge's verdicts, created in the bucket."
    )
    controls: int = Field(description="Controls the evaluator had by the bucket's end (every one ever made).")
    first: JudgeEstimate = Field(description="The judge's first verdict against the person's decision.")
    with_memory: JudgeEstimate = Field(
        description="Its re-evaluation with memory against the person's decision, where it re-evaluated."
    )


class JudgeSeries(BaseModel):
    evaluator_id: str
    evaluator_type: str
    version: int
    points: list[JudgePoint]


class AgreementTrend(Freshness):
    project_id: str
    evaluator_type: str | None
    bucket: Literal["day", "week", "month"]
    level: Literal["nominal", "ordinal"]
    inter_reviewer: list[InterReviewerPoint] = Field(
        description="Buckets with at least one overlapped review."
    )
    judge_vs_human: list[JudgeSeries] = Field(description="Per evaluator version.")
    judge_vs_human_all: list[JudgePoint] = Field(description="Every version in scope, pooled.")
