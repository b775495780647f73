"""The words every integration uses about a review: excerpts, the judge's verdict, memory's suggestion, its age,
its decision. One place, so Slack, Teams, Jira, ServiceNow and Zendesk say the same thing the same way."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from casework.db.types import utcnow

EXCERPT = 500


def excerpt(text: str | None, limit: int = EXCERPT) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def verdict(review: dict[str, Any]) -> str:
    """``ambiguous (confidence 0.42)``."""
    confidence = review.get("confidence")
    shown = f" (confidence {confidence:.2f})" if isinstance(confidence, int | float) else ""
    return f"{review.get('classification') or 'ambiguous'}{shown}"


def suggestion(review: dict[str, Any]) -> str | None:
    """Memory's proposal, when the review has one: ``non_compliant (confidence 0.91), from 2 controls``."""
    proposed = review.get("suggestion")
    if not isinstance(proposed, dict) or not proposed.get("classification"):
        return None
    text = str(proposed["classification"])
    confidence = proposed.get("confidence")
    if isinstance(confidence, int | float):
        text += f" (confidence {confidence:.2f})"
    controls = proposed.get("control_ids") or []
    if controls:
        text += f", from {len(controls)} control{'s' if len(controls) != 1 else ''}"
    if proposed.get("explanation"):
        text += f": {excerpt(str(proposed['explanation']), 200)}"
    return text


def age(review: dict[str, Any], now: datetime | None = None) -> str:
    created = parse_time(review.get("created_at"))
    if created is None:
        return "unknown"
    return duration(((now or utcnow()) - created).total_seconds())


def duration(seconds: float) -> str:
    seconds = max(seconds, 0)
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if not isinstance(value, str) or not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def title(review: dict[str, Any]) -> str:
    return f"Review needed: {review.get('evaluator_type')}: {excerpt(review.get('query'), 120)}"


ALERT_EVENTS = ("review.due_soon", "review.overdue", "queue.threshold_crossed", "queue.threshold_cleared")


def alert(event_type: str, data: dict[str, Any], now: datetime | None = None) -> str:
    """One line for an SLA alert: a review due soon or overdue, a queue threshold crossed or cleared."""
    if event_type == "review.due_soon":
        due = parse_time(data.get("due_at"))
        left = (due - (now or utcnow())).total_seconds() if due is not None else None
        when = f"due in {duration(left)}" if left is not None and left > 0 else "due now"
        return (
            f"Due soon: {data.get('evaluator_type')} review {when} (waiting {age(data, now)}): "
            f"{excerpt(data.get('query'), 120)}"
        )
    if event_type == "review.overdue":
        sla = data.get("sla") or {}
        text = f"Overdue: {data.get('evaluator_type')} review waiting {age(data)}: {excerpt(data.get('query'), 120)}"
        if sla.get("escalation_contact"):
            text += f" (escalation: {sla['escalation_contact']})"
        return text
    metric = (
        "pending reviews" if data.get("metric") == "pending_count" else "hours the oldest review has waited"
    )
    if event_type == "queue.threshold_crossed":
        text = f"Queue alert in {data.get('project_name')}: {data.get('value')} {metric} (threshold {data.get('threshold')})"
        if data.get("escalation_contact"):
            text += f"; escalation: {data['escalation_contact']}"
        return text
    return f"Queue alert cleared in {data.get('project_name')}: {data.get('value')} {metric}"


def decided(review: dict[str, Any]) -> str:
    """``Decided by ana@bank.example: non_compliant`` (or by memory)."""
    resolution = review.get("resolution") or {}
    if resolution.get("resolved_by") == "memory":
        who = "memory"
        if resolution.get("control_id"):
            who += f" (control {resolution['control_id']})"
    else:
        who = resolution.get("reviewer") or "someone"
    return f"Decided by {who}: {resolution.get('classification')}"


def already_decided(resolution: dict[str, Any]) -> str:
    """The answer to a decision on a review that someone (or memory) had already resolved."""
    who = "memory" if resolution.get("resolved_by") == "memory" else resolution.get("reviewer") or "someone"
    return f"Already decided by {who}: {resolution.get('classification')}."


_FIELD = re.compile(r"^\s*(?P<label>[A-Za-z_ ]+?)\s*:\s*(?P<value>.*)$")


def parse_decision_text(text: str, labels: dict[str, str]) -> dict[str, str]:
    """Read ``classification: ...`` / ``reasoning: ...`` / ``tags: ...`` (labels configurable) from a comment.
    The reasoning runs to the end of the text unless another label starts a line; a label is matched without
    regard to case."""
    wanted = {label.strip().lower(): name for name, label in labels.items()}
    found: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.replace("\r\n", "\n").split("\n"):
        match = _FIELD.match(line)
        name = wanted.get(match.group("label").strip().lower()) if match else None
        if match and name:
            current = name
            found[current] = [match.group("value")]
        elif current is not None:
            found[current].append(line)
    return {name: "\n".join(lines).strip() for name, lines in found.items()}


def split_tags(text: str | None) -> list[str]:
    return [tag.strip().lower() for tag in re.split(r"[,;\s]+", text or "") if tag.strip()]
