"""API keys: creation, lookup by secret, roles."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import Enum

from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.db.models import ApiKey, Workspace
from casework.db.types import utcnow
from casework.errors import ApiKeyNotFound, PermissionDenied
from casework.ids import new_id

KEY_PREFIX = "cw_sk_"


class Role(str, Enum):
    """What a key may do. Each role can do everything the ones after it can."""

    admin = "admin"  # everything, including managing keys
    reviewer = "reviewer"  # read, and write projects, runs, reviews, feedback and controls
    viewer = "viewer"  # read only


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key, its workspace, its role and its label (who holds it)."""

    key_id: str
    workspace_id: str
    role: Role
    label: str

    @property
    def identity(self) -> str:
        """How this caller appears in audit records."""
        return f"{self.label} ({self.key_id})"

    def require_admin(self) -> None:
        if self.role is not Role.admin:
            raise PermissionDenied(
                "Only an admin key may do this.", details={"role": self.role.value, "required": "admin"}
            )

    def require_write(self) -> None:
        if self.role is Role.viewer:
            raise PermissionDenied(
                "This API key is read-only (role viewer).", details={"role": self.role.value}
            )


@dataclass(frozen=True)
class CreatedKey:
    """A key just made: the only moment its secret is known."""

    api_key: ApiKey
    secret: str


def hash_secret(secret: str) -> str:
    # Keys are 256-bit random strings, so a fast unsalted hash is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(session: Session, *, workspace_id: str, role: Role, label: str) -> CreatedKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey(
        id=new_id("key"),
        workspace_id=workspace_id,
        label=label,
        role=role.value,
        key_hash=hash_secret(secret),
        key_prefix=secret[: len(KEY_PREFIX) + 4],
        created_at=utcnow(),
    )
    session.add(api_key)
    session.flush()
    return CreatedKey(api_key=api_key, secret=secret)


def authenticate(session: Session, *, secret: str) -> Principal | None:
    """The principal for ``secret``, or None when the key is unknown or revoked."""
    row = session.execute(
        select(ApiKey.id, ApiKey.workspace_id, ApiKey.role, ApiKey.label).where(
            ApiKey.key_hash == hash_secret(secret), ApiKey.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    return Principal(key_id=row.id, workspace_id=row.workspace_id, role=Role(row.role), label=row.label)


def list_keys(session: Session, *, workspace_id: str | None = None) -> list[tuple[ApiKey, str]]:
    """Keys with their workspace's name, oldest first."""
    query = select(ApiKey, Workspace.name).join(Workspace).order_by(ApiKey.created_at, ApiKey.id)
    if workspace_id is not None:
        query = query.where(ApiKey.workspace_id == workspace_id)
    return [(key, name) for key, name in session.execute(query)]


def revoke_key(session: Session, *, key_id: str) -> ApiKey:
    api_key = session.get(ApiKey, key_id)
    if api_key is None:
        raise ApiKeyNotFound(f"No API key with id {key_id!r}.", details={"key_id": key_id})
    if api_key.revoked_at is None:
        api_key.revoked_at = utcnow()
    return api_key
