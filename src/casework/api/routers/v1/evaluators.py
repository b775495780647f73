"""Evaluators, evaluations, and what evaluation memory would retrieve."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from casework.api.deps import Caller, Db
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
    ScoredControl,
)
from casework.evaluators.definitions import EvaluatorDefinition
from casework.evaluators.judge import Interaction
from casework.evaluators.runner import EvaluationRunner
from casework.memory.retrieval import DEFAULT_K, format_memories
from casework.services import evaluations as evaluation_service
from casework.services import evaluators as evaluator_service

router = APIRouter(prefix="/api/v1", tags=["evaluators"])


@router.post(
    "/evaluators", response_model=EvaluatorPublic, status_code=201, summary="Register a custom evaluator"
)
async def register_evaluator(
    body: EvaluatorCreate, request: Request, db: Db, caller: Caller, response: Response
) -> EvaluatorPublic:
    fields = body.model_dump(exclude={"project_id"})
    definition = EvaluatorDefinition(**{**fields, "options": tuple(body.options)})
    evaluator, created = await db(
        evaluator_service.register_evaluator,
        principal=caller,
        project_id=body.project_id,
        definition=definition,
    )
    request.app.state.runner.evaluators_changed(body.project_id)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return EvaluatorPublic.model_validate(evaluator)


@router.get("/evaluators", response_model=EvaluatorList, summary="A project's evaluators, current versions")
async def list_evaluators(db: Db, caller: Caller, project_id: Annotated[str, Query()]) -> EvaluatorList:
    evaluators = await db(evaluator_service.list_evaluators, principal=caller, project_id=project_id)
    return EvaluatorList(evaluators=[EvaluatorPublic.model_validate(e) for e in evaluators])


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
