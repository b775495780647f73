"""Request and reply bodies (``XCreate`` in, ``XPublic`` out)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


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
