"""Controls: evaluation memory. Created from expert feedback (or written up front), edited with every version
kept, retired rather than erased."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from casework.db.dialect import contains_text, json_array_contains
from casework.db.models import (
    Control,
    ControlVersion,
    Decision,
    DecisionControl,
    Evaluation,
    EvaluationControl,
    Review,
)
from casework.db.types import utcnow
from casework.errors import ControlNotFound, ValidationFailed
from casework.events import EventType
from casework.ids import new_id
from casework.memory import index as memory_index
from casework.services import events
from casework.services.auth import Principal
from casework.services.pagination import decode_cursor, encode_cursor, to_json_time
from casework.services.projects import get_project, project_in_workspace

CONTROL_STATUSES = ("active", "retired", "superseded")
_EDITABLE = ("classification", "reasoning", "tags", "status")


def snapshot(control: Control) -> dict[str, Any]:
    """The editable state of a control, as audit events record it."""
    return {
        "classification": control.classification,
        "reasoning": control.reasoning,
        "tags": list(control.tags),
        "status": control.status,
        "version": control.version,
    }


def control_record(control: Control) -> dict[str, Any]:
    """A control as the API and events show it."""
    return {
        "id": control.id,
        "project_id": control.project_id,
        "evaluator_type": control.evaluator_type,
        "classification": control.classification,
        "reasoning": control.reasoning,
        "tags": list(control.tags),
        "reviewer": control.reviewer,
        "status": control.status,
        "version": control.version,
        "review_id": control.review_id,
        "query": control.query,
        "response": control.response,
        "context": control.context,
        "created_at": to_json_time(control.created_at),
        "created_by": control.created_by,
        "updated_at": to_json_time(control.updated_at),
        "attention": list(control.attention or []),
    }


def _add_version(session: Session, control: Control, *, actor: str) -> None:
    session.add(
        ControlVersion(
            control_id=control.id,
            version=control.version,
            classification=control.classification,
            reasoning=control.reasoning,
            tags=list(control.tags),
            status=control.status,
            changed_by=actor,
            changed_at=control.updated_at,
        )
    )


def create_control(
    session: Session,
    *,
    workspace_id: str,
    project_id: str,
    evaluator_type: str,
    classification: str,
    reasoning: str,
    tags: list[str],
    reviewer: str,
    actor: str,
    review_id: str | None = None,
    query: str | None = None,
    response: str | None = None,
    context: str | None = None,
) -> Control:
    now = utcnow()
    control = Control(
        id=new_id("ctl"),
        project_id=project_id,
        evaluator_type=evaluator_type,
        classification=classification,
        reasoning=reasoning,
        tags=list(tags),
        reviewer=reviewer,
        status="active",
        version=1,
        review_id=review_id,
        query=query,
        response=response,
        context=context,
        created_at=now,
        created_by=actor,
        updated_at=now,
        attention=[],
    )
    session.add(control)
    memory_index.follow(session, control, was_active=False, old_terms=frozenset())
    _add_version(session, control, actor=actor)
    events.emit(
        session,
        EventType.control_created,
        workspace_id=workspace_id,
        project_id=project_id,
        actor=actor,
        object_type="control",
        object_id=control.id,
        data=control_record(control),
    )
    return control


def author_control(
    session: Session,
    *,
    principal: Principal,
    project_id: str,
    evaluator_type: str,
    classification: str,
    reasoning: str,
    tags: list[str],
    reviewer: str,
    query: str | None = None,
    response: str | None = None,
    context: str | None = None,
) -> Control:
    """A control written up front, with no review behind it: a policy note for the judge."""
    principal.require_write()
    get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    return create_control(
        session,
        workspace_id=principal.workspace_id,
        project_id=project_id,
        evaluator_type=evaluator_type,
        classification=classification,
        reasoning=reasoning,
        tags=tags,
        reviewer=reviewer,
        actor=principal.identity,
        query=query,
        response=response,
        context=context,
    )


def get_control(session: Session, *, principal: Principal, control_id: str) -> Control:
    control = session.get(Control, control_id)
    return _visible(session, principal, control, control_id)


def _visible(session: Session, principal: Principal, control: Control | None, control_id: str) -> Control:
    """The control, if it exists in the caller's workspace; another workspace's is reported as missing."""
    if control is None or not project_in_workspace(
        session, workspace_id=principal.workspace_id, project_id=control.project_id
    ):
        raise ControlNotFound(f"No control with id {control_id!r}.", details={"control_id": control_id})
    return control


def _get_for_update(session: Session, *, principal: Principal, control_id: str) -> Control:
    control = session.execute(
        select(Control)
        .where(Control.id == control_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    return _visible(session, principal, control, control_id)


def update_control(
    session: Session, *, principal: Principal, control_id: str, changes: dict[str, Any]
) -> Control:
    """Apply ``changes`` (any of classification, reasoning, tags, status) as a new version."""
    principal.require_write()
    unknown = set(changes) - set(_EDITABLE)
    if unknown:
        raise ValidationFailed(
            f"These fields cannot be changed: {sorted(unknown)}.", details={"fields": sorted(unknown)}
        )
    if "status" in changes and changes["status"] not in CONTROL_STATUSES:
        raise ValidationFailed(
            f"status must be one of {list(CONTROL_STATUSES)}.", details={"allowed": list(CONTROL_STATUSES)}
        )
    control = _get_for_update(session, principal=principal, control_id=control_id)
    before = snapshot(control)
    effective = {k: v for k, v in changes.items() if before[k] != v}
    if not effective:
        return control
    was_active, old_terms = control.status == "active", memory_index.terms_of(control)
    for name, value in effective.items():
        setattr(control, name, list(value) if name == "tags" else value)
    if {"classification", "reasoning"} & set(effective):
        control.attention = []  # a person has acted on it
    memory_index.follow(session, control, was_active=was_active, old_terms=old_terms)
    control.version += 1
    control.updated_at = utcnow()
    _add_version(session, control, actor=principal.identity)
    retired = effective.get("status") == "retired"
    events.emit(
        session,
        EventType.control_retired if retired else EventType.control_updated,
        workspace_id=principal.workspace_id,
        project_id=control.project_id,
        actor=principal.identity,
        object_type="control",
        object_id=control.id,
        data=control_record(control),
        before=before,
    )
    return control


def flag_for_attention(session: Session, *, control_ids: list[str], note: dict[str, Any]) -> None:
    """Mark controls that drove a decision a person overturned: the control page shows them as a conflict."""
    for control in session.execute(
        select(Control)
        .where(Control.id.in_(control_ids))
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalars():
        control.attention = [*list(control.attention or []), note][-20:]


@dataclass
class ControlUsage:
    """What a control did: the reviews memory resolved with it (still standing), and the evaluations that saw
    it in {memories} or voted with it."""

    resolved_reviews: int
    reviews: list[Review]
    evaluations_informed: int
    evaluations_decided: int


def control_usage(
    session: Session, *, principal: Principal, control_id: str, limit: int = 50
) -> ControlUsage:
    control = get_control(session, principal=principal, control_id=control_id)
    standing = (
        select(Decision.review_id)
        .join(DecisionControl, DecisionControl.decision_id == Decision.id)
        .where(
            DecisionControl.control_id == control.id, Decision.by == "memory", Decision.status == "current"
        )
    )
    count = session.execute(select(func.count()).select_from(standing.subquery())).scalar_one()
    reviews = list(
        session.execute(
            select(Review).where(Review.id.in_(standing)).order_by(Review.resolved_at.desc()).limit(limit)
        ).scalars()
    )
    informed = session.execute(
        select(func.count()).where(EvaluationControl.control_id == control.id)
    ).scalar_one()
    decided = session.execute(
        select(func.count())
        .select_from(EvaluationControl)
        .join(Evaluation, Evaluation.id == EvaluationControl.evaluation_id)
        .where(
            EvaluationControl.control_id == control.id,
            Evaluation.ambiguous.is_(False),
            Evaluation.superseded_at.is_(None),
        )
    ).scalar_one()
    return ControlUsage(int(count), reviews, int(informed), int(decided))


def clear_attention(session: Session, *, principal: Principal, control_id: str) -> Control:
    """A person has looked at the control's conflicts."""
    principal.require_write()
    control = _get_for_update(session, principal=principal, control_id=control_id)
    control.attention = []
    return control


def retire_control(session: Session, *, principal: Principal, control_id: str) -> Control:
    """Retire: the control leaves evaluation memory but stays, with its history, for the audit."""
    return update_control(session, principal=principal, control_id=control_id, changes={"status": "retired"})


def control_history(session: Session, *, principal: Principal, control_id: str) -> list[ControlVersion]:
    """Every version, newest first."""
    control = get_control(session, principal=principal, control_id=control_id)
    return list(
        session.execute(
            select(ControlVersion)
            .where(ControlVersion.control_id == control.id)
            .order_by(ControlVersion.version.desc())
        ).scalars()
    )


@dataclass
class ControlPage:
    controls: list[Control]
    next_cursor: str | None


def list_controls(
    session: Session,
    *,
    principal: Principal,
    project_id: str,
    evaluator_type: str | None = None,
    tag: str | None = None,
    reviewer: str | None = None,
    status: str = "active",
    q: str | None = None,
    created_after: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> ControlPage:
    """Newest first."""
    get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    query = select(Control).where(Control.project_id == project_id)
    if status != "all":
        query = query.where(Control.status == status)
    if evaluator_type:
        query = query.where(Control.evaluator_type == evaluator_type)
    if reviewer:
        query = query.where(Control.reviewer == reviewer)
    if tag:
        query = query.where(json_array_contains(session, Control.tags, tag))
    if created_after:
        query = query.where(Control.created_at > created_after)
    for word in (q or "").split():
        query = query.where(
            or_(
                contains_text(session, Control.reasoning, word),
                contains_text(session, Control.query, word),
                contains_text(session, Control.response, word),
            )
        )
    if cursor:
        created_at, control_id = decode_cursor(cursor, types=(datetime, str))
        query = query.where(
            or_(
                Control.created_at < created_at,
                and_(Control.created_at == created_at, Control.id < control_id),
            )
        )
    rows = list(
        session.execute(
            query.order_by(Control.created_at.desc(), Control.id.desc()).limit(limit + 1)
        ).scalars()
    )
    next_cursor = encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return ControlPage(controls=rows[:limit], next_cursor=next_cursor)
