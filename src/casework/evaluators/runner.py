"""Runs evaluators on interactions: judge, re-evaluate with {memories} when unsure, store, route to people.

Async on purpose: a judge call takes hundreds of milliseconds of waiting, and many run at once. Database work
goes through the small database thread pool in short transactions; judge calls never hold one open.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from anyio import CapacityLimiter, to_thread

from casework.config import Settings
from casework.db.engine import Database
from casework.db.group_commit import GroupCommit
from casework.db.models import Evaluation, Evaluator
from casework.db.search import TermFrequencies
from casework.evaluators.judge import Interaction, JudgeError, LLMJudge, Verdict
from casework.evaluators.precedent import precedent_verdict
from casework.memory.embeddings import Embedder, EmbeddingError, cosine
from casework.memory.retrieval import (
    DEFAULT_K,
    DEFAULT_MIN_SCORE,
    Candidate,
    Memory,
    best,
    cached_embeddings,
    format_memories,
    load_memories,
    store_embeddings,
    word_candidates,
)
from casework.services.auth import Principal
from casework.services.evaluations import EvaluationDraft, store_evaluations
from casework.services.evaluators import definition_of, find_evaluators, resolve_evaluators
from casework.services.memory_pass import plan_pass, resolve_by_memory
from casework.services.projects import get_project

logger = logging.getLogger("casework.evaluations")
EVALUATOR_CACHE_SECONDS = 5.0
T = TypeVar("T")


class EvaluationRunner:
    def __init__(
        self,
        database: Database,
        judge: LLMJudge,
        limiter: Callable[[], CapacityLimiter | None],
        embedder: Embedder | None = None,
    ) -> None:
        self.database = database
        self.judge = judge
        self.embedder = embedder
        self._limiter = limiter
        self.frequencies = TermFrequencies()
        self.writes = GroupCommit(database, limiter)
        self._evaluator_cache: dict[tuple[str, str, tuple[str, ...]], tuple[float, list[Evaluator]]] = {}

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        database: Database,
        *,
        limiter: Callable[[], CapacityLimiter | None],
        judge: LLMJudge | None = None,
    ) -> EvaluationRunner:
        """The judge defaults to the OpenAI-compatible endpoint of OPENAI_API_KEY and OPENAI_BASE_URL; with
        CASEWORK_EMBEDDINGS_MODEL, the same endpoint embeds."""
        judge = judge or LLMJudge.from_environment()
        embedder = (
            Embedder(judge.client, settings.embeddings_model)
            if settings.embeddings_model and judge.client
            else None
        )
        return cls(database, judge, limiter=limiter, embedder=embedder)

    async def db(self, function: Callable[..., T], /, *, write: bool, **kwargs: Any) -> T:
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
        resolved = await self.current_evaluators(principal, project_id, list(evaluators))
        drafts = await asyncio.gather(*(self.run_one(evaluator, interaction) for evaluator in resolved))
        return await self.writes.write(
            store_evaluations,
            principal=principal,
            project_id=project_id,
            drafts=drafts,
            run_id=run_id,
            trace_id=trace_id,
            span_id=span_id,
        )

    async def current_evaluators(
        self, principal: Principal, project_id: str, names: list[str]
    ) -> list[Evaluator]:
        """The current versions, from a cache of a few seconds: looking them up cost an eighth of the server's
        CPU per evaluation (bench/memory.py). Versions never change once made, so a cached one is a real
        version, and every evaluation records which; a new registration takes effect at once in the process
        that accepted it, and within EVALUATOR_CACHE_SECONDS everywhere else."""
        key = (principal.workspace_id, project_id, tuple(names))
        cached = self._evaluator_cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        # Reading is enough once the project has these evaluators; only a first use of a built-in writes.
        found = await self.db(
            find_evaluators, write=False, principal=principal, project_id=project_id, names=names
        )
        if found is None:
            found = await self.db(
                resolve_evaluators, write=True, principal=principal, project_id=project_id, names=names
            )
        if len(self._evaluator_cache) > 10_000:
            self._evaluator_cache.clear()
        self._evaluator_cache[key] = (time.monotonic() + EVALUATOR_CACHE_SECONDS, found)
        return found

    def evaluators_changed(self, project_id: str) -> None:
        for key in [k for k in self._evaluator_cache if k[1] == project_id]:
            self._evaluator_cache.pop(key, None)

    async def memories(self, evaluator: Evaluator, interaction: Interaction) -> list[Memory]:
        return await self.remember(
            project_id=evaluator.project_id,
            evaluator_type=evaluator.name,
            query=interaction.query,
            response=interaction.response,
        )

    async def remember(
        self, *, project_id: str, evaluator_type: str, query: str, response: str, k: int = DEFAULT_K
    ) -> list[Memory]:
        """The controls the judge gets in {memories}: full-text candidates scored by word overlap, and, with
        an embeddings model configured, by the mean of that and embedding similarity."""
        candidates = await self.db(
            word_candidates,
            write=False,
            project_id=project_id,
            evaluator_type=evaluator_type,
            query=query,
            response=response,
            frequencies=self.frequencies,
        )
        if not candidates:
            return []
        scores = {c.control_id: c.word_score for c in candidates}
        if self.embedder is not None:
            try:
                scores = await self._with_embeddings(candidates, f"{query}\n{response}")
            except EmbeddingError as exc:  # memory by words is still memory
                logger.warning("embeddings unavailable, ranking by words: %s", exc)
        ranked = best(scores, k=k, min_score=DEFAULT_MIN_SCORE)
        return await self.db(load_memories, write=False, ranked=ranked) if ranked else []

    async def _with_embeddings(self, candidates: list[Candidate], interaction: str) -> dict[str, float]:
        assert self.embedder is not None
        model = self.embedder.model
        ids = [c.control_id for c in candidates]
        vectors = await self.db(cached_embeddings, write=False, control_ids=ids, model=model)
        missing = [c for c in candidates if c.control_id not in vectors]
        embedded = await self.embedder.embed([interaction] + [c.text for c in missing])
        new = {c.control_id: vector for c, vector in zip(missing, embedded[1:], strict=True)}
        if new:
            await self.db(store_embeddings, write=True, vectors=new, model=model)
        vectors.update(new)
        return {
            c.control_id: 0.5 * c.word_score + 0.5 * max(0.0, cosine(embedded[0], vectors[c.control_id]))
            for c in candidates
        }

    async def search(
        self, *, principal: Principal, project_id: str, evaluator_type: str, query: str, response: str, k: int
    ) -> list[Memory]:
        """What {memories} would hold for this interaction (GET /api/v1/controls/search)."""
        await self.db(get_project, write=False, workspace_id=principal.workspace_id, project_id=project_id)
        return await self.remember(
            project_id=project_id, evaluator_type=evaluator_type, query=query, response=response, k=k
        )

    async def with_memories(self, evaluator: Evaluator, interaction: Interaction, used: list[str]) -> Verdict:
        """The verdict given the expert decisions on similar cases: the precedent judge's, or the LLM judge's
        re-evaluation with them in {memories}. The ids of the controls used are appended to ``used``."""
        memories = await self.memories(evaluator, interaction)
        used.extend(m.control.id for m in memories)
        definition = definition_of(evaluator)
        if definition.kind == "precedent":
            return precedent_verdict(definition, memories)
        return await self.judge.judge(definition, interaction, memories=format_memories(memories))

    async def run_one(self, evaluator: Evaluator, interaction: Interaction) -> EvaluationDraft:
        """Judge; when the verdict is ambiguous (or the evaluator always re-evaluates), judge again with the
        expert decisions on similar cases in {memories}."""
        definition = definition_of(evaluator)
        draft = EvaluationDraft(evaluator=evaluator, interaction=interaction)
        try:
            if definition.kind == "precedent":
                draft.first = draft.final = await self.with_memories(
                    evaluator, interaction, draft.memory_control_ids
                )
                return draft
            draft.first = draft.final = await self.judge.judge(definition, interaction)
            wanted = definition.reeval == "always" or (
                definition.reeval == "ambiguous" and draft.first.is_ambiguous(definition)
            )
            if wanted:
                draft.final = await self.with_memories(evaluator, interaction, draft.memory_control_ids)
                draft.reevaluated = True
        except JudgeError as exc:
            logger.warning("evaluator %s failed: %s", evaluator.name, exc)
            draft.error = str(exc)
            draft.final = None
        return draft

    # --- the memory pass: new controls settle the pending reviews they apply to (a job; see worker.py) ---

    async def memory_pass(self, control_ids: Sequence[str]) -> list[str]:
        """Re-evaluate the pending reviews most similar to these controls (at most 50 per project and
        evaluator) with their evaluator's re-evaluation, memories included; resolve those now confident."""
        plans = await self.db(plan_pass, write=False, control_ids=list(control_ids))
        decisions: list[tuple[str, Verdict, str]] = []
        gate = asyncio.Semaphore(8)

        async def settle(evaluator: Evaluator, review: Any, new_controls: list[str]) -> None:
            definition = definition_of(evaluator)
            interaction = Interaction(query=review.query, response=review.response, context=review.context)
            used: list[str] = []
            async with gate:
                try:
                    verdict = await self.with_memories(evaluator, interaction, used)
                except JudgeError as exc:
                    logger.warning("memory pass: judge failed on %s: %s", review.id, exc)
                    return
            if not verdict.is_ambiguous(definition):
                control_id = next(
                    (c for c in used if c in new_controls), used[0] if used else new_controls[0]
                )
                decisions.append((review.id, verdict, control_id))

        await asyncio.gather(
            *(settle(plan.evaluator, review, plan.control_ids) for plan in plans for review in plan.reviews)
        )
        if not decisions:
            return []
        return await self.db(resolve_by_memory, write=True, decisions=decisions)

    async def aclose(self) -> None:
        await self.judge.aclose()
