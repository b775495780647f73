"""Runs evaluators on interactions: judge, re-evaluate with {memories} when unsure, store, route to people.

Async on purpose: a judge call takes hundreds of milliseconds of waiting, and many run at once. Database work
goes through the small database thread pool in short transactions; judge calls never hold one open.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from anyio import CapacityLimiter, to_thread

from casework.db.engine import Database
from casework.db.models import Evaluation, Evaluator
from casework.evaluators.judge import Interaction, JudgeError, LLMJudge
from casework.evaluators.precedent import precedent_verdict
from casework.memory.retrieval import Memory, format_memories, retrieve
from casework.services.auth import Principal
from casework.services.evaluations import EvaluationDraft, store_evaluations
from casework.services.evaluators import definition_of, resolve_evaluators

logger = logging.getLogger("casework.evaluations")
T = TypeVar("T")


class EvaluationRunner:
    def __init__(
        self, database: Database, judge: LLMJudge, limiter: Callable[[], CapacityLimiter | None]
    ) -> None:
        self.database = database
        self.judge = judge
        self._limiter = limiter

    async def _db(self, function: Callable[..., T], /, *, write: bool, **kwargs: Any) -> T:
        def work() -> T:
            with self.database.transaction(write=write) as session:
                return function(session, **kwargs)

        return await to_thread.run_sync(work, limiter=self._limiter())

    async def evaluate(
        self,
        *,
        principal: Principal,
        project_id: str,
        evaluators: Sequence[str],
        interaction: Interaction,
        run_id: str | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
    ) -> list[Evaluation]:
        """Every named evaluator on one interaction, concurrently; stored in one transaction."""
        principal.require_write()
        resolved = await self._db(
            resolve_evaluators, write=True, principal=principal, project_id=project_id, names=list(evaluators)
        )
        drafts = await asyncio.gather(*(self.run_one(evaluator, interaction) for evaluator in resolved))
        return await self._db(
            store_evaluations,
            write=True,
            principal=principal,
            project_id=project_id,
            drafts=drafts,
            run_id=run_id,
            trace_id=trace_id,
            span_id=span_id,
        )

    async def memories(self, evaluator: Evaluator, interaction: Interaction) -> list[Memory]:
        return await self._db(
            retrieve,
            write=False,
            project_id=evaluator.project_id,
            evaluator_type=evaluator.name,
            query=interaction.query,
            response=interaction.response,
        )

    async def run_one(self, evaluator: Evaluator, interaction: Interaction) -> EvaluationDraft:
        """Judge; when the verdict is ambiguous (or the evaluator always re-evaluates), judge again with the
        expert decisions on similar cases in {memories}."""
        definition = definition_of(evaluator)
        draft = EvaluationDraft(evaluator=evaluator, interaction=interaction)
        try:
            if definition.kind == "precedent":
                memories = await self.memories(evaluator, interaction)
                draft.first = draft.final = precedent_verdict(definition, memories)
                draft.memory_control_ids = [m.control.id for m in memories]
                return draft
            draft.first = draft.final = await self.judge.judge(definition, interaction)
            wanted = definition.reeval == "always" or (
                definition.reeval == "ambiguous" and draft.first.is_ambiguous(definition)
            )
            if wanted:
                memories = await self.memories(evaluator, interaction)
                draft.memory_control_ids = [m.control.id for m in memories]
                draft.final = await self.judge.judge(
                    definition, interaction, memories=format_memories(memories)
                )
                draft.reevaluated = True
        except JudgeError as exc:
            logger.warning("evaluator %s failed: %s", evaluator.name, exc)
            draft.error = str(exc)
            draft.final = None
        return draft
