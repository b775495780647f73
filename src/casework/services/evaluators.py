"""The evaluator registry: custom evaluators per project, versioned; built-ins added on first use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casework.db.dialect import insert_ignoring_conflict
from casework.db.models import Evaluator, Project, Run
from casework.db.types import utcnow
from casework.definitions import BUILTINS, EvaluatorDefinition, validate
from casework.errors import EvaluatorNotFound, ValidationFailed
from casework.events import EventType
from casework.ids import new_id
from casework.services import events, evidence
from casework.services.auth import Principal
from casework.services.pagination import to_json_time
from casework.services.projects import get_or_create_run, get_project, project_in_workspace


def definition_of(evaluator: Evaluator) -> EvaluatorDefinition:
    return EvaluatorDefinition(
        name=evaluator.name,
        options=tuple(evaluator.options),
        evaluation_system_prompt=evaluator.evaluation_system_prompt,
        evaluation_human_prompt=evaluator.evaluation_human_prompt,
        reeval_system_prompt=evaluator.reeval_system_prompt,
        reeval_human_prompt=evaluator.reeval_human_prompt,
        model=evaluator.model,
        ambiguity_threshold=evaluator.ambiguity_threshold,
        reeval=evaluator.reeval,  # type: ignore[arg-type]
        kind=evaluator.kind,  # type: ignore[arg-type]
        memory_mode=evaluator.memory_mode,  # type: ignore[arg-type]
        memory_precision_target=evaluator.memory_precision_target,
        memory_k=evaluator.memory_k,
        memory_min_score=evaluator.memory_min_score,
        memory_candidates=evaluator.memory_candidates,
        spot_check_rate=evaluator.spot_check_rate,
        judge_spot_check_rate=evaluator.judge_spot_check_rate,
        ambiguity_mode=evaluator.ambiguity_mode,  # type: ignore[arg-type]
        target_agreement=evaluator.target_agreement,
        reviewers_required=evaluator.reviewers_required,
        ordered=evaluator.ordered,
    )


# What PATCH may change: everything but the name (another name is another evaluator).
CHANGEABLE = frozenset(
    {
        "options",
        "evaluation_system_prompt",
        "evaluation_human_prompt",
        "reeval_system_prompt",
        "reeval_human_prompt",
        "model",
        "ambiguity_threshold",
        "reeval",
        "memory_mode",
        "memory_precision_target",
        "memory_k",
        "memory_min_score",
        "memory_candidates",
        "spot_check_rate",
        "judge_spot_check_rate",
        "ambiguity_mode",
        "target_agreement",
        "reviewers_required",
        "ordered",
    }
)


def update_evaluator(
    session: Session, *, principal: Principal, evaluator_id: str, changes: dict[str, Any]
) -> tuple[Evaluator, bool]:
    """A new version of the evaluator with ``changes`` applied to its current definition (built-ins too:
    their memory settings and threshold are the project's to set). Unchanged: the current version."""
    principal.require_write()
    evaluator = get_evaluator(session, principal=principal, evaluator_id=evaluator_id)
    current = latest(session, project_id=evaluator.project_id, name=evaluator.name)
    assert current is not None
    unknown = set(changes) - CHANGEABLE
    if unknown:
        raise ValidationFailed(
            f"These fields cannot be changed: {sorted(unknown)}.", details={"fields": sorted(unknown)}
        )
    values = {**asdict(definition_of(current)), **changes}
    if "options" in changes:
        values["options"] = tuple(changes["options"])
    definition = EvaluatorDefinition(**values)
    validate(definition)
    return _register(
        session,
        project_id=current.project_id,
        definition=definition,
        actor=principal.identity,
        builtin=current.builtin,
    )


def rollback_evaluator(
    session: Session, *, principal: Principal, evaluator_id: str, version: int
) -> tuple[Evaluator, bool]:
    """Make version ``version`` current again: a new version with its definition, ``restored_from`` naming it
    (and evaluator.updated written, as for any new version). When the current version already has that
    definition, it stays current and nothing is made."""
    principal.require_write()
    evaluator = get_evaluator(session, principal=principal, evaluator_id=evaluator_id)
    target = session.execute(
        select(Evaluator).where(
            Evaluator.project_id == evaluator.project_id,
            Evaluator.name == evaluator.name,
            Evaluator.version == version,
        )
    ).scalar_one_or_none()
    if target is None:
        current = latest(session, project_id=evaluator.project_id, name=evaluator.name)
        raise ValidationFailed(
            f"Evaluator {evaluator.name!r} has no version {version}.",
            details={"field": "version", "latest": current.version if current else None},
        )
    return _register(
        session,
        project_id=evaluator.project_id,
        definition=definition_of(target),
        actor=principal.identity,
        builtin=target.builtin,
        restored_from=version,
    )


def evaluator_versions(session: Session, *, principal: Principal, evaluator_id: str) -> list[Evaluator]:
    """Every version of this evaluator's name, newest first: its history."""
    evaluator = get_evaluator(session, principal=principal, evaluator_id=evaluator_id)
    return list(
        session.execute(
            select(Evaluator)
            .where(Evaluator.project_id == evaluator.project_id, Evaluator.name == evaluator.name)
            .order_by(Evaluator.version.desc())
        ).scalars()
    )


def latest(session: Session, *, project_id: str, name: str) -> Evaluator | None:
    return session.execute(
        select(Evaluator)
        .where(Evaluator.project_id == project_id, Evaluator.name == name)
        .order_by(Evaluator.version.desc())
        .limit(1)
    ).scalar_one_or_none()


def _register(
    session: Session,
    *,
    project_id: str,
    definition: EvaluatorDefinition,
    actor: str,
    builtin: bool = False,
    restored_from: int | None = None,
) -> tuple[Evaluator, bool]:
    while True:
        current = latest(session, project_id=project_id, name=definition.name)
        if current is not None and definition_of(current) == definition:
            return current, False
        version = current.version + 1 if current else 1
        values = {k: v for k, v in asdict(definition).items() if k != "description"}
        values.update(
            id=new_id("evl"),
            project_id=project_id,
            version=version,
            options=list(definition.options),
            builtin=builtin,
            restored_from=restored_from,
            created_at=utcnow(),
            created_by=actor,
        )
        # Two registrations racing for the same version: one wins, the other reads again and compares.
        if insert_ignoring_conflict(
            session, Evaluator, values, conflict_columns=["project_id", "name", "version"]
        ):
            made = session.get_one(Evaluator, values["id"])
            events.emit(
                session,
                EventType.evaluator_updated,
                workspace_id=session.get_one(Project, project_id).workspace_id,
                project_id=project_id,
                actor=actor,
                object_type="evaluator",
                object_id=made.id,
                data=evaluator_record(made),
                before=evaluator_record(current) if current is not None else None,
            )
            return made, True


def evaluator_record(evaluator: Evaluator) -> dict[str, Any]:
    """An evaluator version as the API and events show it (with the method its memory's evidence is kept
    under: when that changes, the evidence is replayed afresh)."""
    definition = definition_of(evaluator)
    return {
        **{k: v for k, v in asdict(definition).items() if k != "description"},
        "options": list(definition.options),
        "id": evaluator.id,
        "project_id": evaluator.project_id,
        "version": evaluator.version,
        "builtin": evaluator.builtin,
        "restored_from": evaluator.restored_from,
        "created_at": to_json_time(evaluator.created_at),
        "memory_method": evidence.memory_method(definition),
    }


def register_evaluator(
    session: Session, *, principal: Principal, project_id: str, definition: EvaluatorDefinition
) -> tuple[Evaluator, bool]:
    """The evaluator's current version, and whether this call made it: an unchanged definition is the same
    version; a changed one is the next."""
    principal.require_write()
    get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    if definition.name in BUILTINS:
        raise ValidationFailed(
            f"{definition.name!r} is a built-in evaluator: name it by string, or register yours under another name.",
            details={"field": "name", "builtins": sorted(BUILTINS)},
        )
    validate(definition)
    return _register(session, project_id=project_id, definition=definition, actor=principal.identity)


def find_evaluators(
    session: Session, *, principal: Principal, project_id: str, names: Sequence[str]
) -> list[Evaluator] | None:
    """Like :func:`resolve_evaluators`, reading only: None when a built-in has to be added first."""
    try:
        return resolve_evaluators(
            session, principal=principal, project_id=project_id, names=names, add_builtins=False
        )
    except _BuiltinMissing:
        return None


class _BuiltinMissing(Exception):
    pass


def resolve_evaluators(
    session: Session,
    *,
    principal: Principal,
    project_id: str,
    names: Sequence[str],
    add_builtins: bool = True,
) -> list[Evaluator]:
    """The current version of each named evaluator; a built-in named for the first time is added to the project."""
    get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    found = []
    for name in dict.fromkeys(names):
        evaluator = latest(session, project_id=project_id, name=name)
        if evaluator is None and name in BUILTINS and not add_builtins:
            raise _BuiltinMissing(name)
        if evaluator is None and name in BUILTINS:
            evaluator, _ = _register(
                session, project_id=project_id, definition=BUILTINS[name], actor="casework", builtin=True
            )
        if evaluator is None:
            raise EvaluatorNotFound(
                f"No evaluator {name!r} in this project. Register it first, or use a built-in: {sorted(BUILTINS)}.",
                details={"name": name, "builtins": sorted(BUILTINS)},
            )
        found.append(evaluator)
    return found


def list_evaluators(session: Session, *, principal: Principal, project_id: str) -> list[Evaluator]:
    """The current version of each of the project's evaluators, by name."""
    get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    newest = (
        select(Evaluator.name, func.max(Evaluator.version).label("version"))
        .where(Evaluator.project_id == project_id)
        .group_by(Evaluator.name)
        .subquery()
    )
    return list(
        session.execute(
            select(Evaluator)
            .join(newest, (Evaluator.name == newest.c.name) & (Evaluator.version == newest.c.version))
            .where(Evaluator.project_id == project_id)
            .order_by(Evaluator.name)
        ).scalars()
    )


def get_evaluator(session: Session, *, principal: Principal, evaluator_id: str) -> Evaluator:
    evaluator = session.get(Evaluator, evaluator_id)
    if evaluator is None or not project_in_workspace(
        session, workspace_id=principal.workspace_id, project_id=evaluator.project_id
    ):
        raise EvaluatorNotFound(
            f"No evaluator with id {evaluator_id!r}.", details={"evaluator_id": evaluator_id}
        )
    return evaluator


def reviewers_required_for(session: Session, *, project_id: str, name: str) -> int:
    """How many independent decisions a new review of this evaluator needs (1 without an evaluator)."""
    evaluator = latest(session, project_id=project_id, name=name)
    return evaluator.reviewers_required if evaluator is not None else 1


def options_for(session: Session, *, project_id: str, name: str) -> list[str] | None:
    evaluator = latest(session, project_id=project_id, name=name)
    if evaluator is None and name in BUILTINS:
        return list(BUILTINS[name].options)
    return list(evaluator.options) if evaluator else None


def start_run(
    session: Session, *, principal: Principal, project_id: str, name: str, evaluators: Sequence[str] | None
) -> tuple[Run, bool]:
    """Get or create a run; with ``evaluators``, attach them (built-ins are added to the project on first use)."""
    run, created = get_or_create_run(
        session, workspace_id=principal.workspace_id, project_id=project_id, name=name
    )
    if evaluators is not None:
        resolve_evaluators(session, principal=principal, project_id=project_id, names=evaluators)
        run.evaluators = list(dict.fromkeys(evaluators))
    return run, created


def evaluator_names(session: Session, project_id: str) -> list[str]:
    """The names of a project's evaluators, whatever their versions."""
    return list(
        session.execute(
            select(Evaluator.name)
            .where(Evaluator.project_id == project_id)
            .distinct()
            .order_by(Evaluator.name)
        ).scalars()
    )
