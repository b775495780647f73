"""Integrations (admin): register, read, change, remove. Tokens and signing secrets are write-only: sealed with
the installation's key (casework.secrets) and never returned, logged or put in an event.

``config`` is validated by the kind's own model (casework.integrations.<kind>); a change merges into what is
there, so an admin can rename a channel without sending the bot token again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.db.models import Integration
from casework.db.types import utcnow
from casework.errors import IntegrationNotFound, ValidationFailed
from casework.events import EventType
from casework.ids import new_id
from casework.integrations import kinds
from casework.integrations.base import IntegrationConfig, Kind
from casework.secrets import SecretBox
from casework.services import events
from casework.services.auth import Principal
from casework.services.pagination import to_json_time
from casework.services.projects import get_project
from casework.services.webhooks import check_url


def kind_of(name: str) -> Kind:
    found = kinds().get(name)
    if found is None:
        raise ValidationFailed(
            f"kind must be one of {sorted(kinds())}, not {name!r}.",
            details={"field": "kind", "allowed": sorted(kinds())},
        )
    return found


def _check_events(kind: Kind, events: Sequence[str] | None) -> list[str]:
    chosen = list(dict.fromkeys(events)) if events is not None else list(kind.default_events)
    unknown = [e for e in chosen if e not in kind.events]
    if not chosen or unknown:
        raise ValidationFailed(
            f"events for {kind.name} must list some of {sorted(kind.events)}."
            + (f" Not supported: {unknown}." if unknown else ""),
            details={"field": "events", "unknown": unknown, "allowed": sorted(kind.events)},
        )
    return chosen


def _validated(kind: Kind, values: dict[str, Any], *, allow_private: bool) -> IntegrationConfig:
    try:
        config = kind.config.model_validate(values)
    except ValidationError as exc:
        problems = [
            {"loc": ["config", *exc_loc], "message": item["msg"]}
            for item in exc.errors()
            for exc_loc in [list(item.get("loc", ()))]
        ]
        first = problems[0]
        raise ValidationFailed(
            f"{'.'.join(str(p) for p in first['loc'])}: {first['message']}",
            details={"errors": problems, "kind": kind.name},
        ) from None
    for name in kind.config.URLS:
        url = getattr(config, name, None)
        if url:
            check_url(str(url), allow_private=allow_private)
    return config


def _split(kind: Kind, config: IntegrationConfig) -> tuple[dict[str, Any], dict[str, str]]:
    values = config.model_dump(mode="json")
    secrets = {name: values.pop(name) for name in kind.config.SECRETS if values.get(name) is not None}
    return values, secrets


def open_secrets(integration: Integration, box: SecretBox) -> dict[str, str]:
    opened: dict[str, str] = json.loads(box.open(integration.secrets))
    return opened


def integration_record(integration: Integration, box: SecretBox | None = None) -> dict[str, Any]:
    """An integration as the API shows it: its config without secrets, and which secrets are set."""
    secrets_set = sorted(open_secrets(integration, box)) if box is not None else []
    return {
        "id": integration.id,
        "kind": integration.kind,
        "name": integration.name,
        "project_id": integration.project_id,
        "events": list(integration.events),
        "config": dict(integration.config),
        "secrets_set": secrets_set,
        "enabled": integration.enabled,
        "inbound_path": f"/api/v1/integrations/{integration.id}/inbound",
        "created_at": to_json_time(integration.created_at),
        "created_by": integration.created_by,
        "updated_at": to_json_time(integration.updated_at),
    }


def create_integration(
    session: Session,
    *,
    principal: Principal,
    box: SecretBox,
    kind: str,
    config: dict[str, Any],
    project_id: str | None = None,
    events: Sequence[str] | None = None,
    name: str = "",
    enabled: bool = True,
    allow_private: bool = False,
) -> Integration:
    principal.require_admin()
    found = kind_of(kind)
    if project_id is not None:
        get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    public, secrets = _split(found, _validated(found, config, allow_private=allow_private))
    now = utcnow()
    integration = Integration(
        id=new_id("int"),
        workspace_id=principal.workspace_id,
        project_id=project_id,
        kind=found.name,
        name=name or found.title,
        events=_check_events(found, events),
        config=public,
        secrets=box.seal(json.dumps(secrets)),
        enabled=enabled,
        created_at=now,
        created_by=principal.identity,
        updated_at=now,
    )
    session.add(integration)
    session.flush()
    _record(session, EventType.integration_created, integration, box, principal)
    return integration


def _record(
    session: Session,
    type: EventType,
    integration: Integration,
    box: SecretBox,
    principal: Principal,
    before: dict[str, Any] | None = None,
) -> None:
    """The audit event of an admin's change: the integration as the API shows it, so without its secrets."""
    events.emit(
        session,
        type,
        workspace_id=integration.workspace_id,
        project_id=integration.project_id,
        actor=principal.identity,
        object_type="integration",
        object_id=integration.id,
        data=integration_record(integration, box),
        before=before,
    )


def get_integration(session: Session, *, principal: Principal, integration_id: str) -> Integration:
    principal.require_admin()
    integration = session.get(Integration, integration_id)
    if integration is None or integration.workspace_id != principal.workspace_id:
        raise IntegrationNotFound(
            f"No integration with id {integration_id!r}.", details={"integration_id": integration_id}
        )
    return integration


def list_integrations(
    session: Session, *, principal: Principal, project_id: str | None = None
) -> list[Integration]:
    principal.require_admin()
    query = select(Integration).where(Integration.workspace_id == principal.workspace_id)
    if project_id is not None:
        query = query.where(Integration.project_id == project_id)
    return list(session.execute(query.order_by(Integration.created_at, Integration.id)).scalars())


def update_integration(
    session: Session,
    *,
    principal: Principal,
    box: SecretBox,
    integration_id: str,
    changes: dict[str, Any],
    allow_private: bool = False,
) -> Integration:
    """Change any of name, events, enabled, config. ``config`` is merged: keys not sent keep their values
    (secrets included); a key sent as null goes back to its default."""
    integration = get_integration(session, principal=principal, integration_id=integration_id)
    before = integration_record(integration, box)
    kind = kind_of(integration.kind)
    if "config" in changes:
        merged = {**integration.config, **open_secrets(integration, box)}
        for key, value in (changes["config"] or {}).items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        public, secrets = _split(kind, _validated(kind, merged, allow_private=allow_private))
        integration.config = public
        integration.secrets = box.seal(json.dumps(secrets))
    if "events" in changes:
        integration.events = _check_events(kind, changes["events"])
    if "name" in changes:
        integration.name = changes["name"]
    if "enabled" in changes:
        integration.enabled = bool(changes["enabled"])
    integration.updated_at = utcnow()
    _record(session, EventType.integration_updated, integration, box, principal, before=before)
    return integration


def delete_integration(
    session: Session, *, principal: Principal, box: SecretBox, integration_id: str
) -> None:
    integration = get_integration(session, principal=principal, integration_id=integration_id)
    _record(session, EventType.integration_deleted, integration, box, principal)
    session.delete(integration)


# --- for inbound requests (no API key: the tool's own signature authenticates them) --------------------------


@dataclass(frozen=True)
class InboundTarget:
    integration_id: str
    kind: str
    workspace_id: str
    project_id: str | None
    config: dict[str, Any]
    secrets: dict[str, str]


def inbound_target(session: Session, *, integration_id: str, box: SecretBox) -> InboundTarget:
    """The integration a tool's request is addressed to; 404 when there is none or it is disabled (a tool
    then shows its own error, and the admin sees it in the tool's delivery log)."""
    integration = session.get(Integration, integration_id)
    if integration is None or not integration.enabled:
        raise IntegrationNotFound(
            f"No enabled integration with id {integration_id!r}.", details={"integration_id": integration_id}
        )
    return InboundTarget(
        integration_id=integration.id,
        kind=integration.kind,
        workspace_id=integration.workspace_id,
        project_id=integration.project_id,
        config=dict(integration.config),
        secrets=open_secrets(integration, box),
    )
