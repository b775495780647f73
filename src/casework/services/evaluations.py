"""Storing evaluations, and routing the ambiguous ones to the review queue."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from casework.db.models import Evaluation, Evaluator
from casework.db.types import utcnow
from casework.evaluators.judge import Interaction, Verdict
from casework.ids import new_id
from casework.services import jobs
from casework.services.auth import Principal
from casework.services.evaluators import definition_of
from casework.services.pagination import newest_first
from casework.services.projects import get_project
from casework.services.reviews import enqueue_review


@dataclass
class EvaluationDraft:
    """What the runner found, before it is stored."""

    evaluator: Evaluator
    interaction: Interaction
    first: Verdict | None = None
    final: Verdict | None = None
    reevaluated: bool = False
    memory_control_ids: list[str] = field(default_factory=list)
    error: str | None = None


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
) -> list[Evaluation]:
    """Store each verdict; an ambiguous one also queues a review (once per span or trace and evaluator)."""
    stored = []
    for draft in drafts:
        definition = definition_of(draft.evaluator)
        final = draft.final
        ambiguous = final is not None and final.is_ambiguous(definition)
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
        )
        if ambiguous and final is not None:
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
            )
            evaluation.review_id = review.id
        stored.append(evaluation)
    # One Core INSERT for all of them: the ORM's unit of work cost a seventh of an evaluation's CPU
    # (bench/memory.py, py-spy). The objects returned are the rows as written, detached from the session.
    table = cast(Table, Evaluation.__table__)
    columns = [column.key for column in table.columns]
    session.execute(insert(table), [{c: getattr(e, c) for c in columns} for e in stored])
    return stored


def store_job_evaluation(
    session: Session, *, claimed: jobs.ClaimedJob, draft: EvaluationDraft, principal: Principal
) -> str | None:
    """Store the evaluation (and any review) and mark the job done, together; None if the lease was lost."""
    job = jobs.held(session, claimed.id, claimed.token)
    if job is None:
        return None
    [evaluation] = store_evaluations(
        session,
        principal=principal,
        project_id=claimed.project_id,
        drafts=[draft],
        run_id=claimed.run_id,
        trace_id=claimed.trace_id,
        span_id=claimed.span_id,
        job_id=claimed.id,
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
