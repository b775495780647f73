"""Controls (evaluation memory) and the audit trail."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from casework.api.deps import Caller, Db
from casework.api.schemas.common import Cursor, Limit, TimeFilter
from casework.api.schemas.controls import (
    AuditEventPublic,
    AuditList,
    ControlCreate,
    ControlHistory,
    ControlList,
    ControlPublic,
    ControlUpdate,
    ControlVersionPublic,
)
from casework.services import audit as audit_service
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
    q: Annotated[
        str | None, Query(description="Words that must all appear in the reasoning, query or response.")
    ] = None,
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
async def create_control(body: ControlCreate, db: Db, caller: Caller) -> ControlPublic:
    control = await db(control_service.author_control, principal=caller, **body.model_dump())
    return ControlPublic.model_validate(control)


@router.get("/controls/{control_id}", response_model=ControlPublic, summary="One control")
async def get_control(control_id: str, db: Db, caller: Caller) -> ControlPublic:
    return ControlPublic.model_validate(
        await db(control_service.get_control, principal=caller, control_id=control_id)
    )


@router.patch(
    "/controls/{control_id}", response_model=ControlPublic, summary="Edit a control (a new version)"
)
async def update_control(control_id: str, body: ControlUpdate, db: Db, caller: Caller) -> ControlPublic:
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    control = await db(
        control_service.update_control, principal=caller, control_id=control_id, changes=changes
    )
    return ControlPublic.model_validate(control)


@router.delete(
    "/controls/{control_id}", response_model=ControlPublic, summary="Retire a control (never erased)"
)
async def retire_control(control_id: str, db: Db, caller: Caller) -> ControlPublic:
    control = await db(control_service.retire_control, principal=caller, control_id=control_id)
    return ControlPublic.model_validate(control)


@router.get(
    "/controls/{control_id}/history", response_model=ControlHistory, summary="Every version of a control"
)
async def control_history(control_id: str, db: Db, caller: Caller) -> ControlHistory:
    versions = await db(control_service.control_history, principal=caller, control_id=control_id)
    return ControlHistory(
        control_id=control_id, versions=[ControlVersionPublic.model_validate(v) for v in versions]
    )


@router.get("/audit", response_model=AuditList, summary="Changes to reviews and controls, newest first")
async def list_audit_events(
    db: Db,
    caller: Caller,
    project_id: Annotated[str, Query()],
    object_id: Annotated[str | None, Query(description="Only events about this review or control.")] = None,
    action: Annotated[str | None, Query(description="e.g. review.resolved, control.updated")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> AuditList:
    page = await db(
        audit_service.list_events,
        principal=caller,
        project_id=project_id,
        object_id=object_id,
        action=action,
        limit=limit,
        cursor=cursor,
    )
    return AuditList(
        events=[AuditEventPublic.model_validate(e) for e in page.events], next_cursor=page.next_cursor
    )
