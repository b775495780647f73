"""Workspaces: the tenants."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.db.dialect import insert_ignoring_conflict
from casework.db.models import Workspace
from casework.db.types import utcnow
from casework.errors import WorkspaceNotFound
from casework.ids import new_id

DEFAULT_WORKSPACE = "default"


def get_or_create_workspace(session: Session, *, name: str) -> tuple[Workspace, bool]:
    """The workspace called ``name``, and whether this call created it (race-free across processes)."""
    created = insert_ignoring_conflict(
        session,
        Workspace,
        {"id": new_id("ws"), "name": name, "created_at": utcnow()},
        conflict_columns=["name"],
    )
    workspace = session.execute(select(Workspace).where(Workspace.name == name)).scalar_one()
    return workspace, created


def get_workspace(session: Session, *, workspace_id: str) -> Workspace:
    workspace = session.get(Workspace, workspace_id)
    if workspace is None:
        raise WorkspaceNotFound(f"No workspace with id {workspace_id!r}.")
    return workspace


def find_workspace(session: Session, *, name: str) -> Workspace | None:
    return session.execute(select(Workspace).where(Workspace.name == name)).scalar_one_or_none()
