"""Controls: evaluation memory."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from casework.api.deps import Caller, Db, Reply
from casework.api.schemas.common import Cursor, Limit, SearchWords, TimeFilter
from casework.api.schemas.controls import (
    ControlConflict,
    ControlConflictList,
    ControlCreate,
    ControlHistory,
    ControlList,
    ControlPublic,
    ControlUpdate,
    ControlUsagePublic,
    ControlVersionPublic,
)
from casework.services import control_conflicts
from casework.services import controls as control_service

router = APIRouter(prefix="/api/v1", tags=["controls"])


@router.get(
    "/controls", response_model=ControlList, summary="Search and filter a project's evaluation memory"
)
async def list_controls(
    db: Db,
    caller: Caller,
    project_id: Annotated[str, Query()],
    evaluator_type: Annotated[str | None, Query()] = None,
    tag: Annotated[str | None, Query()] = None,
    reviewer: Annotated[str | None, Query()] = None,
    status: Annotated[Literal["active", "retired", "superseded", "all"], Query()] = "active",
    q: SearchWords = None,
    created_after: TimeFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ControlList:
    page = await db(
        control_service.list_controls,
        principal=caller,
        project_id=project_id,
        evaluator_type=evaluator_type,
        tag=tag,
        reviewer=reviewer,
        status=status,
        q=q,
        created_after=created_after,
        limit=limit,
        cursor=cursor,
    )
    return ControlList(
        controls=[ControlPublic.model_validate(c) for c in page.controls], next_cursor=page.next_cursor
    )


@router.post("/controls", response_model=ControlPublic, status_code=201, summary="Write a control up front")
async def create_control(body: ControlCreate, db: Db, caller: Caller) -> Response:
    _, reply = await db.reply(
        lambda control: Reply(ControlPublic.model_validate(control), 201),
        control_service.author_control,
        principal=caller,
        **body.model_dump(),
    )
    return reply


@router.get(
    "/controls/conflicts",
    response_model=ControlConflictList,
    summary="Policy ambiguity: active controls on near-identical interactions that disagree",
)
async def list_conflicts(db: Db, caller: Caller, project_id: Annotated[str, Query()]) -> ControlConflictList:
    found = await db(control_conflicts.find_conflicts, principal=caller, project_id=project_id)
    return ControlConflictList(
        conflicts=[
            ControlConflict(
                evaluator_type=c.evaluator_type,
                similarity=c.similarity,
                controls=[ControlPublic.model_validate(c.first), ControlPublic.model_validate(c.second)],
            )
            for c in found
        ]
    )


@router.get("/controls/{control_id}", response_model=ControlPublic, summary="One control")
async def get_control(control_id: str, db: Db, caller: Caller) -> ControlPublic:
    return ControlPublic.model_validate(
        await db(control_service.get_control, principal=caller, control_id=control_id)
    )


@router.patch(
    "/controls/{control_id}", response_model=ControlPublic, summary="Edit a control (a new version)"
)
async def update_control(control_id: str, body: ControlUpdate, db: Db, caller: Caller) -> Response:
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    _, reply = await db.reply(
        _control_reply,
        control_service.update_control,
        principal=caller,
        control_id=control_id,
        changes=changes,
    )
    return reply


@router.delete(
    "/controls/{control_id}", response_model=ControlPublic, summary="Retire a control (never erased)"
)
async def retire_control(control_id: str, db: Db, caller: Caller) -> Response:
    _, reply = await db.reply(
        _control_reply, control_service.retire_control, principal=caller, control_id=control_id
    )
    return reply


def _control_reply(control: Any) -> Reply:
    return Reply(ControlPublic.model_validate(control))


@router.get(
    "/controls/{control_id}/usage",
    response_model=ControlUsagePublic,
    summary="What a control decided: reviews memory resolved with it, evaluations it informed",
)
async def control_usage(control_id: str, db: Db, caller: Caller) -> ControlUsagePublic:
    usage = await db(control_service.control_usage, principal=caller, control_id=control_id)
    return ControlUsagePublic(
        control_id=control_id,
        resolved_reviews=usage.resolved_reviews,
        review_ids=[review.id for review in usage.reviews],
        evaluations_informed=usage.evaluations_informed,
        evaluations_decided=usage.evaluations_decided,
    )


@router.delete(
    "/controls/{control_id}/attention",
    response_model=ControlPublic,
    summary="Mark a control's conflicts as looked at: memory may decide alone with it again",
)
async def clear_attention(control_id: str, db: Db, caller: Caller) -> Response:
    _, reply = await db.reply(
        lambda control: Reply(ControlPublic.model_validate(control)),
        control_service.clear_attention,
        principal=caller,
        control_id=control_id,
    )
    return reply


@router.get(
    "/controls/{control_id}/history", response_model=ControlHistory, summary="Every version of a control"
)
async def control_history(control_id: str, db: Db, caller: Caller) -> ControlHistory:
    versions = await db(control_service.control_history, principal=caller, control_id=control_id)
    return ControlHistory(
        control_id=control_id, versions=[ControlVersionPublic.model_validate(v) for v in versions]
    )
