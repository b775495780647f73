"""Regression runs of evaluator versions on a golden set: started here (queued as worker jobs of kind
``golden.run``, one per chunk of items), their verdicts stored by the worker, and measured when the last chunk
is in: per evaluator version, accuracy and Cohen's kappa against the human answers, confusion, ambiguity rate,
tokens, latency, the set's thresholds, and the per-item diff with the previous run of the same evaluator."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casework.db.dialect import fast_insert
from casework.db.models import (
    Control,
    Evaluator,
    GoldenItem,
    GoldenResult,
    GoldenRun,
    GoldenSet,
    Job,
    Project,
)
from casework.db.types import utcnow
from casework.definitions import DEFAULT_MODEL, EvaluatorDefinition, Interaction, validate
from casework.errors import EvaluatorNotFound, GoldenRunNotFound, ValidationFailed
from casework.events import EventType
from casework.ids import new_id
from casework.services import events, risk_tiers
from casework.services.auth import Principal
from casework.services.evaluators import resolve_evaluators
from casework.services.golden_metrics import Outcome, check, cost, diff, measure, validate_prices
from casework.services.golden_sets import _version_or_current, get_golden_set, items_of
from casework.services.jobs import ClaimedJob, finish_job, queue_job
from casework.services.pagination import decode_cursor, encode_cursor, to_json_time

JOB_KIND = "golden.run"
CHUNK = 250  # items per job: a job's verdicts are stored in one transaction
MAX_REQUESTS_PER_SECOND = 10_000


@dataclass(frozen=True)
class RunEvaluatorSpec:
    """One evaluator of a run: a saved one by ``name`` ("name" or "name:version"), maybe with another
    ``model``; or a draft ``definition`` that is run without being saved."""

    name: str | None = None
    model: str | None = None
    definition: EvaluatorDefinition | None = None


def _saved_version(session: Session, *, principal: Principal, project_id: str, name: str) -> Evaluator:
    base, _, number = name.rpartition(":")
    if base and number.isdigit():
        evaluator = session.execute(
            select(Evaluator).where(
                Evaluator.project_id == project_id,
                Evaluator.name == base,
                Evaluator.version == int(number),
            )
        ).scalar_one_or_none()
        if evaluator is None:
            raise EvaluatorNotFound(
                f"No version {number} of evaluator {base!r} in this project.",
                details={"name": base, "version": int(number)},
            )
        return evaluator
    [found] = resolve_evaluators(session, principal=principal, project_id=project_id, names=[name])
    return found


def _definition_record(definition: EvaluatorDefinition) -> dict[str, Any]:
    """A draft's definition as the run stores it: the columns of an evaluator version."""
    record = {k: v for k, v in asdict(definition).items() if k != "description"}
    record["options"] = list(definition.options)
    return record


def _run_evaluators(
    session: Session, *, principal: Principal, project_id: str, wanted: Sequence[str | RunEvaluatorSpec]
) -> list[dict[str, Any]]:
    """What the run records of each evaluator: the saved version (``evaluator_id``), or for a draft or another
    model an id of this run's own with what makes it comparable (the definition, the model)."""
    entries: dict[Any, dict[str, Any]] = {}
    for spec in wanted:
        if isinstance(spec, str):
            spec = RunEvaluatorSpec(name=spec)
        if spec.definition is not None:
            validate(spec.definition)  # as registering it would
            record = _definition_record(spec.definition)
            key = ("draft", json.dumps(record, sort_keys=True))
            if key not in entries:
                run_key = new_id("evd")
                entries[key] = {
                    "evaluator_id": run_key,
                    "name": spec.definition.name,
                    "version": None,
                    "model": spec.definition.model,
                    "draft": True,
                    "definition": record,
                }
            continue
        assert spec.name is not None
        saved = _saved_version(session, principal=principal, project_id=project_id, name=spec.name)
        # "name" and "name:N" may be the same version: it runs once.
        if spec.model is None or spec.model == saved.model:
            entries.setdefault(
                saved.id,
                {
                    "evaluator_id": saved.id,
                    "name": saved.name,
                    "version": saved.version,
                    "model": saved.model,
                },
            )
        elif (saved.id, spec.model) not in entries:
            entries[(saved.id, spec.model)] = {
                "evaluator_id": new_id("evm"),
                "name": saved.name,
                "version": saved.version,
                "model": spec.model,
                "model_override": True,
                "source_evaluator_id": saved.id,
            }
    return list(entries.values())


def _evaluator_of(session: Session, run: GoldenRun, entry: dict[str, Any]) -> Evaluator | None:
    """The evaluator an entry of the run stands for: the saved version, or an unsaved one made from it (another
    model) or from the draft's definition. None when the saved version is gone."""
    if entry.get("draft"):
        return Evaluator(
            **entry["definition"],
            id=entry["evaluator_id"],
            project_id=run.project_id,
            version=0,
            builtin=False,
            created_at=run.created_at,
            created_by=run.created_by,
        )
    saved = session.get(Evaluator, entry.get("source_evaluator_id") or entry["evaluator_id"])
    if saved is None or not entry.get("model_override"):
        return saved
    columns = {column.key: getattr(saved, column.key) for column in Evaluator.__mapper__.column_attrs}
    return Evaluator(**{**columns, "id": entry["evaluator_id"], "model": entry["model"]})


def same_evaluator(one: dict[str, Any], other: dict[str, Any]) -> bool:
    """Whether two runs' entries ran the same thing: the same saved version with its own model, the same
    version with the same other model, or the same draft definition."""
    if one.get("draft") or other.get("draft"):
        return bool(one.get("draft") and other.get("draft") and one["definition"] == other["definition"])
    if one.get("model_override") or other.get("model_override"):
        return bool(
            one.get("model_override")
            and other.get("model_override")
            and one["source_evaluator_id"] == other["source_evaluator_id"]
            and one["model"] == other["model"]
        )
    return bool(one["evaluator_id"] == other["evaluator_id"])


def start_run(
    session: Session,
    *,
    principal: Principal,
    golden_set_id: str,
    evaluators: Sequence[str | RunEvaluatorSpec],
    memory: bool,
    version: int | None = None,
    prices: dict[str, Any] | None = None,
    requests_per_second: float | None = None,
) -> dict[str, Any]:
    """Queue a run of these evaluator versions (saved ones, saved ones with another model, or drafts) on a
    version of the set (the current one by default). Each evaluator judges the items meant for it (an item
    for no evaluator in particular is for all). ``prices`` (model to dollars per million prompt and
    completion tokens) are kept with the run for its cost estimate; ``requests_per_second`` (None: no limit
    but the worker's concurrency) goes with each of its jobs, and the worker holds its judge calls to it."""
    principal.require_write()
    if requests_per_second is not None and not (
        isinstance(requests_per_second, int | float)
        and math.isfinite(requests_per_second)
        and 0 < requests_per_second <= MAX_REQUESTS_PER_SECOND
    ):
        raise ValidationFailed(
            f"requests_per_second is a number above 0 and at most {MAX_REQUESTS_PER_SECOND}, "
            f"not {requests_per_second!r}.",
            details={"field": "requests_per_second"},
        )
    golden = get_golden_set(session, principal=principal, golden_set_id=golden_set_id)
    version = _version_or_current(golden, version)
    resolved = _run_evaluators(session, principal=principal, project_id=golden.project_id, wanted=evaluators)
    rows = session.execute(
        items_of(golden.id, version).with_only_columns(GoldenItem.id, GoldenItem.evaluator_type)
    ).all()
    counts = [sum(1 for _, kind in rows if kind is None or kind == e["name"]) for e in resolved]
    idle = [e for e, count in zip(resolved, counts, strict=True) if not count]
    if idle:
        # An evaluator with nothing to judge would be reported as a run over no items: refused, saying why.
        kinds = sorted({kind for _, kind in rows if kind is not None})
        names = ", ".join(repr(e["name"]) for e in idle)
        held = f"its items are for {', '.join(map(repr, kinds))}" if rows else "it has no items"
        raise ValidationFailed(
            f"No item of version {version} of this golden set is for {names}: {held}. An evaluator judges the "
            "items for its name (and those for no evaluator in particular); name a draft after the evaluator "
            "it would replace.",
            details={
                "evaluators": [e["name"] for e in idle],
                "drafts": [e["name"] for e in idle if e.get("draft")],
                "item_evaluators": kinds,
                "version": version,
            },
        )
    total = sum(counts)
    run = GoldenRun(
        id=new_id("glr"),
        golden_set_id=golden.id,
        project_id=golden.project_id,
        version=version,
        memory=memory,
        evaluators=resolved,
        prices=_prices_for(resolved, validate_prices(prices or {})),
        status="running",
        total=total,
        created_at=utcnow(),
        created_by=principal.identity,
    )
    session.add(run)
    session.flush()
    ids = [item_id for item_id, _ in rows]
    for number, start in enumerate(range(0, len(ids), CHUNK)):
        queue_job(
            session,
            kind=JOB_KIND,
            project_id=golden.project_id,
            payload={
                "run_id": run.id,
                "item_ids": ids[start : start + CHUNK],
                **({"requests_per_second": requests_per_second} if requests_per_second else {}),
            },
            dedupe_key=_job_key(run.id, number),  # also how the run finds its jobs
        )
    return run_record(session, run)


def _prices_for(entries: list[dict[str, Any]], prices: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The prices of the models this run uses (an evaluator without a model of its own uses the default)."""
    models = {entry.get("model") or DEFAULT_MODEL for entry in entries}
    return {
        "default_model": DEFAULT_MODEL,
        "models": {model: prices[model] for model in sorted(models) if model in prices},
    }


def _priced(run: GoldenRun, entry: dict[str, Any], measured: dict[str, Any]) -> dict[str, Any]:
    table = run.prices or {}
    model = entry.get("model") or table.get("default_model") or DEFAULT_MODEL
    price = (table.get("models") or {}).get(model)
    return {"priced_model": model, "price": price, "cost_usd": cost(measured, price)}


def _sum_or_none(values: list[Any]) -> Any:
    if any(v is None for v in values):
        return None
    total = sum(values)
    return round(total, 6) if isinstance(total, float) else total


def _job_key(run_id: str, number: int) -> str:
    return f"{JOB_KIND}:{run_id}:{number}"


def fail_run(session: Session, *, run_id: str, error: str) -> bool:
    """A run whose job failed for good ends ``failed`` with the error (never left ``running``);
    ``golden_run.failed`` is written. False when it had already ended."""
    run = session.execute(
        select(GoldenRun).where(GoldenRun.id == run_id).with_for_update()
    ).scalar_one_or_none()
    if run is None or run.status != "running":
        return False
    run.status = "failed"
    run.error = error[:4000]
    _finish(session, run, EventType.golden_run_failed)
    return True


def _finish(session: Session, run: GoldenRun, type: EventType) -> None:
    """The run is over (``run.status`` says how): its end time, and the event with the run as it is now."""
    run.completed_at = utcnow()
    session.flush()
    events.emit(
        session,
        type,
        workspace_id=session.get_one(Project, run.project_id).workspace_id,
        project_id=run.project_id,
        actor="casework-worker",
        object_type="golden_run",
        object_id=run.id,
        data=run_record(session, run),
    )


def _failed_job(session: Session, run: GoldenRun) -> tuple[str, Any] | None:
    """The error of a job of this run that failed for good (its worker died on every attempt, say), if any:
    such a run can never complete."""
    found = session.execute(
        select(Job.last_error, Job.finished_at)
        .where(
            Job.project_id == run.project_id,
            Job.status == "failed",
            Job.kind == JOB_KIND,
            Job.dedupe_key.like(f"{JOB_KIND}:{run.id}:%"),
        )
        .limit(1)
    ).first()
    if found is None:
        return None
    return found.last_error or "a job of this run failed", found.finished_at


@dataclass(frozen=True)
class WorkItem:
    item_id: str
    expected: str
    interaction: Interaction
    evaluators: list[Evaluator]
    exclude: tuple[str, ...]  # the control made from the item's own review: memory must not see the answer


@dataclass(frozen=True)
class Work:
    run_id: str
    memory: bool
    items: list[WorkItem]


def work_of(session: Session, *, run_id: str, item_ids: Sequence[str]) -> Work | None:
    """What one job of a run has to judge; None when the run is gone (or already complete)."""
    run = session.get(GoldenRun, run_id)
    if run is None or run.status != "running":
        return None
    evaluators = [_evaluator_of(session, run, entry) for entry in run.evaluators]
    present = [e for e in evaluators if e is not None]
    done = {
        (item_id, evaluator_id)
        for item_id, evaluator_id in session.execute(
            select(GoldenResult.item_id, GoldenResult.evaluator_id).where(
                GoldenResult.run_id == run_id, GoldenResult.item_id.in_(list(item_ids))
            )
        ).all()
    }
    items = session.execute(
        select(GoldenItem).where(GoldenItem.id.in_(list(item_ids))).order_by(GoldenItem.id)
    )
    work = []
    for item in items.scalars():
        wanted = [
            e
            for e in present
            if (item.evaluator_type is None or item.evaluator_type == e.name) and (item.id, e.id) not in done
        ]
        if wanted:
            work.append(
                WorkItem(
                    item_id=item.id,
                    expected=item.expected,
                    interaction=Interaction(query=item.query, response=item.response, context=item.context),
                    evaluators=wanted,
                    exclude=(item.source_control_id,) if item.source_control_id else (),
                )
            )
    return Work(run_id=run.id, memory=run.memory, items=work)


def store_results(
    session: Session, *, claimed: ClaimedJob | None, run_id: str, results: list[dict[str, Any]]
) -> bool:
    """Store a job's verdicts and mark it done, in one transaction (nothing, when its lease was lost); the run
    is measured and completed when this was its last missing piece. Returns whether the run completed now."""
    if claimed is not None and not finish_job(session, claimed=claimed):
        return False
    run = session.get(GoldenRun, run_id)
    if run is not None:
        results = routed(session, run, results)
    now = utcnow()
    fast_insert(
        session,
        GoldenResult.__table__,
        [{**result, "run_id": run_id, "created_at": now} for result in results],
        skip_conflicts=True,
    )
    return complete_if_done(session, run_id=run_id)


def routed(session: Session, run: GoldenRun, verdicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The verdicts as stored: ``ambiguous`` says whether each would have gone to people, as the project's
    routing policy sends a live verdict there (casework.services.risk_tiers.route: the judge unsure, or a tier
    that sends it to people whatever the judge said), with the item's ``metadata`` and the tags of the controls
    memory used. Each verdict's ``control_ids`` and ``subject`` (who decided: judge or memory) are read here,
    not stored. Spot checks (a random sample of the rest) are not counted."""
    policy = risk_tiers.policy_of(session, run.project_id)
    extra = [(verdict.pop("control_ids", ()), verdict.pop("subject", "judge")) for verdict in verdicts]
    if policy is None:
        return verdicts
    names = {entry["evaluator_id"]: entry["name"] for entry in run.evaluators}
    metadata: dict[str, dict[str, Any] | None] = dict(
        session.execute(
            select(GoldenItem.id, GoldenItem.attributes).where(
                GoldenItem.id.in_({verdict["item_id"] for verdict in verdicts})
            )
        ).all()
    )
    used = {control_id for control_ids, _ in extra for control_id in control_ids}
    tags = (
        dict(session.execute(select(Control.id, Control.tags).where(Control.id.in_(used))).all())
        if used
        else {}
    )
    for verdict, (control_ids, subject) in zip(verdicts, extra, strict=True):
        if verdict["error"] is not None or verdict["classification"] is None:
            continue
        routing = risk_tiers.route(
            policy,
            risk_tiers.Facts(
                evaluator=names[verdict["evaluator_id"]],
                classification=verdict["classification"],
                confidence=verdict["confidence"],
                ambiguous=verdict["ambiguous"],
                metadata=metadata.get(verdict["item_id"]) or {},
                control_tags=sorted({tag for c in control_ids for tag in tags.get(c) or ()}),
            ),
            automatic_rate=0.0,
            subject=subject,
            ambiguous_reason="ambiguous",
        )
        verdict["ambiguous"] = routing.needs_person
    return verdicts


def complete_if_done(session: Session, *, run_id: str) -> bool:
    # Locked: of two jobs finishing at once, the second sees the first's results and the run's new status.
    run = session.execute(
        select(GoldenRun).where(GoldenRun.id == run_id).with_for_update()
    ).scalar_one_or_none()
    if run is None or run.status != "running" or _done(session, run_id) < run.total:
        return False
    golden = session.get_one(GoldenSet, run.golden_set_id)
    metrics = []
    for evaluator in run.evaluators:
        outcomes = outcomes_of(session, run.id, evaluator["evaluator_id"])
        measured = measure(outcomes)
        checks = check(golden.thresholds, measured)
        metrics.append(
            {
                **evaluator,
                **measured,
                **_priced(run, evaluator, measured),
                "thresholds": checks,
                "passed": all(c["passed"] for c in checks),
                "diff": _diff_with_previous(
                    session, run, evaluator["evaluator_id"], evaluator["name"], outcomes
                ),
            }
        )
    run.metrics = metrics
    run.passed = all(m["passed"] for m in metrics)
    run.status = "completed"
    _finish(session, run, EventType.golden_run_completed)
    return True


def _done(session: Session, run_id: str) -> int:
    return session.execute(
        select(func.count()).select_from(GoldenResult).where(GoldenResult.run_id == run_id)
    ).scalar_one()


def outcomes_of(session: Session, run_id: str, evaluator_id: str) -> list[Outcome]:
    rows = session.execute(
        select(
            GoldenResult.item_id,
            GoldenResult.expected,
            GoldenResult.classification,
            GoldenResult.ambiguous,
            GoldenResult.error,
            GoldenResult.latency_ms,
            GoldenResult.prompt_tokens,
            GoldenResult.completion_tokens,
        ).where(GoldenResult.run_id == run_id, GoldenResult.evaluator_id == evaluator_id)
    ).all()
    return [
        Outcome(
            item_id=row.item_id,
            expected=row.expected,
            classification=row.classification,
            ambiguous=row.ambiguous,
            error=row.error is not None,
            latency_ms=row.latency_ms,
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
        )
        for row in rows
    ]


def _diff_with_previous(
    session: Session, run: GoldenRun, evaluator_id: str, name: str, outcomes: list[Outcome]
) -> dict[str, Any] | None:
    """Against the last completed run of an evaluator of this name on this set (whatever its version)."""
    earlier = session.execute(
        select(GoldenRun)
        .where(
            GoldenRun.golden_set_id == run.golden_set_id,
            GoldenRun.status == "completed",
            GoldenRun.id != run.id,
            GoldenRun.created_at <= run.created_at,
        )
        .order_by(GoldenRun.created_at.desc(), GoldenRun.id.desc())
    ).scalars()
    this = next(e for e in run.evaluators if e["evaluator_id"] == evaluator_id)
    for previous in earlier:
        named = [e for e in previous.evaluators if e["name"] == name]
        # Of the same name, the same thing run (the same draft, the same model) if there is one, else the saved
        # version with its own model.
        match = next((e for e in named if same_evaluator(e, this)), None) or next(
            (e for e in named if not e.get("draft") and not e.get("model_override")), None
        )
        match = match or (named[0] if named else None)
        if match is not None:
            return {
                "previous_run_id": previous.id,
                "previous_version": match["version"],
                "previous_memory": previous.memory,
                **diff(outcomes, outcomes_of(session, previous.id, match["evaluator_id"])),
            }
    return None


def get_run(session: Session, *, principal: Principal, golden_set_id: str, run_id: str) -> dict[str, Any]:
    golden = get_golden_set(session, principal=principal, golden_set_id=golden_set_id)
    run = session.get(GoldenRun, run_id)
    if run is None or run.golden_set_id != golden.id:
        raise GoldenRunNotFound(f"No run {run_id!r} of this golden set.", details={"run_id": run_id})
    return run_record(session, run, with_memory_contribution=True)


def list_results(
    session: Session,
    *,
    principal: Principal,
    golden_set_id: str,
    run_id: str,
    evaluator_id: str | None,
    outcome: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a run's per-item verdicts, in the order they were stored; ``outcome``: right, wrong,
    ambiguous or error."""
    get_run(session, principal=principal, golden_set_id=golden_set_id, run_id=run_id)
    query = (
        select(GoldenResult, GoldenItem)
        .join(GoldenItem, GoldenItem.id == GoldenResult.item_id)
        .where(GoldenResult.run_id == run_id)
    )
    if evaluator_id is not None:
        query = query.where(GoldenResult.evaluator_id == evaluator_id)
    if outcome == "right":
        query = query.where(
            GoldenResult.classification == GoldenResult.expected, GoldenResult.error.is_(None)
        )
    elif outcome == "wrong":
        query = query.where(
            (GoldenResult.classification.is_(None))
            | (GoldenResult.classification != GoldenResult.expected)
            | GoldenResult.error.is_not(None)
        )
    elif outcome == "ambiguous":
        query = query.where(GoldenResult.ambiguous.is_(True))
    elif outcome == "error":
        query = query.where(GoldenResult.error.is_not(None))
    if cursor:
        (after,) = decode_cursor(cursor, types=(int,))
        query = query.where(GoldenResult.id > after)
    rows = session.execute(query.order_by(GoldenResult.id).limit(limit + 1)).all()
    page = [
        {
            "item_id": result.item_id,
            "evaluator_id": result.evaluator_id,
            "query": item.query,
            "response": item.response,
            "expected": result.expected,
            "classification": result.classification,
            "correct": result.error is None and result.classification == result.expected,
            "confidence": result.confidence,
            "ambiguous": result.ambiguous,
            "reevaluated": result.reevaluated,
            "latency_ms": result.latency_ms,
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "error": result.error,
        }
        for result, item in rows[:limit]
    ]
    next_cursor = encode_cursor(rows[limit - 1][0].id) if len(rows) > limit else None
    return page, next_cursor


def list_runs(session: Session, *, principal: Principal, golden_set_id: str) -> list[dict[str, Any]]:
    """A set's runs, newest first (at most 100)."""
    golden = get_golden_set(session, principal=principal, golden_set_id=golden_set_id)
    runs = session.execute(
        select(GoldenRun)
        .where(GoldenRun.golden_set_id == golden.id)
        .order_by(GoldenRun.created_at.desc(), GoldenRun.id.desc())
        .limit(100)
    ).scalars()
    return [run_record(session, run) for run in runs]


def run_record(session: Session, run: GoldenRun, *, with_memory_contribution: bool = False) -> dict[str, Any]:
    """A run as the API and its event show it."""
    done = run.total if run.status == "completed" else _done(session, run.id)
    status, error, completed_at = run.status, run.error, run.completed_at
    if status == "running":
        failed = _failed_job(session, run)
        if failed is not None:
            status, error, completed_at = "failed", failed[0], failed[1]
    metrics = run.metrics
    if metrics is not None and with_memory_contribution and run.memory:
        metrics = [{**m, "memory_contribution": _memory_contribution(session, run, m)} for m in metrics]
    return {
        "id": run.id,
        "golden_set_id": run.golden_set_id,
        "project_id": run.project_id,
        "version": run.version,
        "memory": run.memory,
        "evaluators": run.evaluators,
        "status": status,
        "total": run.total,
        "done": done,
        "progress": round(done / run.total, 4) if run.total else 1.0,
        "passed": run.passed,
        "error": error,
        "usage": None
        if metrics is None
        else {
            key: _sum_or_none([m.get(key) for m in metrics])
            for key in ("prompt_tokens", "completion_tokens", "total_tokens", "cost_usd")
        },
        "prices": run.prices,
        "metrics": metrics,
        "created_at": to_json_time(run.created_at),
        "created_by": run.created_by,
        "completed_at": to_json_time(completed_at),
    }


def _memory_contribution(session: Session, run: GoldenRun, measured: dict[str, Any]) -> dict[str, Any] | None:
    """This run's figures minus the latest completed run of the same evaluator version on the same set version
    with memory off: what the controls add."""
    candidates = session.execute(
        select(GoldenRun)
        .where(
            GoldenRun.golden_set_id == run.golden_set_id,
            GoldenRun.version == run.version,
            GoldenRun.memory.is_(False),
            GoldenRun.status == "completed",
        )
        .order_by(GoldenRun.created_at.desc(), GoldenRun.id.desc())
    ).scalars()
    for other in candidates:
        found = next((m for m in other.metrics or [] if same_evaluator(m, measured)), None)
        if found is not None:
            return {
                "compared_run_id": other.id,
                **{
                    key: None
                    if measured[key] is None or found[key] is None
                    else round(measured[key] - found[key], 4)
                    for key in ("accuracy", "kappa", "ambiguity_rate")
                },
            }
    return None
