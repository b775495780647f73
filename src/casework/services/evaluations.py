"""Storing evaluations, and routing the ambiguous ones to the review queue."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from casework.db.models import Evaluation, EvaluationControl, Evaluator
from casework.db.types import utcnow
from casework.definitions import Interaction, JudgeExchange, Verdict
from casework.events import EventType
from casework.ids import new_id
from casework.services import events, jobs, risk_tiers, rollups
from casework.services.auth import Principal
from casework.services.evaluators import definition_of
from casework.services.judge_calls import store_judge_calls
from casework.services.pagination import newest_first, to_json_time
from casework.services.projects import get_project
from casework.services.reviews import enqueue_review, queue_spot_check, sampled


@dataclass
class EvaluationDraft:
    """What the runner found, before it is stored."""

    evaluator: Evaluator
    interaction: Interaction
    first: Verdict | None = None
    final: Verdict | None = None
    reevaluated: bool = False
    # The controls the verdict was reached with ({memories}, or the precedent vote), and their similarity.
    memory_scores: dict[str, float] = field(default_factory=dict)
    memory_score: float | None = None  # the precedent vote's raw score
    error: str | None = None
    # Set by the runner: whether people must decide (None: by the evaluator's threshold), and why.
    ambiguous: bool | None = None
    reason: str = "ambiguous"
    suggestion: dict[str, Any] | None = None
    # A confident verdict is checked by a person this often ("judge": the judge decided; "memory": the
    # precedent vote did).
    spot_check_rate: float = 0.0
    spot_check_subject: str = "judge"

    failed_exchange: JudgeExchange | None = None  # what a failing judge was sent and replied, for debugging

    @property
    def memory_control_ids(self) -> list[str]:
        return list(self.memory_scores)


_COLUMNS = [column.key for column in cast(Table, Evaluation.__table__).columns]
_INTERNAL = ("job_id", "attributes")


def evaluation_record(evaluation: Evaluation) -> dict[str, Any]:
    """An evaluation as the API and events show it."""
    record = {column: getattr(evaluation, column) for column in _COLUMNS if column not in _INTERNAL}
    record["created_at"] = to_json_time(evaluation.created_at)
    record["superseded_at"] = to_json_time(evaluation.superseded_at)
    return record


def store_evaluations(
    session: Session,
    *,
    principal: Principal,
    project_id: str,
    drafts: Sequence[EvaluationDraft],
    run_id: str | None = None,
    trace_id: str | None = None,
    span_id: str | None = None,
    job_id: str | None = None,
    event_sample: float = 1.0,
    metadata: dict[str, Any] | None = None,
) -> list[Evaluation]:
    """Store each verdict; one that needs a person also queues a review (once per span or trace and
    evaluator): an ambiguous one, or one the project's risk tier sends to people (casework.services.risk_tiers).
    Ambiguous, re-evaluated and failed evaluations write an ``evaluation.completed`` event, and routine ones
    as often as ``event_sample`` says."""
    stored = []
    policy = risk_tiers.policy_of(session, project_id)
    if policy is not None and metadata is None:
        metadata = risk_tiers.span_attributes(session, project_id, span_id)
    run_name = risk_tiers.run_name(session, project_id, run_id) if policy is not None else None
    for draft in drafts:
        final = draft.final
        ambiguous = final is not None and (
            draft.ambiguous
            if draft.ambiguous is not None
            else final.is_ambiguous(definition_of(draft.evaluator))
        )
        routing = risk_tiers.route(
            policy,
            risk_tiers.Facts(
                evaluator=draft.evaluator.name,
                classification=final.classification if final else None,
                confidence=final.confidence if final else None,
                ambiguous=ambiguous,
                metadata=metadata or {},
                control_tags=risk_tiers.control_tags(session, draft.memory_scores) if policy else (),
                run=run_name,
                run_id=run_id,
            ),
            automatic_rate=draft.spot_check_rate,
            subject=draft.spot_check_subject,
            ambiguous_reason=draft.reason,
        )
        evaluation = Evaluation(
            id=new_id("evn"),
            project_id=project_id,
            run_id=run_id,
            evaluator_id=draft.evaluator.id,
            evaluator_type=draft.evaluator.name,
            evaluator_version=draft.evaluator.version,
            query=draft.interaction.query,
            response=draft.interaction.response,
            context=draft.interaction.context,
            trace_id=trace_id,
            span_id=span_id,
            job_id=job_id,
            status="error" if final is None else "completed",
            classification=final.classification if final else None,
            confidence=final.confidence if final else None,
            explanation=final.explanation if final else None,
            ambiguous=ambiguous,
            reevaluated=draft.reevaluated,
            initial_classification=draft.first.classification if draft.first else None,
            initial_confidence=draft.first.confidence if draft.first else None,
            initial_explanation=draft.first.explanation if draft.first else None,
            memory_control_ids=list(draft.memory_control_ids),
            model=final.model if final else None,
            prompt_tokens=_sum(draft.first, final, "prompt_tokens", draft.reevaluated),
            completion_tokens=_sum(draft.first, final, "completion_tokens", draft.reevaluated),
            latency_ms=_sum(draft.first, final, "latency_ms", draft.reevaluated),
            error=draft.error,
            created_at=utcnow(),
            tier=routing.tier,
            attributes=metadata if metadata and span_id is None else None,
        )
        if routing.needs_person and final is not None:
            review, _ = enqueue_review(
                session,
                principal=principal,
                project_id=project_id,
                evaluator_type=draft.evaluator.name,
                query=draft.interaction.query,
                response=draft.interaction.response,
                context=draft.interaction.context,
                options=list(draft.evaluator.options),
                classification=final.classification,
                confidence=final.confidence,
                explanation=final.explanation,
                run_id=run_id,
                trace_id=trace_id,
                span_id=span_id,
                metadata={
                    "evaluation_id": evaluation.id,
                    "memory_control_ids": list(draft.memory_control_ids),
                },
                reason=routing.reason,
                suggestion=draft.suggestion,
                priority=routing.priority,
                tier=routing.tier,
            )
            evaluation.review_id = review.id
        elif final is not None and sampled(
            f"{draft.spot_check_subject}:{evaluation.id}", routing.spot_check_rate
        ):
            review = queue_spot_check(
                session,
                workspace_id=principal.workspace_id,
                project_id=project_id,
                evaluator_type=draft.evaluator.name,
                interaction=(draft.interaction.query, draft.interaction.response, draft.interaction.context),
                options=list(draft.evaluator.options),
                subject_id=evaluation.id,
                automatic={
                    "subject": draft.spot_check_subject,
                    "classification": final.classification,
                    "score": draft.memory_score if draft.memory_score is not None else final.confidence,
                    "confidence": final.confidence,
                },
                run_id=run_id,
                tier=routing.tier,
            )
        stored.append(evaluation)
    # One Core INSERT for all of them: the ORM's unit of work cost a seventh of an evaluation's CPU
    # (bench/memory.py, py-spy). The objects returned are the rows as written, detached from the session.
    table = cast(Table, Evaluation.__table__)
    session.execute(insert(table), [{c: getattr(e, c) for c in _COLUMNS} for e in stored])
    links = [
        {"evaluation_id": evaluation.id, "control_id": control_id, "score": score}
        for evaluation, draft in zip(stored, drafts, strict=True)
        for control_id, score in draft.memory_scores.items()
    ]
    if links:
        session.execute(insert(EvaluationControl), links)
    store_judge_calls(session, [(e.id, d) for e, d in zip(stored, drafts, strict=True)])
    rollups.count_evaluations(session, project_id, stored)
    for evaluation in stored:
        notable = evaluation.ambiguous or evaluation.reevaluated or evaluation.status == "error"
        if notable or sampled(evaluation.id, event_sample):
            events.emit(
                session,
                EventType.evaluation_completed,
                workspace_id=principal.workspace_id,
                project_id=project_id,
                actor=principal.identity,
                object_type="evaluation",
                object_id=evaluation.id,
                data=evaluation_record(evaluation),
            )
    return stored


def store_job_evaluation(
    session: Session,
    *,
    claimed: jobs.ClaimedJob,
    draft: EvaluationDraft,
    principal: Principal,
    event_sample: float = 1.0,
) -> str | None:
    """Store the evaluation (and any review) and mark the job done, together; None if the lease was lost."""
    job = jobs.held(session, claimed.id, claimed.token)
    if job is None:
        return None
    assert claimed.project_id is not None
    [evaluation] = store_evaluations(
        session,
        principal=principal,
        project_id=claimed.project_id,
        drafts=[draft],
        run_id=claimed.run_id,
        trace_id=claimed.trace_id,
        span_id=claimed.span_id,
        job_id=claimed.id,
        event_sample=event_sample,
    )
    job.status = "done"
    job.finished_at = utcnow()
    job.evaluation_id = evaluation.id
    job.last_error = None
    return evaluation.id


def _sum(first: Verdict | None, final: Verdict | None, name: str, reevaluated: bool) -> float | None:
    values = [getattr(v, name) for v in ([first, final] if reevaluated else [final]) if v is not None]
    values = [v for v in values if v is not None]
    return sum(values) if values else None


@dataclass
class EvaluationPage:
    evaluations: list[Evaluation]
    next_cursor: str | None


def list_evaluations(
    session: Session,
    *,
    principal: Principal,
    project_id: str,
    evaluator_type: str | None = None,
    run_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> EvaluationPage:
    """Newest first."""
    get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    query = select(Evaluation).where(Evaluation.project_id == project_id)
    if evaluator_type:
        query = query.where(Evaluation.evaluator_type == evaluator_type)
    if run_id:
        query = query.where(Evaluation.run_id == run_id)
    rows, next_cursor = newest_first(
        session, query, (Evaluation.created_at, Evaluation.id), limit=limit, cursor=cursor
    )
    return EvaluationPage(evaluations=rows, next_cursor=next_cursor)
