"""Risk tiers: the policy document (tiers and ordered rules), dry runs and the report."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from casework.api.schemas.common import FreeForm, Label, Strict
from casework.api.schemas.sla import SlaOverride

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
Rate = Annotated[float, Field(ge=0, le=1)]


class TierIn(Strict):
    name: Slug = Field(description="Lowercase letters, digits, - and _ (for example high, standard, low).")
    review: Literal["ambiguous", "ambiguous_or_classification", "always"] = Field(
        default="ambiguous",
        description="Which verdicts a person decides: the ambiguous ones (as without tiers); those and every "
        "verdict of the listed classifications; or every verdict.",
    )
    classifications: list[Label] = Field(default_factory=list, max_length=50)
    spot_check_rate: Rate | None = Field(
        default=None, description="Share of confident judge verdicts a person checks (None: the evaluator's)."
    )
    memory_spot_check_rate: Rate | None = Field(
        default=None, description="Share of memory's resolutions a person checks (None: the evaluator's)."
    )
    memory_may_decide: bool = Field(
        default=True, description="False: memory only suggests in this tier; a person always decides."
    )
    priority: int = Field(
        default=0, ge=-100, le=100, description="Queue priority of its reviews (higher first)."
    )
    reviewers_required: Annotated[int, Field(ge=1, le=20)] | None = Field(
        default=None,
        description="Independent human decisions each of its reviews needs (blind, as an evaluator's "
        "reviewers_required; None: the evaluator's). A review keeps the number it was queued with.",
    )
    sla: SlaOverride | None = Field(
        default=None,
        description="Its reviews' SLA: the fields it sets beat the evaluator's override, which beats the "
        "project's policy (None: theirs). A review keeps the due time it was queued with.",
    )


class ConditionIn(Strict):
    field: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="evaluator, classification, confidence, ambiguous, run (the run's name, as casework.init "
        "gives it), run_id, control_tags (the tags of the controls memory retrieved), or metadata.<key> (the "
        "span's attributes, or the metadata sent with POST /api/v1/evaluations)."
    )
    op: Literal["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains", "exists"]
    value: Any = None


class RuleIn(Strict):
    tier: Slug
    when: list[ConditionIn] = Field(
        default_factory=list, max_length=20, description="All must hold (none: always)."
    )
    description: Annotated[str, StringConstraints(max_length=300)] | None = None


class RiskPolicyIn(Strict):
    tiers: list[TierIn] = Field(min_length=1, max_length=20)
    rules: list[RuleIn] = Field(
        default_factory=list, max_length=200, description="In order: the first match wins."
    )
    default_tier: Slug


class RiskPolicyPublic(BaseModel):
    project_id: str
    version: int = Field(
        description="0: no tiers yet (every ambiguous verdict goes to people, as without tiers)."
    )
    tiers: list[TierIn]
    rules: list[RuleIn]
    default_tier: str | None
    updated_at: datetime | None
    updated_by: str | None


class InteractionFacts(Strict):
    evaluator: Label
    classification: Label | None = None
    confidence: Annotated[float, Field(ge=0, le=1)] | None = None
    ambiguous: bool = False
    metadata: FreeForm | None = None
    control_tags: list[Label] = Field(default_factory=list, max_length=50)
    run: Label | None = Field(
        default=None, description="The run's name (looked up from run_id if not given)."
    )
    run_id: Label | None = None


class DryRunIn(Strict):
    project_id: str
    interaction: InteractionFacts
    policy: RiskPolicyIn | None = Field(default=None, description="A policy to try (default: the saved one).")


class SlaPolicy(BaseModel):
    target_hours: float
    warning_at: float
    escalation_contact: str | None
    pause_when_waiting: bool


class DryRunPublic(BaseModel):
    tier: str
    rule: int | None = Field(description="The index of the rule that matched; None: the default tier.")
    why: str
    needs_person: bool
    reason: str | None
    spot_check_rate: float = Field(
        description="When no person must decide: the chance its automatic decision is spot-checked (the tier's "
        "rate, else the evaluator's, else CASEWORK_SPOT_CHECK_RATE); 0 when a person decides."
    )
    priority: int
    reviewers_required: int = Field(
        description="Independent decisions its review would need: the tier's, else the evaluator's."
    )
    sla: SlaPolicy = Field(
        description="Its review's SLA: each field the tier's, else the evaluator's override, else the project's."
    )


class ImpactIn(Strict):
    project_id: str
    policy: RiskPolicyIn | None = Field(default=None, description="A policy to try (default: the saved one).")
    days: int = Field(default=30, ge=1, le=365)


class TierImpact(BaseModel):
    tier: str
    evaluations: int
    to_people: int = Field(description="A person must decide: ambiguous, or the tier's rule.")
    spot_checks: float = Field(
        description="Of the rest, how many spot checks would be expected (the sum of their spot-check rates)."
    )
    share_to_people: float | None = Field(description="(to_people + spot_checks) / evaluations.")
    share_spot_checked: float | None = Field(description="spot_checks / evaluations: the spot checks' part.")


class ImpactPublic(BaseModel):
    project_id: str
    days: int
    evaluations: int = Field(
        description="The evaluations looked at (the newest 20,000 of those days at most)."
    )
    to_people_now: int = Field(description="How many of them went to people to decide.")
    spot_checks_now: int = Field(description="How many of them were sent to a spot check.")
    to_people: int = Field(description="How many a person would have had to decide, under the policy.")
    spot_checks: float = Field(description="How many spot checks of the rest would be expected.")
    share_to_people: float | None = Field(
        description="(to_people + spot_checks) / evaluations: the share people would see."
    )
    share_spot_checked: float | None
    tiers: list[TierImpact]


class TierReport(BaseModel):
    tier: str | None
    evaluations: int
    to_people: int
    share_to_people: float | None
    spot_checks: int
    spot_checks_wrong: int
    estimated_error_rate: float | None = Field(
        description="Among what nobody reviewed: the share of spot-checked automatic decisions a person changed."
    )
    error_rate_interval: list[float] | None = Field(description="Its 95% Clopper-Pearson interval.")


class TierSettings(BaseModel):
    tier: str
    reviewers_required: int | None = Field(description="The tier's own (None: each evaluator's).")
    sla: SlaPolicy = Field(
        description="The tier's SLA over the project's policy (an evaluator's override still applies to the "
        "fields the tier does not set)."
    )


class RiskReportPublic(BaseModel):
    project_id: str
    days: int
    tiers: list[TierReport]
    settings: list[TierSettings] = Field(
        description="Each tier of the saved policy: what its new reviews get now."
    )
