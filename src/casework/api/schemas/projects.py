"""Workspaces, projects and runs."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from casework.api.schemas.common import Name, Public, Strict


class WorkspacePublic(Public):
    id: str
    name: str


class ProjectCreate(Strict):
    name: Name


class ProjectPublic(Public):
    id: str
    name: str
    workspace_id: str
    created_at: datetime


class ProjectList(BaseModel):
    projects: list[ProjectPublic]


class RunCreate(Strict):
    name: Name


class RunPublic(Public):
    id: str
    name: str
    project_id: str
    created_at: datetime


class RunList(BaseModel):
    runs: list[RunPublic]
