"""Golden sets (versioned interactions with the human answer) and regression runs of evaluator versions."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from casework.api.deps import Caller, Db, Reply
from casework.api.schemas.common import Cursor, Limit
from casework.api.schemas.evaluators import definition_fields
from casework.api.schemas.golden_csv import items_from_csv
from casework.api.schemas.golden_sets import (
    ControlFilterCreate,
    GoldenItemCreate,
    GoldenItemList,
    GoldenItemPublic,
    GoldenResultList,
    GoldenResultPublic,
    GoldenRunCreate,
    GoldenRunList,
    GoldenRunPublic,
    GoldenSetCreate,
    GoldenSetList,
    GoldenSetPublic,
    GoldenSetUpdate,
    GoldenVersionCreate,
    ReviewFilterCreate,
    RunEvaluatorCreate,
)
from casework.definitions import EvaluatorDefinition
from casework.errors import ValidationFailed
from casework.services import golden_runs as run_service
from casework.services import golden_sets as golden_service

router = APIRouter(prefix="/api/v1", tags=["golden sets"])


def _items(items: list[GoldenItemCreate]) -> list[golden_service.NewItem]:
    return [
        golden_service.NewItem(
            query=item.query,
            response=item.response,
            context=item.context,
            expected=item.expected,
            evaluator_type=item.evaluator_type,
            tags=tuple(item.tags),
            metadata=item.metadata,
        )
        for item in items
    ]


def _filter(found: ReviewFilterCreate | None) -> golden_service.ReviewFilter | None:
    if found is None:
        return None
    return golden_service.ReviewFilter(
        evaluator_type=found.evaluator_type,
        tags=tuple(found.tags),
        since=found.since,
        until=found.until,
        decided_by=found.decided_by,
        agreement=found.agreement,
    )


def _control_filter(found: ControlFilterCreate | None) -> golden_service.ControlFilter | None:
    if found is None:
        return None
    return golden_service.ControlFilter(
        evaluator_type=found.evaluator_type, tags=tuple(found.tags), include_retired=found.include_retired
    )


def _run_evaluators(wanted: list[str | RunEvaluatorCreate]) -> list[str | run_service.RunEvaluatorSpec]:
    specs: list[str | run_service.RunEvaluatorSpec] = []
    for one in wanted:
        if isinstance(one, str):
            specs.append(one)
        elif one.definition is not None:
            fields = definition_fields(one.definition)
            specs.append(
                run_service.RunEvaluatorSpec(
                    definition=EvaluatorDefinition(**{**fields, "options": tuple(one.definition.options)})
                )
            )
        else:
            specs.append(run_service.RunEvaluatorSpec(name=one.name, model=one.model))
    return specs


@router.post(
    "/golden-sets",
    response_model=GoldenSetPublic,
    status_code=201,
    summary="Create a golden set",
    responses={
        409: {"description": "The project has a golden set of this name already (golden_set_exists)."}
    },
)
async def create_golden_set(body: GoldenSetCreate, db: Db, caller: Caller) -> Response:
    _, reply = await db.reply(
        lambda record: Reply(GoldenSetPublic.model_validate(record), 201),
        golden_service.create_golden_set,
        principal=caller,
        project_id=body.project_id,
        name=body.name,
        from_reviews=_filter(body.from_reviews),
        from_controls=_control_filter(body.from_controls),
        items=_items(body.items),
        thresholds=body.thresholds,
    )
    return reply


@router.get("/golden-sets", response_model=GoldenSetList, summary="A project's golden sets")
async def list_golden_sets(db: Db, caller: Caller, project_id: Annotated[str, Query()]) -> GoldenSetList:
    records = await db(golden_service.list_golden_sets, principal=caller, project_id=project_id)
    return GoldenSetList(golden_sets=[GoldenSetPublic.model_validate(r) for r in records])


@router.get(
    "/golden-sets/{golden_set_id}",
    response_model=GoldenSetPublic,
    summary="One golden set, with its versions",
)
async def get_golden_set(golden_set_id: str, db: Db, caller: Caller) -> GoldenSetPublic:
    record = await db(golden_service.read_golden_set, principal=caller, golden_set_id=golden_set_id)
    return GoldenSetPublic.model_validate(record)


@router.patch(
    "/golden-sets/{golden_set_id}", response_model=GoldenSetPublic, summary="Change a set's thresholds"
)
async def update_golden_set(golden_set_id: str, body: GoldenSetUpdate, db: Db, caller: Caller) -> Response:
    _, reply = await db.reply(
        lambda record: Reply(GoldenSetPublic.model_validate(record)),
        golden_service.set_thresholds,
        principal=caller,
        golden_set_id=golden_set_id,
        thresholds=body.thresholds,
    )
    return reply


@router.post(
    "/golden-sets/{golden_set_id}/versions",
    response_model=GoldenSetPublic,
    status_code=201,
    summary="Make the next version: add items, or rebuild",
)
async def add_version(golden_set_id: str, body: GoldenVersionCreate, db: Db, caller: Caller) -> Response:
    _, reply = await db.reply(
        lambda record: Reply(GoldenSetPublic.model_validate(record), 201),
        golden_service.add_version,
        principal=caller,
        golden_set_id=golden_set_id,
        from_reviews=_filter(body.from_reviews),
        from_controls=_control_filter(body.from_controls),
        items=_items(body.items),
        mode=body.mode,
    )
    return reply


@router.post(
    "/golden-sets/{golden_set_id}/versions/csv",
    response_model=GoldenSetPublic,
    status_code=201,
    summary="Make the next version from a CSV body",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "A header row (query, response, expected; optionally context, evaluator_type, "
            "tags, metadata), then one item per row.",
        }
    },
)
async def import_csv(
    golden_set_id: str,
    request: Request,
    db: Db,
    caller: Caller,
    mode: Annotated[Literal["add", "replace"], Query()] = "add",
) -> Response:
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(
            f"The CSV body is not UTF-8 text (byte {exc.start}).", details={"byte": exc.start}
        ) from exc
    items = items_from_csv(text)  # every row checked before anything is written
    _, reply = await db.reply(
        lambda record: Reply(GoldenSetPublic.model_validate(record), 201),
        golden_service.add_version,
        principal=caller,
        golden_set_id=golden_set_id,
        items=_items(items),
        mode=mode,
    )
    return reply


@router.get(
    "/golden-sets/{golden_set_id}/items", response_model=GoldenItemList, summary="The items of one version"
)
async def list_items(
    golden_set_id: str,
    db: Db,
    caller: Caller,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> GoldenItemList:
    items, next_cursor, shown = await db(
        golden_service.list_items,
        principal=caller,
        golden_set_id=golden_set_id,
        version=version,
        limit=limit,
        cursor=cursor,
    )
    return GoldenItemList(
        version=shown, items=[GoldenItemPublic.model_validate(i) for i in items], next_cursor=next_cursor
    )


@router.post(
    "/golden-sets/{golden_set_id}/runs",
    response_model=GoldenRunPublic,
    status_code=202,
    summary="Run evaluator versions on the set, in the background",
)
async def start_run(
    golden_set_id: str, body: GoldenRunCreate, request: Request, db: Db, caller: Caller
) -> Response:
    prices = {
        **request.app.state.settings.model_price_table,
        **{model: price.model_dump() for model, price in body.prices.items()},
    }
    _, reply = await db.reply(
        lambda record: Reply(GoldenRunPublic.model_validate(record), 202),
        run_service.start_run,
        principal=caller,
        golden_set_id=golden_set_id,
        evaluators=_run_evaluators(body.evaluators),
        memory=body.memory,
        version=body.version,
        prices=prices,
        requests_per_second=body.requests_per_second,
    )
    return reply


@router.get(
    "/golden-sets/{golden_set_id}/runs", response_model=GoldenRunList, summary="A set's runs, newest first"
)
async def list_runs(golden_set_id: str, db: Db, caller: Caller) -> GoldenRunList:
    records = await db(run_service.list_runs, principal=caller, golden_set_id=golden_set_id)
    return GoldenRunList(runs=[GoldenRunPublic.model_validate(r) for r in records])


@router.get(
    "/golden-sets/{golden_set_id}/runs/{run_id}",
    response_model=GoldenRunPublic,
    summary="A run: progress, then per evaluator version its metrics, thresholds and diff",
)
async def get_run(golden_set_id: str, run_id: str, db: Db, caller: Caller) -> GoldenRunPublic:
    record = await db(run_service.get_run, principal=caller, golden_set_id=golden_set_id, run_id=run_id)
    return GoldenRunPublic.model_validate(record)


@router.get(
    "/golden-sets/{golden_set_id}/runs/{run_id}/results",
    response_model=GoldenResultList,
    summary="A run's verdicts, item by item",
)
async def list_results(
    golden_set_id: str,
    run_id: str,
    db: Db,
    caller: Caller,
    evaluator_id: Annotated[str | None, Query(max_length=40)] = None,
    outcome: Annotated[Literal["right", "wrong", "ambiguous", "error"] | None, Query()] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> GoldenResultList:
    results, next_cursor = await db(
        run_service.list_results,
        principal=caller,
        golden_set_id=golden_set_id,
        run_id=run_id,
        evaluator_id=evaluator_id,
        outcome=outcome,
        limit=limit,
        cursor=cursor,
    )
    return GoldenResultList(
        results=[GoldenResultPublic.model_validate(r) for r in results], next_cursor=next_cursor
    )
