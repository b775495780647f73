"""The evaluator registry: custom evaluators per project, versioned; built-ins added on first use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casework.db.dialect import insert_ignoring_conflict
from casework.db.models import Evaluator, Run
from casework.db.types import utcnow
from casework.errors import EvaluatorNotFound, ValidationFailed
from casework.evaluators.definitions import BUILTINS, EvaluatorDefinition, validate
from casework.ids import new_id
from casework.services.auth import Principal
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
    )


def latest(session: Session, *, project_id: str, name: str) -> Evaluator | None:
    return session.execute(
        select(Evaluator)
        .where(Evaluator.project_id == project_id, Evaluator.name == name)
        .order_by(Evaluator.version.desc())
        .limit(1)
    ).scalar_one_or_none()


def _register(
    session: Session, *, project_id: str, definition: EvaluatorDefinition, actor: str, builtin: bool = False
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
            created_at=utcnow(),
            created_by=actor,
        )
        # Two registrations racing for the same version: one wins, the other reads again and compares.
        if insert_ignoring_conflict(
            session, Evaluator, values, conflict_columns=["project_id", "name", "version"]
        ):
            return session.get_one(Evaluator, values["id"]), True


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
