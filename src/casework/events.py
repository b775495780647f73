"""The typed events of the loop: every state change writes one, in the transaction that makes the change.

An event is stored with a stable id, its project (and workspace), type, time, actor, the object it is about, and
``data``: the public API's representation of that object after the change (the JSON its ``GET`` returns). The
log is the audit trail people read (``GET /api/v1/audit``) and the feed machines read (``GET /api/v1/events``,
webhooks, integrations): subscribers read it past their own position, at least once.

This module only names things; ``casework.services.events`` writes and reads them.
"""

from __future__ import annotations

from enum import Enum


class EventType(str, Enum):
    review_created = "review.created"
    review_claimed = "review.claimed"
    review_resolved = "review.resolved"
    review_reopened = "review.reopened"
    review_decision_submitted = "review.decision_submitted"
    review_needs_adjudication = "review.needs_adjudication"
    review_assigned = "review.assigned"
    review_due_soon = "review.due_soon"
    review_overdue = "review.overdue"
    control_created = "control.created"
    control_updated = "control.updated"
    control_retired = "control.retired"
    evaluation_completed = "evaluation.completed"
    evaluator_updated = "evaluator.updated"
    queue_threshold_crossed = "queue.threshold_crossed"
    queue_threshold_cleared = "queue.threshold_cleared"
    risk_tiers_updated = "risk_tiers.updated"
    golden_set_created = "golden_set.created"
    golden_set_updated = "golden_set.updated"
    golden_run_completed = "golden_run.completed"
    golden_run_failed = "golden_run.failed"
    webhook_disabled = "webhook.disabled"
    webhook_test = "webhook.test"
    # Administration: who changed the workspace's keys and connections (never a secret in ``data``).
    api_key_created = "api_key.created"
    api_key_revoked = "api_key.revoked"
    integration_created = "integration.created"
    integration_updated = "integration.updated"
    integration_deleted = "integration.deleted"
    webhook_created = "webhook.created"
    webhook_updated = "webhook.updated"
    webhook_deleted = "webhook.deleted"
    webhook_secret_rotated = "webhook.secret_rotated"


# Events about the workspace's keys and connections: they name endpoint URLs (which can carry a receiver's
# token) and who holds which key, so only admin keys read them, in the feed and in the audit trail alike.
ADMIN_ONLY: frozenset[EventType] = frozenset(
    {
        EventType.api_key_created,
        EventType.api_key_revoked,
        EventType.integration_created,
        EventType.integration_updated,
        EventType.integration_deleted,
        EventType.webhook_created,
        EventType.webhook_updated,
        EventType.webhook_deleted,
        EventType.webhook_secret_rotated,
        EventType.webhook_disabled,
        EventType.webhook_test,
    }
)

# What each event means, for the reference page and the API's description of the `type` filter.
DESCRIPTIONS: dict[EventType, str] = {
    EventType.review_created: "A review was queued (by an evaluator, a spot check, or by hand). `data`: the review.",
    EventType.review_claimed: "A reviewer opened (claimed) a review. `data`: the review.",
    EventType.review_resolved: "A review was resolved, by a person or by memory (`data.resolution.resolved_by`).",
    EventType.review_reopened: "A resolved review went back to pending (a control it rested on changed). `data`: the review.",
    EventType.review_decision_submitted: (
        "One reviewer's decision on a review that needs several (overlap); the review is still pending. "
        "`data`: the review (the decision itself stays blind: read it from /decisions)."
    ),
    EventType.review_needs_adjudication: (
        "The reviewers of an overlapped review disagreed: it waits for a lead to adjudicate. `data`: the review."
    ),
    EventType.review_assigned: "A review was assigned to a reviewer, or unassigned. `data`: the review.",
    EventType.review_due_soon: (
        "A pending review passed the warning point of its SLA (once per review). `data`: the review, with `sla`."
    ),
    EventType.review_overdue: "A pending review passed its SLA due time (once per review). `data`: the review, with `sla`.",
    EventType.control_created: "A control (evaluation memory) was created. `data`: the control.",
    EventType.control_updated: "A control was edited (a new version). `data`: the control.",
    EventType.control_retired: "A control was retired: out of memory, never erased. `data`: the control.",
    EventType.evaluation_completed: (
        "An evaluation was stored: every ambiguous, re-evaluated or failed one, and a sample of the rest "
        "(CASEWORK_EVALUATION_EVENT_SAMPLE). `data`: the evaluation."
    ),
    EventType.evaluator_updated: "A new version of an evaluator (or its first). `data`: the version.",
    EventType.queue_threshold_crossed: (
        "A project's queue reached a pending-count or oldest-age threshold. `data`: metric, value, threshold."
    ),
    EventType.queue_threshold_cleared: "A project's queue fell below 80% of its threshold. `data`: as when crossed.",
    EventType.risk_tiers_updated: "A project's risk tiers and rules were replaced (a new version). `data`: the policy.",
    EventType.golden_set_created: "A golden set was created (its version 1). `data`: the set.",
    EventType.golden_set_updated: (
        "A golden set got a new version (items added or rebuilt) or new thresholds. `data`: the set."
    ),
    EventType.golden_run_failed: (
        "A golden-set run failed: one of its jobs failed on every attempt. `data`: the run, with its `error`."
    ),
    EventType.golden_run_completed: (
        "A golden-set run finished: per evaluator version, accuracy, kappa, ambiguity rate, thresholds passed "
        "or failed, and the diff with the previous run. `data`: the run."
    ),
    EventType.webhook_disabled: "A webhook endpoint was disabled after failing (410, or too many failed deliveries).",
    EventType.webhook_test: "A test message sent to one webhook endpoint on request.",
    EventType.api_key_created: (
        "An API key was created (web UI or `casework keys create`). `data`: id, label, role, dates; never the secret."
    ),
    EventType.api_key_revoked: "An API key was revoked. `data`: as when created, with `revoked_at`.",
    EventType.integration_created: "An integration was registered. `data`: the integration, without its secrets.",
    EventType.integration_updated: "An integration was changed. `data`: the integration, without its secrets.",
    EventType.integration_deleted: "An integration was removed. `data`: the integration as it was.",
    EventType.webhook_created: "A webhook endpoint was registered. `data`: the endpoint, without its secret.",
    EventType.webhook_updated: "A webhook endpoint was changed. `data`: the endpoint, without its secret.",
    EventType.webhook_deleted: "A webhook endpoint was deleted. `data`: the endpoint as it was.",
    EventType.webhook_secret_rotated: (
        "A webhook endpoint's signing secret was replaced. `data`: the endpoint, without either secret."
    ),
}

ALL_TYPES = frozenset(member.value for member in EventType)
