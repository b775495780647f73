"""Two runs of one golden set side by side: each evaluator of the first matched with the same one in the
second (the same version, draft or model; else the same name), their figures next to each other, and the
items whose verdict went from right to wrong or back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.db.models import GoldenItem
from casework.services.auth import Principal
from casework.services.golden_metrics import diff
from casework.services.golden_runs import get_run, outcomes_of, same_evaluator

COMPARED = (
    "accuracy",
    "kappa",
    "ambiguity_rate",
    "error_rate",
    "total_tokens",
    "cost_usd",
    "latency_p50_ms",
    "latency_p90_ms",
)
SHOWN_ITEMS = 50


def _label(entry: dict[str, Any]) -> str:
    if entry.get("draft"):
        return f"{entry['name']} (draft)"
    label = f"{entry['name']}:{entry['version']}"
    return f"{label} @ {entry['model']}" if entry.get("model_override") else label


def compare_runs(
    session: Session, *, principal: Principal, golden_set_id: str, first_id: str, second_id: str
) -> dict[str, Any]:
    """The two runs and, per pair of matched evaluators, each compared figure (first, second, change) and the
    items that changed (at most SHOWN_ITEMS of each kind, with their query)."""
    first = get_run(session, principal=principal, golden_set_id=golden_set_id, run_id=first_id)
    second = get_run(session, principal=principal, golden_set_id=golden_set_id, run_id=second_id)
    pairs = []
    unmatched = list(second["evaluators"])
    for entry in first["evaluators"]:
        match = next((e for e in unmatched if same_evaluator(e, entry)), None) or next(
            (e for e in unmatched if e["name"] == entry["name"]), None
        )
        if match is not None:
            unmatched.remove(match)
        pairs.append((entry, match))
    pairs += [(None, entry) for entry in unmatched]
    return {
        "first": first,
        "second": second,
        "pairs": [_pair(session, first, second, one, other) for one, other in pairs],
    }


def _metrics_of(run: dict[str, Any], entry: dict[str, Any] | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return next((m for m in run["metrics"] or [] if m["evaluator_id"] == entry["evaluator_id"]), None)


def _pair(
    session: Session,
    first: dict[str, Any],
    second: dict[str, Any],
    one: dict[str, Any] | None,
    other: dict[str, Any] | None,
) -> dict[str, Any]:
    before, after = _metrics_of(first, one), _metrics_of(second, other)
    rows = []
    for key in COMPARED:
        a = before.get(key) if before else None
        b = after.get(key) if after else None
        change = round(b - a, 6) if isinstance(a, int | float) and isinstance(b, int | float) else None
        rows.append({"metric": key, "first": a, "second": b, "change": change})
    changed = None
    if before is not None and after is not None:
        compared = diff(
            outcomes_of(session, second["id"], after["evaluator_id"]),
            outcomes_of(session, first["id"], before["evaluator_id"]),
        )
        queries = _queries(
            session, compared["better_items"][:SHOWN_ITEMS] + compared["worse_items"][:SHOWN_ITEMS]
        )
        changed = {
            **{k: compared[k] for k in ("compared", "better", "worse", "same")},
            "better_items": [
                {"id": i, "query": queries.get(i, "")} for i in compared["better_items"][:SHOWN_ITEMS]
            ],
            "worse_items": [
                {"id": i, "query": queries.get(i, "")} for i in compared["worse_items"][:SHOWN_ITEMS]
            ],
        }
    return {
        "first": _label(one) if one else None,
        "second": _label(other) if other else None,
        "rows": rows,
        "changes": changed,
    }


def _queries(session: Session, ids: list[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = session.execute(select(GoldenItem.id, GoldenItem.query).where(GoldenItem.id.in_(ids))).all()
    return {item_id: query for item_id, query in rows}
