"""Runs evaluators on interactions and lets memory decide, suggest or stay silent.

- ``run_one``: the judge's verdict; when it is unsure, its re-evaluation with ``{memories}``; for the precedent
  evaluator, memory's own vote. What is still ambiguous goes to people, with memory's suggestion.
- ``memory_decision``: what memory concludes about an interaction, and whether the evidence lets it decide
  alone (casework.memory.calibration). The memory pass and replay use it the same way.
- ``memory_pass``: after a new control (or a re-opened review), pending look-alikes are decided again.
- ``replay``: a human decision, replayed as if memory had made it from the controls that existed before it:
  the evidence memory is judged by.

Async on purpose: a judge call takes hundreds of milliseconds of waiting, and many run at once. Database work
goes through the small database thread pool in short transactions; judge calls never hold one open.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from anyio import CapacityLimiter, to_thread

from casework.config import Settings
from casework.db.engine import Database
from casework.db.group_commit import GroupCommit
from casework.db.models import Evaluation, Evaluator
from casework.definitions import AMBIGUOUS, EvaluatorDefinition, Interaction, Verdict, spot_check_rate_of
from casework.evaluators.judge import JudgeError, LLMJudge
from casework.evaluators.precedent import precedent_verdict
from casework.memory.calibration import Calibration, calibrate
from casework.memory.embeddings import Embedder, EmbeddingError, cosine
from casework.memory.retrieval import (
    Memory,
    MemorySettings,
    Retrieved,
    best,
    cached_embeddings,
    format_memories,
    load_memories,
    retrieve_scored,
    store_embeddings,
)
from casework.services import evidence
from casework.services.auth import Principal
from casework.services.evaluations import EvaluationDraft, store_evaluations
from casework.services.evaluators import definition_of, find_evaluators, resolve_evaluators
from casework.services.memory_pass import PassPlan, definition_for, plan_for_controls, plan_for_reviews
from casework.services.projects import get_project
from casework.services.reviews import MemoryDecision, forget_suggestion, settle_by_memory

logger = logging.getLogger("casework.evaluations")
EVALUATOR_CACHE_SECONDS = 5.0
CALIBRATION_CACHE_SECONDS = 2.0
MEMORY_PASS_CONCURRENCY = 8
T = TypeVar("T")


def memory_settings(definition: EvaluatorDefinition) -> MemorySettings:
    return MemorySettings(
        k=definition.memory_k, min_score=definition.memory_min_score, candidates=definition.memory_candidates
    )


@dataclass(frozen=True)
class PassOutcome:
    resolved: int
    suggested: int
    skipped: int


class EvaluationRunner:
    def __init__(
        self,
        database: Database,
        judge: LLMJudge,
        limiter: Callable[[], CapacityLimiter | None],
        embedder: Embedder | None = None,
        evaluation_event_sample: float = 1.0,
        spot_check_rate: float = 0.0,
    ) -> None:
        self.database = database
        self.evaluation_event_sample = evaluation_event_sample
        self.spot_check_rate = spot_check_rate
        self.judge = judge
        self.embedder = embedder
        self._limiter = limiter
        self.writes = GroupCommit(database, limiter)
        self._evaluator_cache: dict[tuple[str, str, tuple[str, ...]], tuple[float, list[Evaluator]]] = {}
        self._calibrations: dict[tuple[str, str, str, str], tuple[float, Calibration]] = {}
        self._evidence_generation: dict[tuple[str, str], int] = {}

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
        return cls(
            database,
            judge,
            limiter=limiter,
            embedder=embedder,
            evaluation_event_sample=settings.evaluation_event_sample,
            spot_check_rate=settings.spot_check_rate,
        )

    async def db(self, function: Callable[..., T], /, *, write: bool, **kwargs: Any) -> T:
        def work() -> T:
            with self.database.transaction(write=write) as session:
                return function(session, **kwargs)

        return await to_thread.run_sync(work, limiter=self._limiter())

    # --- evaluators ------------------------------------------------------------------------------------------------

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
        metadata: dict[str, Any] | None = None,
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
            metadata=metadata,
            event_sample=self.evaluation_event_sample,
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

    # --- retrieval -------------------------------------------------------------------------------------------------

    async def remember(
        self,
        *,
        project_id: str,
        evaluator_type: str,
        query: str,
        response: str,
        settings: MemorySettings,
        before: datetime | None = None,
        exclude: Collection[str] = (),
    ) -> list[Memory]:
        """The controls the judge gets in {memories}: exact word-similarity retrieval, and, with an embeddings
        model configured, every control sharing a word (up to the candidate budget) scored by the mean of word
        and embedding similarity (a control can be close in meaning with few words in common)."""
        wide = MemorySettings(k=settings.candidates, min_score=0.0, candidates=settings.candidates)
        found: Retrieved = await self.db(
            retrieve_scored,
            write=False,
            project_id=project_id,
            evaluator_type=evaluator_type,
            query=query,
            response=response,
            settings=wide if self.embedder is not None else settings,
            before=before,
            exclude=exclude,
            texts=self.embedder is not None,
        )
        ranked = found.ranked
        if self.embedder is not None and found.scores:
            try:
                scores = await self._with_embeddings(found, f"{query}\n{response}")
                ranked = best(scores, k=settings.k, min_score=settings.min_score)
            except EmbeddingError as exc:  # memory by words is still memory
                logger.warning("embeddings unavailable, ranking by words: %s", exc)
        return await self.db(load_memories, write=False, ranked=ranked) if ranked else []

    async def _with_embeddings(self, found: Retrieved, interaction: str) -> dict[str, float]:
        assert self.embedder is not None
        model = self.embedder.model
        ids = list(found.scores)
        vectors = await self.db(cached_embeddings, write=False, control_ids=ids, model=model)
        missing = [control_id for control_id in ids if control_id not in vectors]
        embedded = await self.embedder.embed([interaction] + [found.texts[c] for c in missing])
        new = dict(zip(missing, embedded[1:], strict=True))
        if new:
            await self.db(store_embeddings, write=True, vectors=new, model=model)
        vectors.update(new)
        return {
            control_id: round(0.5 * score + 0.5 * max(0.0, cosine(embedded[0], vectors[control_id])), 4)
            for control_id, score in found.scores.items()
        }

    async def search(
        self, *, principal: Principal, project_id: str, evaluator_type: str, query: str, response: str, k: int
    ) -> list[Memory]:
        """What {memories} would hold for this interaction (GET /api/v1/controls/search)."""
        await self.db(get_project, write=False, workspace_id=principal.workspace_id, project_id=project_id)
        definition, _ = await self.db(
            definition_for, write=False, project_id=project_id, evaluator_type=evaluator_type, options=("a",)
        )
        settings = memory_settings(definition)
        return await self.remember(
            project_id=project_id,
            evaluator_type=evaluator_type,
            query=query,
            response=response,
            settings=MemorySettings(k=k, min_score=settings.min_score, candidates=settings.candidates),
        )

    # --- evidence --------------------------------------------------------------------------------------------------

    async def calibration(
        self, *, project_id: str, definition: EvaluatorDefinition, subject: str = "memory"
    ) -> Calibration:
        """What the evidence says about this evaluator's memory (or judge), cached for a moment."""
        method = (
            evidence.memory_method(definition) if subject == "memory" else evidence.judge_method(definition)
        )
        target = (
            definition.memory_precision_target
            if subject == "memory"
            else (definition.target_agreement or definition.memory_precision_target)
        )
        key = (project_id, definition.name, subject, f"{method}:{target}:{','.join(definition.options)}")
        cached = self._calibrations.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        # Evidence that changes while this one is worked out makes it stale: it is used, not kept.
        generation = self._evidence_generation.get((project_id, definition.name), 0)
        samples = await self.db(
            evidence.samples,
            write=False,
            project_id=project_id,
            evaluator_type=definition.name,
            subject=subject,
            method=method,
        )
        found = await asyncio.get_running_loop().run_in_executor(
            None, lambda: calibrate(samples, target=target, options=definition.options)
        )
        if len(self._calibrations) > 1000:
            self._calibrations.clear()
        if self._evidence_generation.get((project_id, definition.name), 0) == generation:
            self._calibrations[key] = (time.monotonic() + CALIBRATION_CACHE_SECONDS, found)
        return found

    def evidence_changed(self, project_id: str, evaluator_type: str) -> None:
        changed = (project_id, evaluator_type)
        self._evidence_generation[changed] = self._evidence_generation.get(changed, 0) + 1
        for key in [k for k in self._calibrations if k[0] == project_id and k[1] == evaluator_type]:
            self._calibrations.pop(key, None)

    async def memory_decision(
        self,
        definition: EvaluatorDefinition,
        project_id: str,
        interaction: Interaction,
        *,
        before: datetime | None = None,
        exclude: Collection[str] = (),
        known: Sequence[tuple[str, float]] | None = None,
    ) -> MemoryDecision | None:
        """What memory concludes: the precedent vote, or the judge's re-evaluation with {memories}; None when no
        control is similar enough to say anything. ``known``: the controls (and scores) to decide with, when the
        memory pass already knows them; a decision to resolve is always confirmed by looking memory up whole."""
        if known is not None:
            memories = await self.db(_active_memories, write=False, ranked=list(known))
        else:
            memories = await self.remember(
                project_id=project_id,
                evaluator_type=definition.name,
                query=interaction.query,
                response=interaction.response,
                settings=memory_settings(definition),
                before=before,
                exclude=exclude,
            )

        if not memories:
            return None
        if definition.kind == "precedent":
            verdict = precedent_verdict(definition, memories)
        else:
            verdict = await self.judge.judge(definition, interaction, memories=format_memories(memories))
        if verdict.classification not in definition.options:
            return None
        calibration = await self.calibration(project_id=project_id, definition=definition)
        # A control whose decisions a person overturned may still suggest, but decides nothing alone until
        # someone has looked at it (and cleared its attention flag, or edited it).
        flagged = any(m.control.attention for m in memories)
        decides_alone = (
            definition.memory_mode == "resolve"
            and not flagged
            and calibration.decides_alone(verdict.classification, verdict.confidence)
        )
        if decides_alone and known is not None:  # deciding alone: only on memory as it is, looked up whole
            return await self.memory_decision(definition, project_id, interaction)
        return MemoryDecision(
            classification=verdict.classification,
            confidence=calibration.confidence(verdict.confidence, verdict.classification),
            score=verdict.confidence,
            explanation=verdict.explanation,
            votes=[
                {"control_id": m.control.id, "score": m.score, "classification": m.control.classification}
                for m in memories
            ],
            decides_alone=decides_alone,
            spot_check_rate=spot_check_rate_of(definition, "memory", self.spot_check_rate),
            calibrated=calibration.calibrated(verdict.classification),
        )

    async def _judge_unsure(self, definition: EvaluatorDefinition, project_id: str, verdict: Verdict) -> bool:
        """Whether the judge's first verdict goes to memory and people: by its fixed threshold, or, with
        ambiguity_threshold "auto", by what the evidence says for its classification (the fixed one until it
        says something)."""
        if verdict.classification == AMBIGUOUS or verdict.classification not in definition.options:
            return True
        if definition.ambiguity_mode == "auto":
            calibration = await self.calibration(
                project_id=project_id, definition=definition, subject="judge"
            )
            found = calibration.classes.get(verdict.classification)
            if found is not None and found.threshold is not None:
                return verdict.confidence < found.threshold
        return verdict.confidence < definition.ambiguity_threshold

    # --- evaluating --------------------------------------------------------------------------------------------------

    async def run_one(
        self,
        evaluator: Evaluator,
        interaction: Interaction,
        *,
        memory: bool = True,
        exclude: Collection[str] = (),
        pace: Callable[[], Awaitable[None]] | None = None,
    ) -> EvaluationDraft:
        """Judge; when unsure (or always, if the evaluator says so), judge again with the expert decisions on
        similar cases in {memories}. The precedent evaluator's verdict is memory's alone. Golden-set runs pass
        ``memory=False`` to measure the judge without the controls, ``exclude`` so that memory never
        sees the control made from the very decision an item's answer comes from, and ``pace`` (awaited before
        each judge call) to hold a run to its rate limit."""
        definition = definition_of(evaluator)
        draft = EvaluationDraft(evaluator=evaluator, interaction=interaction)
        try:
            if definition.kind == "precedent":
                if not memory:
                    draft.first = draft.final = Verdict(
                        AMBIGUOUS, 0.0, "Memory is off: no precedent to follow."
                    )
                    draft.ambiguous, draft.reason = True, "ambiguous"
                    return draft
                await self._by_precedent(draft, definition, evaluator.project_id, exclude=exclude)
                return draft
            if pace is not None:
                await pace()
            draft.first = draft.final = await self.judge.judge(definition, interaction)
            unsure = await self._judge_unsure(definition, evaluator.project_id, draft.first)
            if memory and (definition.reeval == "always" or (definition.reeval == "ambiguous" and unsure)):
                memories = await self.remember(
                    project_id=evaluator.project_id,
                    evaluator_type=evaluator.name,
                    query=interaction.query,
                    response=interaction.response,
                    settings=memory_settings(definition),
                    exclude=exclude,
                )
                draft.memory_scores = {m.control.id: m.score for m in memories}
                if pace is not None:
                    await pace()
                draft.final = await self.judge.judge(
                    definition, interaction, memories=format_memories(memories)
                )
                draft.reevaluated = True
                unsure = draft.final.is_ambiguous(definition)
                if unsure and draft.final.classification in definition.options and memories:
                    draft.suggestion = MemoryDecision(
                        classification=draft.final.classification,
                        confidence=draft.final.confidence,
                        score=draft.final.confidence,
                        explanation=draft.final.explanation,
                        votes=[
                            {
                                "control_id": m.control.id,
                                "score": m.score,
                                "classification": m.control.classification,
                            }
                            for m in memories
                        ],
                        decides_alone=False,
                    ).suggestion()
            draft.ambiguous = unsure
            draft.reason = _reason(draft.final, definition)
            if not unsure:
                draft.spot_check_rate = spot_check_rate_of(definition, "judge", self.spot_check_rate)
                draft.spot_check_subject = "judge"
        except JudgeError as exc:
            logger.warning("evaluator %s failed: %s", evaluator.name, exc)
            draft.error = str(exc)
            draft.final = None
            draft.failed_exchange = exc.exchange
        return draft

    async def _by_precedent(
        self,
        draft: EvaluationDraft,
        definition: EvaluatorDefinition,
        project_id: str,
        *,
        exclude: Collection[str] = (),
    ) -> None:
        decision = await self.memory_decision(definition, project_id, draft.interaction, exclude=exclude)
        if decision is None:
            draft.first = draft.final = Verdict(AMBIGUOUS, 0.0, "No similar expert decision to follow.")
            draft.ambiguous, draft.reason = True, "ambiguous"
            return
        draft.first = draft.final = Verdict(
            decision.classification, decision.confidence, decision.explanation
        )
        draft.memory_scores = {vote["control_id"]: vote["score"] for vote in decision.votes}
        draft.memory_score = decision.score
        draft.ambiguous = not decision.decides_alone
        draft.reason = "low_confidence"
        # Memory's conclusion goes with the review if a person is to decide (unsure, or the risk tier says so).
        draft.suggestion = decision.suggestion()
        if not draft.ambiguous:
            draft.spot_check_rate = decision.spot_check_rate
            draft.spot_check_subject = "memory"

    # --- the memory pass: new controls (or re-opened reviews) let memory look at pending reviews again -----------

    async def memory_pass(
        self, control_ids: Sequence[str] = (), review_ids: Sequence[str] = ()
    ) -> PassOutcome:
        """Decide again the pending reviews whose best controls these new controls enter, or these re-opened
        reviews: resolve those memory may decide alone, suggest for the rest."""
        plans: list[PassPlan] = []
        if control_ids:
            plans += await self.db(plan_for_controls, write=False, control_ids=list(control_ids))
        if review_ids:
            plans += await self.db(plan_for_reviews, write=False, review_ids=list(review_ids))
        gate = asyncio.Semaphore(MEMORY_PASS_CONCURRENCY)
        decided: list[tuple[str, MemoryDecision]] = []
        forgotten: list[str] = []
        outcomes: list[str] = []

        async def decide(plan: PassPlan, target: Any) -> None:
            interaction = Interaction(query=target.query, response=target.response, context=target.context)
            async with gate:
                try:
                    decision = await self.memory_decision(
                        plan.definition, plan.project_id, interaction, known=target.votes
                    )
                except JudgeError as exc:
                    logger.warning("memory pass: judge failed on %s: %s", target.id, exc)
                    return
            if decision is None:
                outcomes.append("skipped")
                if target.votes is None:  # looked up in full: memory has nothing for it now
                    forgotten.append(target.id)
            else:
                decided.append((target.id, decision))

        await asyncio.gather(*(decide(plan, target) for plan in plans for target in plan.reviews))
        if decided or forgotten:  # one transaction for the whole pass
            outcomes += await self.db(
                settle_all,
                write=True,
                decided=sorted(decided, key=lambda d: d[0]),
                forgotten=sorted(forgotten),
            )
        return PassOutcome(
            resolved=outcomes.count("resolved"),
            suggested=outcomes.count("suggested"),
            skipped=outcomes.count("skipped"),
        )

    # --- replay: the evidence --------------------------------------------------------------------------------------

    async def replay(self, review_id: str) -> bool:
        """Record what memory (and the judge) would have decided on this human decision, from what existed
        before it. Returns False when the review has no human decision (any more)."""
        case = await self.db(evidence.replay_case, write=False, review_id=review_id)
        if case is None:
            return False
        definition, _ = await self.db(
            definition_for,
            write=False,
            project_id=case.project_id,
            evaluator_type=case.evaluator_type,
            options=case.options,
        )
        common = {
            "project_id": case.project_id,
            "evaluator_type": case.evaluator_type,
            "review_id": case.review_id,
            "human": case.human,
            "decided_at": case.decided_at,
        }
        interaction = Interaction(query=case.query, response=case.response, context=case.context)
        exclude = [case.control_id] if case.control_id else []
        decision = await self.memory_decision(
            definition, case.project_id, interaction, before=case.decided_at, exclude=exclude
        )
        samples = [
            {
                **common,
                "subject": "memory",
                "source": "replay",
                "method": evidence.memory_method(definition),
                "predicted": decision.classification if decision else None,
                "score": decision.score if decision else 0.0,
            }
        ]
        if case.judge_classification in definition.options and case.judge_method and definition.kind == "llm":
            samples.append(
                {
                    **common,
                    "subject": "judge",
                    "source": "review",
                    "method": case.judge_method,
                    "predicted": case.judge_classification,
                    "score": case.judge_confidence or 0.0,
                }
            )
        if case.kind == "spot_check" and case.checked_classification is not None:
            subject = (
                "judge"
                if (case.subject_id or "").startswith("evn_") and definition.kind == "llm"
                else "memory"
            )
            samples.append(
                {
                    **common,
                    "subject": subject,
                    "source": "spot_check",
                    "method": evidence.memory_method(definition)
                    if subject == "memory"
                    else evidence.judge_method(definition),
                    "predicted": case.checked_classification,
                    "score": case.checked_score or 0.0,
                }
            )
        await self.db(_record_all, write=True, samples=samples)
        if any(s["predicted"] is not None and s["predicted"] != s["human"] for s in samples):
            # A mistake can only lower the bounds memory decides alone under: heed it at once. A right answer
            # can only raise them, so the cached (stricter) calibration stays safe until it expires: forgetting it
            # after every replay made each of N decisions re-read all N samples.
            self.evidence_changed(case.project_id, case.evaluator_type)
        return True

    async def aclose(self) -> None:
        await self.judge.aclose()


def _active_memories(session: Any, *, ranked: list[tuple[str, float]]) -> list[Memory]:
    """The still-active controls among ``ranked``, as memories, best first."""
    return [m for m in load_memories(session, ranked=ranked) if m.control.status == "active"]


def settle_all(
    session: Any, *, decided: list[tuple[str, MemoryDecision]], forgotten: Sequence[str] = ()
) -> list[str]:
    """Memory's conclusions, and (``forgotten``) the suggestions of reviews memory has nothing for any more."""
    for review_id in forgotten:
        forget_suggestion(session, review_id=review_id)
    return [
        settle_by_memory(session, review_id=review_id, decision=decision) for review_id, decision in decided
    ]


def _record_all(session: Any, *, samples: list[dict[str, Any]]) -> None:
    for sample in samples:
        evidence.record(session, **sample)


def _reason(verdict: Verdict | None, definition: EvaluatorDefinition) -> str:
    if (
        verdict is None
        or verdict.classification == AMBIGUOUS
        or verdict.classification not in definition.options
    ):
        return "ambiguous"
    return "low_confidence"
