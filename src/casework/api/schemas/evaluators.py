"""Evaluators, evaluations and memory search."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from casework.api.schemas.common import Label, Public, Strict, Text
from casework.api.schemas.controls import ControlPublic
from casework.evaluators.definitions import DEFAULT_THRESHOLD


class EvaluatorCreate(Strict):
    project_id: str
    name: Label
    options: list[Label] = Field(min_length=1, max_length=50)
    kind: Literal["llm", "precedent"] = "llm"
    evaluation_system_prompt: Text = ""
    evaluation_human_prompt: Text = ""
    reeval_system_prompt: Text = ""
    reeval_human_prompt: Text = ""
    model: Label | None = None
    ambiguity_threshold: float = Field(default=DEFAULT_THRESHOLD, ge=0, le=1)
    reeval: Literal["ambiguous", "always", "never"] = "ambiguous"


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
    reeval: str
    created_at: datetime


class EvaluatorList(BaseModel):
    evaluators: list[EvaluatorPublic]


class EvaluationCreate(Strict):
    project_id: str
    run_id: str | None = None
    evaluators: list[Label] = Field(min_length=1, max_length=20)
    query: Text
    response: Text
    context: Text | None = None
    trace_id: str | None = Field(default=None, max_length=64)
    span_id: str | None = Field(default=None, max_length=64)


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


class EvaluationList(BaseModel):
    evaluations: list[EvaluationPublic]
    next_cursor: str | None = None


class ScoredControl(BaseModel):
    score: float
    control: ControlPublic


class ControlSearchResult(BaseModel):
    controls: list[ScoredControl]
    memories: str = Field(description="The {memories} text these controls make, as the judge would read it.")
