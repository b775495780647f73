"""Workspaces (the caller's), projects and runs."""

from __future__ import annotations

from fastapi import APIRouter, Response

from casework.api.deps import Caller, Db, Reply, created_or_existing
from casework.api.schemas.projects import (
    ProjectCreate,
    ProjectList,
    ProjectPublic,
    ProjectUpdate,
    RunCreate,
    RunList,
    RunPublic,
    WorkspacePublic,
)
from casework.services import projects as project_service
from casework.services.evaluators import start_run
from casework.services.workspaces import get_workspace

router = APIRouter(prefix="/api/v1", tags=["projects"])


@router.get(
    "/workspaces/current",
    response_model=WorkspacePublic,
    summary="The caller's workspace",
    responses={404: {"description": "The key's workspace no longer exists (workspace_not_found)."}},
)
async def current_workspace(db: Db, caller: Caller) -> WorkspacePublic:
    return WorkspacePublic.model_validate(await db(get_workspace, workspace_id=caller.workspace_id))


@router.post(
    "/projects",
    response_model=ProjectPublic,
    summary="Get or create a project by name",
    status_code=201,
    responses={200: {"model": ProjectPublic, "description": "It already existed"}},
)
async def create_project(body: ProjectCreate, db: Db, caller: Caller) -> Response:
    caller.require_write()
    _, reply = await db.reply(
        created_or_existing(ProjectPublic.model_validate),
        project_service.get_or_create_project,
        workspace_id=caller.workspace_id,
        name=body.name,
    )
    return reply


@router.get("/projects", response_model=ProjectList, summary="The workspace's projects")
async def list_projects(db: Db, caller: Caller) -> ProjectList:
    projects = await db(project_service.list_projects, workspace_id=caller.workspace_id)
    return ProjectList(projects=[ProjectPublic.model_validate(p) for p in projects])


@router.get("/projects/{project_id}", response_model=ProjectPublic, summary="One project")
async def get_project(project_id: str, db: Db, caller: Caller) -> ProjectPublic:
    project = await db(project_service.get_project, workspace_id=caller.workspace_id, project_id=project_id)
    return ProjectPublic.model_validate(project)


@router.patch("/projects/{project_id}", response_model=ProjectPublic, summary="Change a project's settings")
async def update_project(project_id: str, body: ProjectUpdate, db: Db, caller: Caller) -> Response:
    caller.require_write()
    _, reply = await db.reply(
        lambda project: Reply(ProjectPublic.model_validate(project)),
        project_service.update_project,
        workspace_id=caller.workspace_id,
        project_id=project_id,
        review_target_hours=body.review_target_hours,
    )
    return reply


@router.post(
    "/projects/{project_id}/runs",
    response_model=RunPublic,
    summary="Get or create a run by name",
    status_code=201,
    responses={200: {"model": RunPublic, "description": "It already existed"}},
)
async def create_run(project_id: str, body: RunCreate, db: Db, caller: Caller) -> Response:
    caller.require_write()
    _, reply = await db.reply(
        created_or_existing(RunPublic.model_validate),
        start_run,
        principal=caller,
        project_id=project_id,
        name=body.name,
        evaluators=body.evaluators,
    )
    return reply


@router.get("/projects/{project_id}/runs", response_model=RunList, summary="A project's runs, newest first")
async def list_runs(project_id: str, db: Db, caller: Caller) -> RunList:
    runs = await db(project_service.list_runs, workspace_id=caller.workspace_id, project_id=project_id)
    return RunList(runs=[RunPublic.model_validate(r) for r in runs])
