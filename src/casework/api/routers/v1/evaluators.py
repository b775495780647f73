"""Evaluators, evaluations, and what evaluation memory would retrieve."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from casework.api.deps import Caller, Db, Reply, created_or_existing
from casework.api.schemas.common import Cursor, Limit
from casework.api.schemas.controls import ControlPublic
from casework.api.schemas.evaluators import (
    ControlSearchResult,
    EvaluationCreate,
    EvaluationList,
    EvaluationPublic,
    EvaluatorCreate,
    EvaluatorList,
    EvaluatorPublic,
    EvaluatorRollback,
    EvaluatorUpdate,
    EvidencePublic,
    MemoryEvidencePublic,
    ScoredControl,
    definition_fields,
)
from casework.definitions import EvaluatorDefinition, Interaction
from casework.memory.retrieval import DEFAULT_K, format_memories
from casework.services import evaluations as evaluation_service
from casework.services import evaluators as evaluator_service
from casework.services.evidence import summary_record
from casework.worker.runner import EvaluationRunner

router = APIRouter(prefix="/api/v1", tags=["evaluators"])


@router.post(
    "/evaluators",
    response_model=EvaluatorPublic,
    status_code=201,
    summary="Register a custom evaluator",
    responses={200: {"model": EvaluatorPublic, "description": "The definition is unchanged: that version."}},
)
async def register_evaluator(body: EvaluatorCreate, request: Request, db: Db, caller: Caller) -> Response:
    definition = EvaluatorDefinition(**{**definition_fields(body), "options": tuple(body.options)})
    _, reply = await db.reply(
        created_or_existing(EvaluatorPublic.model_validate),
        evaluator_service.register_evaluator,
        principal=caller,
        project_id=body.project_id,
        definition=definition,
    )
    request.app.state.runner.evaluators_changed(body.project_id)
    return reply


@router.get("/evaluators", response_model=EvaluatorList, summary="A project's evaluators, current versions")
async def list_evaluators(db: Db, caller: Caller, project_id: Annotated[str, Query()]) -> EvaluatorList:
    evaluators = await db(evaluator_service.list_evaluators, principal=caller, project_id=project_id)
    return EvaluatorList(evaluators=[EvaluatorPublic.model_validate(e) for e in evaluators])


@router.patch(
    "/evaluators/{evaluator_id}",
    response_model=EvaluatorPublic,
    summary="Change an evaluator: a new version (memory settings and thresholds of built-ins too)",
)
async def update_evaluator(
    evaluator_id: str, body: EvaluatorUpdate, request: Request, db: Db, caller: Caller
) -> Response:

    (evaluator, _), reply = await db.reply(
        lambda result: Reply(EvaluatorPublic.model_validate(result[0])),
        evaluator_service.update_evaluator,
        principal=caller,
        evaluator_id=evaluator_id,
        changes=definition_fields(body),
    )
    request.app.state.runner.evaluators_changed(evaluator.project_id)
    return reply


@router.post(
    "/evaluators/{evaluator_id}/rollback",
    response_model=EvaluatorPublic,
    status_code=201,
    summary="Make an older version current again: a new version with its definition",
    responses={
        200: {"model": EvaluatorPublic, "description": "The current version already has that definition."}
    },
)
async def rollback_evaluator(
    evaluator_id: str, body: EvaluatorRollback, request: Request, db: Db, caller: Caller
) -> Response:
    (evaluator, _), reply = await db.reply(
        created_or_existing(EvaluatorPublic.model_validate),
        evaluator_service.rollback_evaluator,
        principal=caller,
        evaluator_id=evaluator_id,
        version=body.version,
    )
    request.app.state.runner.evaluators_changed(evaluator.project_id)
    return reply


@router.get(
    "/evaluators/{evaluator_id}/versions",
    response_model=EvaluatorList,
    summary="Every version of the evaluator, newest first (its history)",
)
async def evaluator_versions(evaluator_id: str, db: Db, caller: Caller) -> EvaluatorList:
    versions = await db(evaluator_service.evaluator_versions, principal=caller, evaluator_id=evaluator_id)
    return EvaluatorList(evaluators=[EvaluatorPublic.model_validate(e) for e in versions])


@router.get(
    "/evaluators/{evaluator_id}/memory",
    response_model=MemoryEvidencePublic,
    summary="The evidence: how often memory (and the judge) would be right deciding alone, and where it may",
)
async def memory_evidence(
    evaluator_id: str, request: Request, db: Db, caller: Caller
) -> MemoryEvidencePublic:
    evaluator = await db(evaluator_service.get_evaluator, principal=caller, evaluator_id=evaluator_id)
    runner: EvaluationRunner = request.app.state.runner
    definition = evaluator_service.definition_of(evaluator)
    memory = await runner.calibration(project_id=evaluator.project_id, definition=definition)
    judge = None
    if definition.kind == "llm":
        found = await runner.calibration(
            project_id=evaluator.project_id, definition=definition, subject="judge"
        )
        judge = EvidencePublic.model_validate(summary_record(found, definition, subject="judge"))
    return MemoryEvidencePublic(
        evaluator_id=evaluator.id,
        name=evaluator.name,
        version=evaluator.version,
        memory=EvidencePublic.model_validate(summary_record(memory, definition, subject="memory")),
        judge=judge,
    )


@router.get("/evaluators/{evaluator_id}", response_model=EvaluatorPublic, summary="One evaluator version")
async def get_evaluator(evaluator_id: str, db: Db, caller: Caller) -> EvaluatorPublic:
    evaluator = await db(evaluator_service.get_evaluator, principal=caller, evaluator_id=evaluator_id)
    return EvaluatorPublic.model_validate(evaluator)


@router.post("/evaluations", response_model=EvaluationList, summary="Evaluate an interaction now")
async def evaluate(body: EvaluationCreate, request: Request, caller: Caller) -> EvaluationList:
    runner: EvaluationRunner = request.app.state.runner
    evaluations = await runner.evaluate(
        principal=caller,
        project_id=body.project_id,
        evaluators=body.evaluators,
        interaction=Interaction(query=body.query, response=body.response, context=body.context),
        run_id=body.run_id,
        trace_id=body.trace_id,
        span_id=body.span_id,
        metadata=body.metadata,
    )
    return EvaluationList(evaluations=[EvaluationPublic.model_validate(e) for e in evaluations])


@router.get("/evaluations", response_model=EvaluationList, summary="A project's evaluations, newest first")
async def list_evaluations(
    db: Db,
    caller: Caller,
    project_id: Annotated[str, Query()],
    evaluator_type: Annotated[str | None, Query()] = None,
    run_id: Annotated[str | None, Query()] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> EvaluationList:
    page = await db(
        evaluation_service.list_evaluations,
        principal=caller,
        project_id=project_id,
        evaluator_type=evaluator_type,
        run_id=run_id,
        limit=limit,
        cursor=cursor,
    )
    return EvaluationList(
        evaluations=[EvaluationPublic.model_validate(e) for e in page.evaluations],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/controls/search", response_model=ControlSearchResult, summary="What evaluation memory would retrieve"
)
async def search_controls(
    request: Request,
    caller: Caller,
    project_id: Annotated[str, Query()],
    evaluator_type: Annotated[str, Query()],
    query: Annotated[str, Query(max_length=100_000)] = "",
    response: Annotated[str, Query(max_length=100_000)] = "",
    k: Annotated[int, Query(ge=1, le=50)] = DEFAULT_K,
) -> ControlSearchResult:
    runner: EvaluationRunner = request.app.state.runner
    memories = await runner.search(
        principal=caller,
        project_id=project_id,
        evaluator_type=evaluator_type,
        query=query,
        response=response,
        k=k,
    )
    return ControlSearchResult(
        controls=[
            ScoredControl(score=m.score, control=ControlPublic.model_validate(m.control)) for m in memories
        ],
        memories=format_memories(memories),
    )
