"""Risk tiers: how much human attention an interaction gets, decided by the project's ordered rules.

A project's policy names its tiers and the rules that assign an interaction to one from what is known when it is
evaluated (evaluator, classification and confidence, whether the judge was unsure, the run (its name as
``casework.init`` gives it, or its id), the span's or the request's metadata, the tags of the controls memory
retrieved). The first rule whose conditions all hold wins; otherwise
the default tier. A tier says which verdicts need a person, how often confident ones are spot-checked, whether
memory may decide alone, the queue priority, how many independent decisions its reviews need
(``reviewers_required``) and its SLA (``sla``: any of the SLA policy's fields).

Most specific wins: a tier's ``reviewers_required`` beats the evaluator's, and each field of its ``sla`` beats
the evaluator's SLA override, which beats the project's SLA policy. :func:`attention` is the one place a review
gets both (the SLA part from ``casework.services.sla.policy_for``); a review keeps what it was queued with, so a
later change of the tiers leaves the queue as it is.

This module is the one routing policy: ``casework.services.evaluations`` asks :func:`route` what to do with each
verdict, and ``casework.services.reviews.settle_by_memory`` asks :func:`memory_may_decide` before memory resolves
a pending review. A project without a policy is routed as before tiers existed: ambiguous verdicts go to people.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casework.db.models import (
    Control,
    Evaluation,
    EvaluationControl,
    Evaluator,
    Project,
    Review,
    RiskPolicy,
    Run,
    Span,
)
from casework.db.types import utcnow
from casework.definitions import automatic_subject, spot_check_rate_of
from casework.errors import ValidationFailed
from casework.events import EventType
from casework.services import events, sla
from casework.services.auth import Principal
from casework.services.evaluators import definition_of, reviewers_required_for
from casework.services.pagination import to_json_time
from casework.services.projects import get_project
from casework.services.sla import Policy as SlaPolicy

REVIEW_MODES = ("ambiguous", "ambiguous_or_classification", "always")
OPERATORS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains", "exists")
FIELDS = ("evaluator", "classification", "confidence", "ambiguous", "run", "run_id", "control_tags")
TEXT_FIELDS = ("run", "run_id")  # compared as text, never as numbers
METADATA = "metadata."
MAX_REVIEWERS = 20  # as an evaluator's reviewers_required


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any = None

    def holds(self, facts: Facts) -> bool:
        found, present = facts.value(self.field)
        if self.op == "exists":
            return present is bool(self.value if self.value is not None else True)
        if not present:
            return self.op in ("ne", "not_in")
        if self.op == "contains":
            return isinstance(found, (list, tuple, str)) and self.value in found
        if self.op == "eq":
            return bool(found == self.value)
        if self.op == "ne":
            return bool(found != self.value)
        if self.op in ("in", "not_in"):
            inside = found in self.value or (isinstance(found, list) and any(v in self.value for v in found))
            return inside if self.op == "in" else not inside
        number = _number(found)
        if number is None:
            return False
        limit = float(self.value)
        return {
            "gt": number > limit,
            "gte": number >= limit,
            "lt": number < limit,
            "lte": number <= limit,
        }[self.op]

    def describe(self) -> str:
        return f"{self.field} {self.op} {self.value!r}" if self.op != "exists" else f"{self.field} exists"


@dataclass(frozen=True)
class Rule:
    tier: str
    when: tuple[Condition, ...]
    description: str | None = None


@dataclass(frozen=True)
class Tier:
    name: str
    review: str = "ambiguous"
    classifications: tuple[str, ...] = ()
    spot_check_rate: float | None = None  # confident judge verdicts; None: the evaluator's own
    memory_spot_check_rate: float | None = None  # memory's resolutions; None: the evaluator's own
    memory_may_decide: bool = True
    priority: int = 0
    reviewers_required: int | None = None  # independent decisions per review; None: the evaluator's own
    sla: Mapping[str, Any] | None = None  # the SLA fields it sets; None: the evaluator's / project's SLA


@dataclass(frozen=True)
class Attention:
    """What a review gets when it is queued: how many independent decisions, and its SLA policy."""

    reviewers_required: int
    sla: SlaPolicy


@dataclass(frozen=True)
class Policy:
    tiers: dict[str, Tier]
    rules: tuple[Rule, ...]
    default_tier: str

    def tier_for(self, facts: Facts) -> tuple[Tier, int | None]:
        """The tier, and the index of the rule that chose it (None: the default)."""
        for index, rule in enumerate(self.rules):
            if all(condition.holds(facts) for condition in rule.when):
                return self.tiers[rule.tier], index
        return self.tiers[self.default_tier], None


@dataclass
class Facts:
    """What is known of an interaction when it is evaluated."""

    evaluator: str
    classification: str | None = None
    confidence: float | None = None
    ambiguous: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict)
    control_tags: Sequence[str] = ()
    run: str | None = None  # the run's name
    run_id: str | None = None

    def value(self, name: str) -> tuple[Any, bool]:
        if name.startswith(METADATA):
            return _lookup(self.metadata, name[len(METADATA) :])
        found = getattr(self, name)
        return (list(found) if name == "control_tags" else found), found is not None


@dataclass(frozen=True)
class Routing:
    """What a tier makes of one verdict."""

    tier: str | None
    needs_person: bool
    reason: str
    spot_check_rate: float
    priority: int


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _lookup(metadata: Mapping[str, Any], path: str) -> tuple[Any, bool]:
    """``customer.segment``: an attribute of that flat name (as OpenTelemetry writes them), else nested keys."""
    if path in metadata:
        return metadata[path], True
    current: Any = metadata
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None, False
        current = current[part]
    return current, True


# --- the policy document ---------------------------------------------------------------------------------------


def parse(document: Mapping[str, Any]) -> Policy:
    """The policy a document describes; ValidationFailed (422) saying what is wrong, with where."""
    problems: list[dict[str, str]] = []
    tiers: dict[str, Tier] = {}
    for index, raw in enumerate(document.get("tiers") or []):
        name = str(raw.get("name", ""))
        where = f"tiers[{index}]"
        if name in tiers:
            problems.append({"at": where, "problem": f"tier {name!r} is named twice"})
        review = raw.get("review", "ambiguous")
        classifications = tuple(raw.get("classifications") or ())
        if review == "ambiguous_or_classification" and not classifications:
            problems.append(
                {"at": where, "problem": "review 'ambiguous_or_classification' needs classifications"}
            )
        reviewers = raw.get("reviewers_required")
        if reviewers is not None and not (
            isinstance(reviewers, int) and not isinstance(reviewers, bool) and 1 <= reviewers <= MAX_REVIEWERS
        ):
            problems.append(
                {
                    "at": f"{where}.reviewers_required",
                    "problem": f"a whole number from 1 to {MAX_REVIEWERS} (or null: the evaluator's): "
                    f"not {reviewers!r}",
                }
            )
        tier_sla = raw.get("sla")
        if tier_sla is not None and not isinstance(tier_sla, Mapping):
            problems.append({"at": f"{where}.sla", "problem": "an object of SLA fields (or null)"})
            tier_sla = None
        for name_of_field, wrong in sla.override_problems(tier_sla or {}):
            problems.append({"at": f"{where}.sla.{name_of_field}", "problem": wrong})
        tiers[name] = Tier(
            name=name,
            review=review,
            classifications=classifications,
            spot_check_rate=raw.get("spot_check_rate"),
            memory_spot_check_rate=raw.get("memory_spot_check_rate"),
            memory_may_decide=bool(raw.get("memory_may_decide", True)),
            priority=int(raw.get("priority", 0)),
            reviewers_required=reviewers,
            sla={key: value for key, value in (tier_sla or {}).items() if value is not None} or None,
        )
    if not tiers:
        problems.append({"at": "tiers", "problem": "a policy needs at least one tier"})
    default = str(document.get("default_tier", ""))
    if tiers and default not in tiers:
        problems.append({"at": "default_tier", "problem": f"{default!r} is not one of the tiers"})
    rules = []
    for index, raw in enumerate(document.get("rules") or []):
        where = f"rules[{index}]"
        tier = str(raw.get("tier", ""))
        if tier not in tiers:
            problems.append({"at": f"{where}.tier", "problem": f"{tier!r} is not one of the tiers"})
        conditions = []
        for at, condition in enumerate(raw.get("when") or []):
            problem = _condition_problem(condition)
            if problem:
                problems.append({"at": f"{where}.when[{at}]", "problem": problem})
            conditions.append(
                Condition(condition.get("field", ""), condition.get("op", ""), condition.get("value"))
            )
        rules.append(Rule(tier, tuple(conditions), raw.get("description")))
    if problems:
        raise ValidationFailed(
            "The risk-tier policy is not valid: " + "; ".join(f"{p['at']}: {p['problem']}" for p in problems),
            details={"problems": problems},
        )
    return Policy(tiers=tiers, rules=tuple(rules), default_tier=default)


def _condition_problem(condition: Mapping[str, Any]) -> str | None:
    name, op, value = condition.get("field", ""), condition.get("op", ""), condition.get("value")
    if not (name in FIELDS or (name.startswith(METADATA) and len(name) > len(METADATA))):
        return f"unknown field {name!r}: one of {', '.join(FIELDS)} or metadata.<key>"
    if op not in OPERATORS:
        return f"unknown op {op!r}: one of {', '.join(OPERATORS)}"
    if name in TEXT_FIELDS and op in ("gt", "gte", "lt", "lte"):
        return f"{name} is text: {op} compares numbers"
    if op in ("gt", "gte", "lt", "lte") and _number(value) is None:
        return f"{op} compares numbers: {value!r} is not one"
    if op in ("in", "not_in") and not isinstance(value, list):
        return f"{op} needs a list of values"
    if op not in ("exists",) and value is None:
        return f"{op} needs a value"
    if name == "confidence" and op in ("gt", "gte", "lt", "lte") and not 0 <= (_number(value) or 0.0) <= 1:
        return "confidence is between 0 and 1"
    return None


def _saved(session: Session, project_id: str) -> RiskPolicy | None:
    return session.get(RiskPolicy, project_id)


def policy_of(session: Session, project_id: str) -> Policy | None:
    saved = _saved(session, project_id)
    return parse(saved.document) if saved is not None else None


def policy_record(project_id: str, saved: RiskPolicy | None) -> dict[str, Any]:
    if saved is None:
        return {
            "project_id": project_id,
            "version": 0,
            "tiers": [],
            "rules": [],
            "default_tier": None,
            "updated_at": None,
            "updated_by": None,
        }
    return {
        "project_id": project_id,
        "version": saved.version,
        **saved.document,
        "updated_at": to_json_time(saved.updated_at),
        "updated_by": saved.updated_by,
    }


def get_policy(session: Session, *, principal: Principal, project_id: str) -> dict[str, Any]:
    get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    return policy_record(project_id, _saved(session, project_id))


def put_policy(
    session: Session, *, principal: Principal, project_id: str, document: dict[str, Any]
) -> dict[str, Any]:
    """Replace the project's tiers and rules (a new version); checked whole before anything is written."""
    principal.require_admin()
    project = get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    parse(document)
    saved = session.get(RiskPolicy, project_id, with_for_update=True)
    before = policy_record(project_id, saved)
    if saved is None:
        saved = RiskPolicy(project_id=project_id, version=0, document={})
        session.add(saved)
    saved.document = document
    saved.version += 1
    saved.updated_at = utcnow()
    saved.updated_by = principal.identity
    session.flush()
    record = policy_record(project_id, saved)
    events.emit(
        session,
        EventType.risk_tiers_updated,
        workspace_id=project.workspace_id,
        project_id=project_id,
        actor=principal.identity,
        object_type="risk_policy",
        object_id=project_id,
        data=record,
        before=before,
    )
    return record


# --- routing ---------------------------------------------------------------------------------------------------


def route(
    policy: Policy | None,
    facts: Facts,
    *,
    automatic_rate: float,
    subject: str,
    ambiguous_reason: str,
) -> Routing:
    """Whether this verdict needs a person, why, and otherwise how often to spot-check it.
    ``automatic_rate``: the evaluator's own spot-check rate for this subject ("judge" or "memory")."""
    if policy is None:
        return Routing(None, facts.ambiguous, ambiguous_reason, 0.0 if facts.ambiguous else automatic_rate, 0)
    tier, _ = policy.tier_for(facts)
    if facts.ambiguous:
        return Routing(tier.name, True, ambiguous_reason, 0.0, tier.priority)
    forced = (
        tier.review == "always"
        or (tier.review == "ambiguous_or_classification" and facts.classification in tier.classifications)
        or (subject == "memory" and not tier.memory_may_decide)
    )
    if forced:
        return Routing(tier.name, True, "tier_rule", 0.0, tier.priority)
    return Routing(
        tier.name, False, ambiguous_reason, spot_check_rate(tier, subject, automatic_rate), tier.priority
    )


def spot_check_rate(tier: Tier | None, subject: str, automatic_rate: float) -> float:
    """How often an automatic decision of ``subject`` ("judge": a confident verdict; "memory": memory decided)
    in ``tier`` is spot-checked: the tier's own rate for it, else ``automatic_rate`` (the evaluator's)."""
    own = (
        None if tier is None else tier.memory_spot_check_rate if subject == "memory" else tier.spot_check_rate
    )
    return automatic_rate if own is None else own


def tier_of(session: Session, project_id: str, name: str | None) -> Tier | None:
    """The tier a review was routed under, as the project's policy says it today (None: no tiers)."""
    if name is None:
        return None
    policy = policy_of(session, project_id)
    return policy.tiers.get(name) if policy is not None else None


def attention(session: Session, *, project: Project, evaluator_type: str, tier: Tier | None) -> Attention:
    """How many independent decisions a review of this evaluator in this tier needs, and its SLA policy. Most
    specific wins: the tier's ``reviewers_required``, else the evaluator's; each field of the tier's ``sla``,
    else the evaluator's SLA override, else the project's SLA policy (``casework.services.sla.policy_for``).
    A spot check needs one person whatever the tier says (``casework.services.reviews.enqueue_review``)."""
    reviewers = tier.reviewers_required if tier is not None else None
    if reviewers is None:
        reviewers = reviewers_required_for(session, project_id=project.id, name=evaluator_type)
    return Attention(reviewers, sla_policy(project, evaluator_type, tier))


def sla_policy(project: Project, evaluator_type: str | None, tier: Tier | None) -> SlaPolicy:
    """The SLA policy of a review in ``tier`` (None: no tier), as :func:`attention` gives it."""
    return sla.policy_for(project, evaluator_type, tier.sla if tier is not None else None)


def tier_settings(project: Project, tier: Tier) -> dict[str, Any]:
    """A tier's own ``reviewers_required`` (None: each evaluator's) and its SLA over the project's policy (an
    evaluator's override still applies to the fields the tier does not set), as the report shows them."""
    return {
        "tier": tier.name,
        "reviewers_required": tier.reviewers_required,
        "sla": sla_policy(project, None, tier).as_dict(),
    }


def memory_may_decide(tier: Tier | None, classification: str | None) -> bool:
    """Whether memory may resolve a pending review of this tier alone: not where the tier says a person decides."""
    if tier is None:
        return True
    if tier.review == "always":
        return False
    if tier.review == "ambiguous_or_classification" and classification in tier.classifications:
        return False
    return tier.memory_may_decide


def control_tags(session: Session, control_ids: Iterable[str]) -> list[str]:
    ids = list(control_ids)
    if not ids:
        return []
    tags: set[str] = set()
    for found in session.execute(select(Control.tags).where(Control.id.in_(ids))).scalars():
        tags.update(found or ())
    return sorted(tags)


def run_name(session: Session, project_id: str, run_id: str | None) -> str | None:
    """The name of one of the project's runs (None: no such run, or none given)."""
    if run_id is None:
        return None
    found: str | None = session.execute(
        select(Run.name).where(Run.project_id == project_id, Run.id == run_id)
    ).scalar_one_or_none()
    return found


def span_attributes(session: Session, project_id: str, span_id: str | None) -> dict[str, Any]:
    if span_id is None:
        return {}
    found = session.execute(
        select(Span.attributes).where(Span.project_id == project_id, Span.span_id == span_id).limit(1)
    ).scalar_one_or_none()
    return dict(found or {})


# --- dry runs and reports ----------------------------------------------------------------------------------------


def automatic_decisions(
    session: Session, project_id: str, default_rate: float
) -> dict[str, tuple[str, float]]:
    """Per evaluator of the project, as its newest version says: who makes its automatic decisions ("judge" or
    "memory") and how often they are spot-checked (its own rate, else ``default_rate``:
    CASEWORK_SPOT_CHECK_RATE), as the runner routes them. An evaluator not listed: ("judge", default_rate)."""
    newest: dict[str, Evaluator] = {}
    for evaluator in session.execute(select(Evaluator).where(Evaluator.project_id == project_id)).scalars():
        if evaluator.name not in newest or evaluator.version > newest[evaluator.name].version:
            newest[evaluator.name] = evaluator
    found = {}
    for name, evaluator in newest.items():
        definition = definition_of(evaluator)
        subject = automatic_subject(definition)
        found[name] = (subject, spot_check_rate_of(definition, subject, default_rate))
    return found


def _route_automatic(policy: Policy, facts: Facts, automatic: tuple[str, float]) -> Routing:
    subject, rate = automatic
    return route(policy, facts, automatic_rate=rate, subject=subject, ambiguous_reason="ambiguous")


def explain(
    policy: Policy, facts: Facts, given: Attention, automatic: tuple[str, float] = ("judge", 0.0)
) -> dict[str, Any]:
    """The tier, the rule and why, what it does with the verdict (``automatic``: the evaluator's subject and
    spot-check rate, :func:`automatic_decisions`), and what its review would get (``given``)."""
    tier, index = policy.tier_for(facts)
    routing = _route_automatic(policy, facts, automatic)
    if index is None:
        why = f"no rule matched: the default tier {policy.default_tier!r}"
    else:
        rule = policy.rules[index]
        held = " and ".join(c.describe() for c in rule.when) or "always"
        why = f"rule {index + 1} ({rule.description or held}) matched: {held}"
    return {
        "tier": tier.name,
        "rule": index,
        "why": why,
        "needs_person": routing.needs_person,
        "reason": routing.reason if routing.needs_person else None,
        "spot_check_rate": 0.0 if routing.needs_person else routing.spot_check_rate,
        "priority": tier.priority,
        "reviewers_required": given.reviewers_required,
        "sla": given.sla.as_dict(),
    }


def dry_run(
    session: Session,
    *,
    principal: Principal,
    project_id: str,
    facts: Facts,
    document: dict[str, Any] | None,
    default_spot_check_rate: float = 0.0,
) -> dict[str, Any]:
    """Which tier an interaction would get, and why, under a proposed policy or the saved one; how often it
    would be spot-checked when no person must decide; and what its review would get there
    (:func:`attention`: the effective ``reviewers_required`` and SLA)."""
    project = get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    policy = parse(document) if document is not None else policy_of(session, project_id)
    if policy is None:
        raise ValidationFailed("This project has no risk tiers yet: send a policy to try.")
    if facts.run_id is not None and facts.run is None:
        facts = replace(facts, run=run_name(session, project_id, facts.run_id))
    tier, _ = policy.tier_for(facts)
    given = attention(session, project=project, evaluator_type=facts.evaluator, tier=tier)
    automatic = automatic_decisions(session, project_id, default_spot_check_rate)
    return explain(policy, facts, given, automatic.get(facts.evaluator, ("judge", default_spot_check_rate)))


def _history(session: Session, project_id: str, days: int, limit: int) -> list[tuple[Evaluation, Facts]]:
    since = utcnow() - timedelta(days=days)
    found = list(
        session.execute(
            select(Evaluation)
            .where(
                Evaluation.project_id == project_id,
                Evaluation.created_at >= since,
                Evaluation.status == "completed",
                Evaluation.superseded_at.is_(None),
            )
            .order_by(Evaluation.created_at.desc())
            .limit(limit)
        ).scalars()
    )
    links: dict[str, list[str]] = {}
    ids = [e.id for e in found]
    for start in range(0, len(ids), 500):
        for evaluation_id, control_id in session.execute(
            select(EvaluationControl.evaluation_id, EvaluationControl.control_id).where(
                EvaluationControl.evaluation_id.in_(ids[start : start + 500])
            )
        ):
            links.setdefault(evaluation_id, []).append(control_id)
    tags_of = {
        control_id: list(tags or ())
        for control_id, tags in session.execute(
            select(Control.id, Control.tags).where(
                Control.id.in_({c for linked in links.values() for c in linked})
            )
        )
    }
    runs = dict(
        session.execute(
            select(Run.id, Run.name).where(
                Run.project_id == project_id, Run.id.in_({e.run_id for e in found if e.run_id})
            )
        ).all()
    )
    spans = {
        span_id: attributes
        for span_id, attributes in session.execute(
            select(Span.span_id, Span.attributes).where(
                Span.project_id == project_id,
                Span.span_id.in_({e.span_id for e in found if e.span_id}),
            )
        )
    }
    history = []
    for evaluation in found:
        metadata = dict(evaluation.attributes or spans.get(evaluation.span_id or "", {}) or {})
        tags = sorted({t for c in links.get(evaluation.id, []) for t in tags_of.get(c, [])})
        history.append(
            (
                evaluation,
                Facts(
                    evaluator=evaluation.evaluator_type,
                    classification=evaluation.classification,
                    confidence=evaluation.confidence,
                    ambiguous=evaluation.ambiguous,
                    metadata=metadata,
                    control_tags=tags,
                    run=runs.get(evaluation.run_id or ""),
                    run_id=evaluation.run_id,
                ),
            )
        )
    return history


def impact(
    session: Session,
    *,
    principal: Principal,
    project_id: str,
    document: dict[str, Any] | None,
    days: int,
    default_spot_check_rate: float = 0.0,
    limit: int = 20_000,
) -> dict[str, Any]:
    """What a policy would have done with the last ``days`` of evaluations (the newest ``limit``), beside what
    was done: per tier, how many a person must decide (ambiguous, or the tier's rule) and how many of the rest
    its spot checks would send to people, expected from each evaluator's rate as a tier overrides it
    (``default_spot_check_rate``: CASEWORK_SPOT_CHECK_RATE)."""
    get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    policy = parse(document) if document is not None else policy_of(session, project_id)
    if policy is None:
        raise ValidationFailed("This project has no risk tiers yet: send a policy to try.")
    history = _history(session, project_id, days, limit)
    automatic = automatic_decisions(session, project_id, default_spot_check_rate)
    tiers = {name: _Tally() for name in policy.tiers}
    for _, facts in history:
        tier, _ = policy.tier_for(facts)
        routing = _route_automatic(
            policy, facts, automatic.get(facts.evaluator, ("judge", default_spot_check_rate))
        )
        tiers[tier.name].add(routing)
    would = _Tally()
    for tally in tiers.values():
        would.evaluations += tally.evaluations
        would.to_people += tally.to_people
        would.spot_checks += tally.spot_checks
    return {
        "project_id": project_id,
        "days": days,
        "to_people_now": sum(1 for evaluation, _ in history if evaluation.review_id is not None),
        "spot_checks_now": _spot_checks_of(session, project_id, [evaluation.id for evaluation, _ in history]),
        **would.record(),
        "tiers": [{"tier": name, **tally.record()} for name, tally in tiers.items()],
    }


@dataclass
class _Tally:
    evaluations: int = 0
    to_people: int = 0  # a person must decide: ambiguous, or the tier's rule
    spot_checks: float = 0.0  # expected: the sum of the spot-check rates of the rest

    def add(self, routing: Routing) -> None:
        self.evaluations += 1
        if routing.needs_person:
            self.to_people += 1
        else:
            self.spot_checks += routing.spot_check_rate

    def record(self) -> dict[str, Any]:
        share = (
            None if not self.evaluations else round((self.to_people + self.spot_checks) / self.evaluations, 4)
        )
        return {
            "evaluations": self.evaluations,
            "to_people": self.to_people,
            "spot_checks": round(self.spot_checks, 2),
            "share_to_people": share,
            "share_spot_checked": round(self.spot_checks / self.evaluations, 4) if self.evaluations else None,
        }


def _spot_checks_of(session: Session, project_id: str, evaluation_ids: list[str]) -> int:
    """How many of these evaluations were sent to a spot check."""
    total = 0
    for start in range(0, len(evaluation_ids), 500):
        total += session.execute(
            select(func.count())
            .select_from(Review)
            .where(
                Review.project_id == project_id,
                Review.kind == "spot_check",
                Review.subject_id.in_(evaluation_ids[start : start + 500]),
            )
        ).scalar_one()
    return total


def report(session: Session, *, principal: Principal, project_id: str, days: int) -> dict[str, Any]:
    """Per tier, over the last ``days``: evaluations, the share sent to people, and from the spot checks people
    decided, the estimated error rate of what nobody reviewed, with its 95% interval; beside each tier of the
    saved policy (``settings``), its ``reviewers_required`` and SLA as they apply now (:func:`tier_settings`)."""
    from casework.memory.calibration import interval

    project = get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    policy = policy_of(session, project_id)
    since = utcnow() - timedelta(days=days)
    counted = session.execute(
        select(
            Evaluation.tier,
            func.count(),
            func.count(Evaluation.review_id),
        )
        .where(Evaluation.project_id == project_id, Evaluation.created_at >= since)
        .group_by(Evaluation.tier)
    ).all()
    checks: dict[str | None, list[int]] = {}
    # A spot check's review holds the automatic decision (classification) and the person's (resolution).
    for tier, person, automatic in session.execute(
        select(Review.tier, Review.resolution_classification, Review.classification).where(
            Review.project_id == project_id,
            Review.kind == "spot_check",
            Review.status == "resolved",
            Review.created_at >= since,
        )
    ):
        wrong_right = checks.setdefault(tier, [0, 0])
        wrong_right[0 if person != automatic else 1] += 1
    rows = []
    for tier, evaluations, to_people in sorted(counted, key=lambda row: (row[0] is None, row[0] or "")):
        wrong, right = checks.get(tier, [0, 0])
        checked = wrong + right
        low, high = interval(wrong, checked) if checked else (None, None)
        rows.append(
            {
                "tier": tier,
                "evaluations": evaluations,
                "to_people": to_people,
                "share_to_people": round(to_people / evaluations, 4) if evaluations else None,
                "spot_checks": checked,
                "spot_checks_wrong": wrong,
                "estimated_error_rate": round(wrong / checked, 4) if checked else None,
                "error_rate_interval": [round(low, 4), round(high, 4)]
                if low is not None and high is not None
                else None,
            }
        )
    return {
        "project_id": project_id,
        "days": days,
        "tiers": rows,
        "settings": [tier_settings(project, tier) for tier in (policy.tiers.values() if policy else ())],
    }
