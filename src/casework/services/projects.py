"""Projects and runs, always within the caller's workspace."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.db.dialect import insert_ignoring_conflict
from casework.db.models import Project, Run
from casework.db.types import utcnow
from casework.errors import ProjectNotFound
from casework.ids import new_id


def get_or_create_project(session: Session, *, workspace_id: str, name: str) -> tuple[Project, bool]:
    """The project called ``name`` in the workspace, and whether this call created it."""
    created = insert_ignoring_conflict(
        session,
        Project,
        {"id": new_id("prj"), "workspace_id": workspace_id, "name": name, "created_at": utcnow()},
        conflict_columns=["workspace_id", "name"],
    )
    project = session.execute(
        select(Project).where(Project.workspace_id == workspace_id, Project.name == name)
    ).scalar_one()
    return project, created


def get_project(session: Session, *, workspace_id: str, project_id: str) -> Project:
    """The project, if it belongs to the workspace; another workspace's project is reported as missing."""
    project = session.get(Project, project_id)
    if project is None or project.workspace_id != workspace_id:
        raise ProjectNotFound(f"No project with id {project_id!r}.", details={"project_id": project_id})
    return project


def project_in_workspace(session: Session, *, workspace_id: str, project_id: str) -> bool:
    project = session.get(Project, project_id)
    return project is not None and project.workspace_id == workspace_id


def list_projects(session: Session, *, workspace_id: str) -> list[Project]:
    return list(
        session.execute(
            select(Project).where(Project.workspace_id == workspace_id).order_by(Project.name)
        ).scalars()
    )


def get_or_create_run(session: Session, *, workspace_id: str, project_id: str, name: str) -> tuple[Run, bool]:
    get_project(session, workspace_id=workspace_id, project_id=project_id)
    created = insert_ignoring_conflict(
        session,
        Run,
        {"id": new_id("run"), "project_id": project_id, "name": name, "created_at": utcnow()},
        conflict_columns=["project_id", "name"],
    )
    run = session.execute(select(Run).where(Run.project_id == project_id, Run.name == name)).scalar_one()
    return run, created


def list_runs(session: Session, *, workspace_id: str, project_id: str) -> list[Run]:
    get_project(session, workspace_id=workspace_id, project_id=project_id)
    return list(
        session.execute(
            select(Run).where(Run.project_id == project_id).order_by(Run.created_at.desc(), Run.id.desc())
        ).scalars()
    )


def update_project(
    session: Session, *, workspace_id: str, project_id: str, review_target_hours: float
) -> Project:
    project = get_project(session, workspace_id=workspace_id, project_id=project_id)
    project.review_target_hours = review_target_hours
    return project
