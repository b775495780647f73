"""Evaluators, evaluations and memory search."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from casework.api.schemas.common import FreeForm, Label, Public, Strict, Text
from casework.api.schemas.controls import ControlPublic
from casework.definitions import DEFAULT_THRESHOLD, MAX_REVIEWERS

Probability = Annotated[float, Field(ge=0, le=1)]
Threshold = Annotated[
    Annotated[float, Field(ge=0, le=1)] | Literal["auto"],
    Field(
        description='A confidence in [0, 1] under which a verdict is ambiguous, or "auto": learnt from '
        "spot-checked verdicts so that confident ones meet target_agreement (this value until evidence suffices)."
    ),
]


class MemoryFields(Strict):
    """How memory decides for an evaluator; every field is optional on PATCH."""

    memory_mode: Literal["resolve", "suggest"] | None = Field(
        default=None,
        description="resolve: decide alone where the evidence supports memory_precision_target, suggest elsewhere; "
        "suggest: never decide alone.",
    )
    memory_precision_target: Annotated[float, Field(gt=0.5, lt=1)] | None = Field(
        default=None,
        description="How often memory must be right, at least (lower 95% bound), to decide alone.",
    )
    memory_k: Annotated[int, Field(ge=1, le=50)] | None = None
    memory_min_score: Probability | None = None
    memory_candidates: Annotated[int, Field(ge=10, le=100_000)] | None = None
    spot_check_rate: Probability | None = None
    judge_spot_check_rate: Probability | None = None
    target_agreement: Annotated[float, Field(gt=0.5, lt=1)] | None = None
    reviewers_required: Annotated[int, Field(ge=1, le=MAX_REVIEWERS)] | None = Field(
        default=None,
        description="Independent human decisions each review needs (default 1). With more than one, reviewers "
        "decide blind; when they agree the review resolves with one control, else a lead adjudicates.",
    )
    ordered: bool | None = Field(
        default=None,
        description="The options are ordered as listed, lowest first (a scale): agreement between reviewers is "
        "then Krippendorff's ordinal alpha instead of nominal. Default false.",
    )


class EvaluatorFields(MemoryFields):
    """An evaluator's definition: what registering one takes, beside its project (a golden-set run's draft)."""

    name: Label
    options: list[Label] = Field(min_length=1, max_length=50)
    kind: Literal["llm", "precedent"] = "llm"
    evaluation_system_prompt: Text = ""
    evaluation_human_prompt: Text = ""
    reeval_system_prompt: Text = ""
    reeval_human_prompt: Text = ""
    model: Label | None = None
    ambiguity_threshold: Threshold = DEFAULT_THRESHOLD
    reeval: Literal["ambiguous", "always", "never"] = "ambiguous"


class EvaluatorCreate(EvaluatorFields):
    project_id: str


class EvaluatorUpdate(MemoryFields):
    options: list[Label] | None = Field(default=None, min_length=1, max_length=50)
    evaluation_system_prompt: Text | None = None
    evaluation_human_prompt: Text | None = None
    reeval_system_prompt: Text | None = None
    reeval_human_prompt: Text | None = None
    model: Label | None = None
    ambiguity_threshold: Threshold | None = None
    reeval: Literal["ambiguous", "always", "never"] | None = None


def definition_fields(body: MemoryFields) -> dict[str, Any]:
    """The evaluator definition's fields from a create or update body (what was sent, "auto" unfolded)."""
    fields = body.model_dump(exclude_none=True, exclude={"project_id"})
    if fields.get("ambiguity_threshold") == "auto":
        fields["ambiguity_mode"] = "auto"
        del fields["ambiguity_threshold"]
    elif "ambiguity_threshold" in fields:
        fields["ambiguity_mode"] = "fixed"
    return fields


def update_body(evaluator: Any) -> dict[str, Any]:
    """The update body that states an evaluator version's definition as it is (what the settings page offers to
    edit): :func:`definition_fields` of it changes nothing."""
    own = [name for name in EvaluatorUpdate.model_fields if name not in MemoryFields.model_fields]
    body = {name: getattr(evaluator, name) for name in [*own, *MemoryFields.model_fields]}  # options first
    body["ambiguity_threshold"] = (
        "auto" if evaluator.ambiguity_mode == "auto" else evaluator.ambiguity_threshold
    )
    return {name: value for name, value in body.items() if value is not None}


class EvaluatorPublic(Public):
    id: str
    project_id: str
    name: str
    version: int
    kind: str
    builtin: bool
    options: list[str]
    evaluation_system_prompt: str
    evaluation_human_prompt: str
    reeval_system_prompt: str
    reeval_human_prompt: str
    model: str | None
    ambiguity_threshold: float
    ambiguity_mode: Literal["fixed", "auto"]
    target_agreement: float | None
    reeval: str
    memory_mode: Literal["resolve", "suggest"]
    memory_precision_target: float
    memory_k: int
    memory_min_score: float
    memory_candidates: int
    spot_check_rate: float | None
    judge_spot_check_rate: float | None
    restored_from: int | None = Field(
        default=None, description="For a rollback: the version whose definition this one made current again."
    )
    reviewers_required: int = Field(description="Independent human decisions each review needs.")
    ordered: bool = Field(default=False, description="The options are ordered as listed, lowest first.")
    created_at: datetime


class EvaluatorList(BaseModel):
    evaluators: list[EvaluatorPublic]


class EvaluatorRollback(Strict):
    version: int = Field(ge=1, le=2**31 - 1, description="The version to make current again.")


class EvaluationCreate(Strict):
    project_id: str
    run_id: str | None = None
    evaluators: list[Label] = Field(min_length=1, max_length=20)
    query: Text
    response: Text
    context: Text | None = None
    trace_id: str | None = Field(default=None, max_length=64)
    span_id: str | None = Field(default=None, max_length=64)
    metadata: FreeForm | None = Field(
        default=None,
        description="What risk-tier rules may read as metadata.<key> (for example customer.segment, amount).",
    )


class EvaluationPublic(Public):
    id: str
    project_id: str
    run_id: str | None
    evaluator_id: str
    evaluator_type: str
    evaluator_version: int
    query: str
    response: str
    context: str | None
    trace_id: str | None
    span_id: str | None
    status: Literal["completed", "error"]
    classification: str | None
    confidence: float | None
    explanation: str | None
    ambiguous: bool
    reevaluated: bool
    initial_classification: str | None
    initial_confidence: float | None
    initial_explanation: str | None
    memory_control_ids: list[str]
    review_id: str | None
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float | None
    error: str | None
    created_at: datetime
    superseded_at: datetime | None = Field(
        default=None, description="Set when a control it was decided with changed, or a spot check disagreed."
    )
    superseded_reason: str | None = None
    tier: str | None = Field(default=None, description="The risk tier it was routed under.")


class EvaluationList(BaseModel):
    evaluations: list[EvaluationPublic]
    next_cursor: str | None = None


class ScoredControl(BaseModel):
    score: float
    control: ControlPublic


class ControlSearchResult(BaseModel):
    controls: list[ScoredControl]
    memories: str = Field(description="The {memories} text these controls make, as the judge would read it.")


class ClassEvidencePublic(BaseModel):
    classification: str
    samples: int = Field(
        description="Past decisions where the automatic decision would have been this class."
    )
    decides_alone: bool
    threshold: float | None = Field(description="The confidence at and above which it decides alone.")
    raw_threshold: float | None
    decided_above: int
    precision: float | None
    interval: list[float] | None = Field(description="95% Clopper-Pearson interval of the precision.")


class CurvePointPublic(BaseModel):
    threshold: float
    coverage: float
    precision: float
    lower: float
    upper: float


class ReliabilityBin(BaseModel):
    score_from: float
    score_to: float
    decisions: int
    right: float = Field(description="Share right among the past decisions with a raw score in this bin.")
    confidence: float = Field(description="The mean calibrated confidence shown for those decisions.")


class EvidencePublic(BaseModel):
    subject: Literal["memory", "judge"]
    mode: str
    target: float
    samples: int
    coverage: float = Field(description="Share of the past decisions that would have been decided alone.")
    classes: list[ClassEvidencePublic]
    curve: list[CurvePointPublic] = Field(description="Precision against coverage as the threshold falls.")
    reliability: list[ReliabilityBin] = Field(
        description="A reliability diagram of the evidence, per tenth of the raw score."
    )
    summary: str


class MemoryEvidencePublic(BaseModel):
    evaluator_id: str
    name: str
    version: int
    memory: EvidencePublic
    judge: EvidencePublic | None = Field(
        description="The judge's first verdicts against people (LLM evaluators)."
    )
