"""Workspaces, projects and runs."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

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
    review_target_hours: float
    created_at: datetime


class ProjectUpdate(Strict):
    review_target_hours: float = Field(
        gt=0, le=24 * 365, description="How long a review may wait before the queue shows it red."
    )


class ProjectList(BaseModel):
    projects: list[ProjectPublic]


class RunCreate(Strict):
    name: Name
    evaluators: list[Name] | None = Field(
        default=None,
        max_length=50,
        description=(
            "The evaluators that judge this run's traced interactions: registered names or built-ins. Given, "
            "it replaces the run's list; omitted, the run keeps its list (new runs: the project's evaluators)."
        ),
    )


class RunPublic(Public):
    id: str
    name: str
    project_id: str
    evaluators: list[str] | None
    created_at: datetime


class RunList(BaseModel):
    runs: list[RunPublic]
