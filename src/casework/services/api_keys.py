"""Managing a workspace's API keys from the web UI: admins only, and only their own workspace's keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.db.models import ApiKey
from casework.errors import ApiKeyNotFound, PermissionDenied, ValidationFailed
from casework.events import EventType
from casework.services import events
from casework.services.auth import CreatedKey, Principal, Role, create_key, revoke_key
from casework.services.pagination import to_json_time

MAX_LABEL = 200


def require_admin(principal: Principal) -> None:
    if principal.role is not Role.admin:
        raise PermissionDenied(
            "Only an admin key may manage API keys.", details={"role": principal.role.value}
        )


def workspace_keys(session: Session, *, principal: Principal) -> list[ApiKey]:
    """The workspace's keys, active ones first, newest first."""
    require_admin(principal)
    return list(
        session.execute(
            select(ApiKey)
            .where(ApiKey.workspace_id == principal.workspace_id)
            .order_by(ApiKey.revoked_at.is_not(None), ApiKey.created_at.desc(), ApiKey.id)
        ).scalars()
    )


def key_record(api_key: ApiKey) -> dict[str, Any]:
    """A key as its audit events show it: who holds it and what it may do, never any part of its secret."""
    return {
        "id": api_key.id,
        "label": api_key.label,
        "role": api_key.role,
        "created_at": to_json_time(api_key.created_at),
        "revoked_at": to_json_time(api_key.revoked_at) if api_key.revoked_at else None,
    }


def create_recorded_key(
    session: Session, *, workspace_id: str, role: Role, label: str, actor: str
) -> CreatedKey:
    """A new key, with its ``api_key.created`` event (by ``actor``): how people make keys, in the web UI and with
    ``casework keys create``."""
    created = create_key(session, workspace_id=workspace_id, role=role, label=label)
    _record(session, EventType.api_key_created, created.api_key, actor=actor)
    return created


def revoke_recorded_key(session: Session, *, key_id: str, actor: str) -> ApiKey:
    """Revoke, with an ``api_key.revoked`` event when the key was active (revoking again changes nothing)."""
    api_key = session.get(ApiKey, key_id)
    before = key_record(api_key) if api_key is not None else None
    revoked = revoke_key(session, key_id=key_id)
    if before is not None and before["revoked_at"] is None:
        _record(session, EventType.api_key_revoked, revoked, actor=actor, before=before)
    return revoked


def _record(
    session: Session, type: EventType, api_key: ApiKey, *, actor: str, before: dict[str, Any] | None = None
) -> None:
    events.emit(
        session,
        type,
        workspace_id=api_key.workspace_id,
        project_id=None,
        actor=actor,
        object_type="api_key",
        object_id=api_key.id,
        data=key_record(api_key),
        before=before,
    )


def create_workspace_key(session: Session, *, principal: Principal, role: str, label: str) -> CreatedKey:
    """A new key in the caller's workspace; its secret is in the result, and nowhere else, ever."""
    require_admin(principal)
    label = label.strip()
    if not label or len(label) > MAX_LABEL:
        raise ValidationFailed(
            f"Give the key a label of 1 to {MAX_LABEL} characters: who or what holds it.",
            details={"field": "label"},
        )
    try:
        chosen = Role(role)
    except ValueError as exc:
        allowed = [r.value for r in Role]
        raise ValidationFailed(f"role must be one of {allowed}.", details={"allowed": allowed}) from exc
    return create_recorded_key(
        session, workspace_id=principal.workspace_id, role=chosen, label=label, actor=principal.identity
    )


def revoke_workspace_key(session: Session, *, principal: Principal, key_id: str) -> ApiKey:
    require_admin(principal)
    owner = session.execute(select(ApiKey.workspace_id).where(ApiKey.id == key_id)).scalar_one_or_none()
    if owner != principal.workspace_id:  # another workspace's key is as absent as one that never was
        raise ApiKeyNotFound(f"No API key with id {key_id!r}.", details={"key_id": key_id})
    return revoke_recorded_key(session, key_id=key_id, actor=principal.identity)


@dataclass
class KeysPage:
    keys: list[ApiKey]
    created: CreatedKey | None = None
    error: str | None = None


def keys_page(session: Session, *, principal: Principal) -> KeysPage:
    return KeysPage(keys=workspace_keys(session, principal=principal))


def create_key_page(session: Session, *, principal: Principal, role: str, label: str) -> KeysPage:
    """Create a key and list the keys, in one transaction (a refused form comes back with the list)."""
    try:
        created = create_workspace_key(session, principal=principal, role=role, label=label)
    except ValidationFailed as error:  # nothing was written
        return KeysPage(keys=workspace_keys(session, principal=principal), error=error.message)
    return KeysPage(keys=workspace_keys(session, principal=principal), created=created)
