"""Golden sets, their items and versions, and regression runs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, model_validator

from casework.api.schemas.common import FreeForm, Label, Name, Public, Strict, Tags, Text, _in_utc
from casework.api.schemas.evaluators import EvaluatorFields

Thresholds = Annotated[
    dict[str, dict[str, float]],
    Field(
        description='Acceptance thresholds: metric to {operator: value}, e.g. {"kappa": {">=": 0.6}, '
        '"ambiguity_rate": {"<=": 0.2}}. Metrics: accuracy, kappa, ambiguity_rate, error_rate, latency_p50_ms, '
        "latency_p90_ms; operators: >=, <=, >, <."
    ),
]
When = Annotated[datetime | None, AfterValidator(_in_utc)]
MAX_ITEMS = 50_000


class GoldenItemCreate(Strict):
    query: Text
    response: Text
    context: Text | None = None
    expected: Label = Field(description="The human answer: one of the evaluator's options.")
    evaluator_type: Label | None = Field(
        default=None, description="The evaluator this item is for; none: every evaluator run on the set."
    )
    tags: Tags = Field(default_factory=list)
    metadata: FreeForm | None = None


class ReviewFilterCreate(Strict):
    evaluator_type: Label | None = None
    tags: Tags = Field(default_factory=list, description="Reviews whose decision carries all of these tags.")
    since: When = Field(default=None, description="Decided at or after (ISO 8601).")
    until: When = Field(default=None, description="Decided before (ISO 8601).")
    decided_by: Literal["people", "anyone"] = Field(
        default="people",
        description="people: only reviews a person resolved; anyone: memory's decisions too.",
    )
    agreement: Literal["any", "reached"] = Field(
        default="any",
        description="reached: only reviews that two or more reviewers decided independently and alike (overlap); "
        "one person's decisions, disagreements a lead settled and memory's decisions are left out.",
    )


class ControlFilterCreate(Strict):
    evaluator_type: Label = Field(description="The evaluator whose controls make the items.")
    tags: Tags = Field(default_factory=list, description="Controls that carry all of these tags.")
    include_retired: bool = Field(
        default=False,
        description="Retired controls too (superseded ones never: a newer one holds the answer).",
    )


class GoldenSetCreate(Strict):
    project_id: str
    name: Name
    from_reviews: ReviewFilterCreate | None = Field(
        default=None, description="Build the items from resolved reviews that match."
    )
    from_controls: ControlFilterCreate | None = Field(
        default=None,
        description="Build the items from controls: each control's interaction, its classification the answer.",
    )
    items: list[GoldenItemCreate] = Field(default_factory=list, max_length=MAX_ITEMS)
    thresholds: Thresholds = Field(default_factory=dict)


class GoldenVersionCreate(Strict):
    from_reviews: ReviewFilterCreate | None = None
    from_controls: ControlFilterCreate | None = None
    items: list[GoldenItemCreate] = Field(default_factory=list, max_length=MAX_ITEMS)
    mode: Literal["add", "replace"] = Field(
        default="add",
        description="add: the current items and these (a review already in the set is not added twice); "
        "replace: only these (a rebuild).",
    )


class GoldenSetUpdate(Strict):
    thresholds: Thresholds


class GoldenVersionPublic(BaseModel):
    version: int
    item_count: int
    source: dict[str, Any]
    created_at: datetime
    created_by: str


class GoldenSetPublic(BaseModel):
    id: str
    project_id: str
    name: str
    version: int = Field(description="The current version.")
    item_count: int = Field(description="Items in the current version.")
    thresholds: dict[str, dict[str, float]]
    runs: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    versions: list[GoldenVersionPublic] | None = None


class GoldenSetList(BaseModel):
    golden_sets: list[GoldenSetPublic]


class GoldenItemPublic(Public):
    id: str
    query: str
    response: str
    context: str | None
    expected: str
    evaluator_type: str | None
    source_review_id: str | None
    source_control_id: str | None
    tags: list[str]
    metadata: dict[str, Any] | None
    first_version: int
    last_version: int | None
    created_at: datetime


class GoldenItemList(BaseModel):
    version: int
    items: list[GoldenItemPublic]
    next_cursor: str | None = None


class RunEvaluatorCreate(Strict):
    """One evaluator of a run given as an object: a saved version with another model, or a draft definition
    that is not saved."""

    name: Label | None = Field(
        default=None, description='A saved evaluator: "name" (its current version) or "name:version".'
    )
    model: Label | None = Field(
        default=None, description="With name: run it with this model instead of its own (nothing is saved)."
    )
    definition: EvaluatorFields | None = Field(
        default=None,
        description="A draft: the fields of registering an evaluator (project_id aside), validated the same "
        "way, run as it is and never saved.",
    )

    @model_validator(mode="after")
    def _one_of(self) -> RunEvaluatorCreate:
        if (self.name is None) == (self.definition is None):
            raise ValueError("give name (a saved evaluator) or definition (a draft), one of them")
        if self.definition is not None and self.model is not None:
            raise ValueError("a draft names its model inside its definition")
        return self


class ModelPrice(Strict):
    prompt: float = Field(ge=0, lt=1e6, description="US dollars per million prompt tokens.")
    completion: float = Field(ge=0, lt=1e6, description="US dollars per million completion tokens.")


class GoldenRunCreate(Strict):
    evaluators: list[Label | RunEvaluatorCreate] = Field(
        min_length=1,
        max_length=20,
        description='Evaluator names, or "name:version" for an older version; or objects: {"name", "model"} '
        'for a saved version with another model, {"definition": {...}} for a draft not saved.',
    )
    memory: bool = Field(
        default=True, description="Re-evaluate unsure verdicts with {memories}, as the server does."
    )
    version: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="The set's version; the current one if left out."
    )
    prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        max_length=100,
        description="Model to US dollars per million tokens, for this run's cost estimate (over "
        "CASEWORK_MODEL_PRICES).",
    )
    requests_per_second: float | None = Field(
        default=None,
        gt=0,
        le=10_000,
        description="At most this many judge requests a second for this run, per worker process, evenly spaced "
        "(a re-evaluation is a second request); beside CASEWORK_GOLDEN_CONCURRENCY. None: no rate limit.",
    )


class ThresholdCheck(BaseModel):
    metric: str
    operator: str
    value: float
    actual: float | None
    passed: bool


class RunDiff(BaseModel):
    previous_run_id: str
    previous_version: int | None = Field(
        description="The evaluator version of the previous run (null: it was a draft)."
    )
    previous_memory: bool
    compared: int
    better: int = Field(description="Items wrong in the previous run and right in this one.")
    worse: int
    same: int
    better_items: list[str]
    worse_items: list[str]


class MemoryContribution(BaseModel):
    compared_run_id: str = Field(
        description="The run of the same evaluator version and set version, memory off."
    )
    accuracy: float | None
    kappa: float | None
    ambiguity_rate: float | None


class EvaluatorMetrics(BaseModel):
    evaluator_id: str
    name: str
    version: int | None
    model: str | None = None
    draft: bool = False
    model_override: bool = False
    items: int
    correct: int
    accuracy: float | None
    kappa: float | None = Field(description="Cohen's kappa against the human answers; null where undefined.")
    confusion: dict[str, dict[str, int]] = Field(description="Human answer to verdict to count.")
    ambiguous: int
    ambiguity_rate: float | None = Field(
        description="Share of verdicts that would have gone to people: the judge unsure, or the project's risk "
        "tier sending them there (as live verdicts are routed)."
    )
    errors: int
    error_rate: float | None
    prompt_tokens: int | None = Field(
        description="As the judge's replies reported them (their usage); null when a reply had none."
    )
    completion_tokens: int | None
    total_tokens: int | None
    usage_missing: int = Field(default=0, description="Verdicts whose judge reply reported no usage.")
    priced_model: str | None = Field(default=None, description="The model the cost estimate is priced at.")
    price: dict[str, float] | None = Field(
        default=None, description="Its price: US dollars per million prompt and completion tokens."
    )
    cost_usd: float | None = Field(
        default=None, description="Estimated cost in US dollars; null without usage or without a price."
    )
    latency_p50_ms: float | None
    latency_p90_ms: float | None
    thresholds: list[ThresholdCheck]
    passed: bool
    diff: RunDiff | None = Field(description="Against the previous run of this evaluator on this set.")
    memory_contribution: MemoryContribution | None = Field(
        default=None,
        description="With memory on: this run's figures minus those of the same version with memory off.",
    )


class RunEvaluator(BaseModel):
    evaluator_id: str = Field(
        description="The evaluator version run; for a draft or another model, this run's own id for it."
    )
    name: str
    version: int | None = Field(description="The saved version; null for a draft.")
    model: str | None = Field(default=None, description="The model it ran with; null: the server's default.")
    draft: bool = Field(default=False, description="A definition run without being saved.")
    model_override: bool = Field(default=False, description="A saved version run with another model.")
    source_evaluator_id: str | None = Field(
        default=None, description="With another model: the saved evaluator version it is."
    )


class RunUsage(BaseModel):
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    cost_usd: float | None


class GoldenRunPublic(BaseModel):
    id: str
    golden_set_id: str
    project_id: str
    version: int = Field(description="The golden set's version run.")
    memory: bool
    evaluators: list[RunEvaluator]
    status: Literal["running", "completed", "failed"]
    error: str | None = Field(default=None, description="Why a failed run failed.")
    total: int
    done: int
    progress: float
    passed: bool | None
    usage: RunUsage | None = Field(default=None, description="The evaluators' tokens and cost, summed.")
    prices: dict[str, Any] | None = Field(
        default=None, description='The prices the run was estimated with: {"default_model", "models"}.'
    )
    metrics: list[EvaluatorMetrics] | None
    created_at: datetime
    created_by: str
    completed_at: datetime | None


class GoldenRunList(BaseModel):
    runs: list[GoldenRunPublic]


class GoldenResultPublic(BaseModel):
    item_id: str
    evaluator_id: str
    query: str
    response: str
    expected: str
    classification: str | None
    correct: bool
    confidence: float | None
    ambiguous: bool = Field(description="It would have gone to people (unsure, or its risk tier sends it).")
    reevaluated: bool
    latency_ms: float
    prompt_tokens: int | None
    completion_tokens: int | None
    error: str | None


class GoldenResultList(BaseModel):
    results: list[GoldenResultPublic]
    next_cursor: str | None = None
