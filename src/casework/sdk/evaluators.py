"""Evaluator definitions for the SDK, as the tutorial writes them: ``Evaluators.custom(...)``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from casework.definitions import (
    BUILTINS,
    DEFAULT_PRECISION_TARGET,
    DEFAULT_THRESHOLD,
    EvaluatorDefinition,
    validate,
)


@dataclass(frozen=True)
class CustomEvaluator:
    """A custom evaluator, checked when made: a bad placeholder fails here, not on the server."""

    definition: EvaluatorDefinition

    @property
    def name(self) -> str:
        return self.definition.name

    def to_request(self, project_id: str) -> dict[str, Any]:
        d = self.definition
        return {
            "project_id": project_id,
            "name": d.name,
            "options": list(d.options),
            "kind": d.kind,
            "evaluation_system_prompt": d.evaluation_system_prompt,
            "evaluation_human_prompt": d.evaluation_human_prompt,
            "reeval_system_prompt": d.reeval_system_prompt,
            "reeval_human_prompt": d.reeval_human_prompt,
            "model": d.model,
            "ambiguity_threshold": "auto" if d.ambiguity_mode == "auto" else d.ambiguity_threshold,
            "target_agreement": d.target_agreement,
            "reeval": d.reeval,
            "memory_mode": d.memory_mode,
            "memory_precision_target": d.memory_precision_target,
            "spot_check_rate": d.spot_check_rate,
            "reviewers_required": d.reviewers_required,
            "ordered": d.ordered,
        }


class Evaluators:
    """Make evaluators to attach to a project. Built-ins are named by string (``"correctness"``)."""

    BUILTIN = tuple(sorted(BUILTINS))

    @staticmethod
    def custom(
        *,
        name: str,
        options: Sequence[str],
        evaluation_system_prompt: str,
        evaluation_human_prompt: str,
        reeval_system_prompt: str,
        reeval_human_prompt: str,
        model: str | None = None,
        ambiguity_threshold: float | Literal["auto"] = DEFAULT_THRESHOLD,
        target_agreement: float | None = None,
        reeval: Literal["ambiguous", "always", "never"] = "ambiguous",
        memory_mode: Literal["resolve", "suggest"] = "resolve",
        memory_precision_target: float = DEFAULT_PRECISION_TARGET,
        spot_check_rate: float | None = None,
        reviewers_required: int = 1,
        ordered: bool = False,
    ) -> CustomEvaluator:
        """A judge with your options and four prompts.

        Prompts may use ``{query}``, ``{response}``, ``{context}``, ``{evaluation_options}``; the re-evaluation
        prompts must use ``{memories}``, where expert decisions on similar cases go::

            policy = Evaluators.custom(
                name="policy-adherence", options=["compliant", "non_compliant"],
                evaluation_system_prompt="... Options: {evaluation_options}",
                evaluation_human_prompt="Customer message: {query}\\nAgent response: {response}",
                reeval_system_prompt="... Options: {evaluation_options}",
                reeval_human_prompt="... Context from prior expert reviews:\\n{memories}",
            )

        The trust settings are the REST API's: ``ambiguity_threshold="auto"`` with ``target_agreement``,
        ``memory_mode`` ("suggest": memory never decides alone) and ``memory_precision_target``,
        ``spot_check_rate``, ``reviewers_required`` (independent decisions per review) and ``ordered`` (the
        options are a scale, lowest first: agreement is ordinal).
        """
        definition = EvaluatorDefinition(
            name=name,
            options=tuple(options),
            evaluation_system_prompt=evaluation_system_prompt,
            evaluation_human_prompt=evaluation_human_prompt,
            reeval_system_prompt=reeval_system_prompt,
            reeval_human_prompt=reeval_human_prompt,
            model=model,
            ambiguity_threshold=DEFAULT_THRESHOLD if ambiguity_threshold == "auto" else ambiguity_threshold,
            ambiguity_mode="auto" if ambiguity_threshold == "auto" else "fixed",
            target_agreement=target_agreement,
            reeval=reeval,
            memory_mode=memory_mode,
            memory_precision_target=memory_precision_target,
            spot_check_rate=spot_check_rate,
            reviewers_required=reviewers_required,
            ordered=ordered,
        )
        validate(definition)
        return CustomEvaluator(definition)

    @staticmethod
    def precedent(
        *, name: str, options: Sequence[str], ambiguity_threshold: float = DEFAULT_THRESHOLD
    ) -> CustomEvaluator:
        """A judge that calls no model: it decides from similar expert decisions alone."""
        definition = EvaluatorDefinition(
            name=name,
            options=tuple(options),
            kind="precedent",
            reeval="never",
            ambiguity_threshold=ambiguity_threshold,
        )
        validate(definition)
        return CustomEvaluator(definition)
