"""First start: the ``default`` workspace and its admin key."""

from __future__ import annotations

from sqlalchemy.orm import Session

from casework.services.auth import CreatedKey, Role, create_key
from casework.services.workspaces import DEFAULT_WORKSPACE, get_or_create_workspace


def bootstrap(session: Session) -> CreatedKey | None:
    """Create the default workspace and an admin key on an empty database; None when it already existed.

    Safe when several replicas start at once: only the one whose insert created the workspace makes the key.
    """
    workspace, created = get_or_create_workspace(session, name=DEFAULT_WORKSPACE)
    if not created:
        return None
    return create_key(session, workspace_id=workspace.id, role=Role.admin, label="admin")
