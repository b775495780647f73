"""Decisions that come from a tool (a Slack modal, a Jira comment, a ServiceNow outbound message, a Zendesk
note) become ordinary feedback: ``submit_feedback`` with its validation and rules, the reviewer being the tool
user's e-mail. What cannot be applied is answered in the tool, never dropped in silence."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.db.models import Integration, IntegrationLink, Review
from casework.db.types import utcnow
from casework.errors import (
    DecisionAlreadySubmitted,
    ReviewAlreadyResolved,
    ReviewNeedsAdjudication,
    ValidationFailed,
)
from casework.integrations import messages
from casework.integrations.base import Decision, Outcome
from casework.services.auth import Principal, Role
from casework.services.integration_deliveries import queue_reply
from casework.services.projects import project_in_workspace
from casework.services.review_queries import review_record
from casework.services.reviews import Feedback, submit_feedback


def reviewer_allowed(email: str, allowed: list[str]) -> bool:
    """Anyone, when the list is empty; else an address on it, or one in a domain on it (``@bank.example``)."""
    if not allowed:
        return True
    address = email.strip().lower()
    for entry in (a.strip().lower() for a in allowed):
        if address == entry or (entry.startswith("@") and address.endswith(entry)):
            return True
    return False


def principal_for(integration: Integration) -> Principal:
    """Who submits a decision from a tool: the integration, with a reviewer's rights in its workspace. The
    person is the feedback's ``reviewer``; this is its ``submitted_by``."""
    return Principal(
        key_id=integration.id,
        workspace_id=integration.workspace_id,
        role=Role.reviewer,
        label=f"{integration.kind} integration",
    )


def decide(
    session: Session, *, integration_id: str, decision: Decision, problem: str | None = None
) -> Outcome:
    """Apply ``decision`` as feedback, or say why not. ``problem``: the caller already found the decision
    malformed (a missing reasoning, a bad tag), in the same words the API would use."""
    integration = session.get_one(Integration, integration_id)
    outcome = _outcome(session, integration, decision, problem)
    if not outcome.accepted and decision.reply_to:
        queue_reply(session, integration=integration, reply_to=decision.reply_to, text=outcome.message)
    return outcome


def _outcome(session: Session, integration: Integration, decision: Decision, problem: str | None) -> Outcome:
    review = session.get(Review, decision.review_id) if decision.review_id else None
    if (
        review is None
        or not project_in_workspace(
            session, workspace_id=integration.workspace_id, project_id=review.project_id
        )
        or integration.project_id not in (None, review.project_id)
    ):
        return Outcome(
            "refused",
            f"Casework has no review {decision.review_id!r} for this {integration.kind} integration.",
        )
    if not decision.reviewer:
        return Outcome(
            "refused",
            f"Casework could not tell who you are: {integration.kind} did not give your e-mail address, which "
            "Casework records as the reviewer. Ask your admin to check the integration's set-up.",
            review.id,
        )
    if not reviewer_allowed(decision.reviewer, list(integration.config.get("allowed_reviewers") or [])):
        return Outcome(
            "refused",
            f"{decision.reviewer} is not allowed to decide reviews from {integration.kind}.",
            review.id,
        )
    if problem is not None:
        return Outcome("refused", problem, review.id)
    try:
        result = submit_feedback(
            session,
            principal=principal_for(integration),
            review_id=review.id,
            feedback=Feedback(
                classification=decision.classification,
                reasoning=decision.reasoning,
                reviewer=decision.reviewer,
                tags=list(decision.tags),
            ),
        )
    except ReviewAlreadyResolved as exc:
        return Outcome(
            "already_decided", messages.already_decided(exc.details.get("resolution") or {}), review.id
        )
    except (ValidationFailed, DecisionAlreadySubmitted, ReviewNeedsAdjudication) as exc:
        # Said in the tool, in the API's words: a review several people decide takes one decision from each,
        # and once they disagree only a lead rules (in Casework, where every decision is in view).
        return Outcome("refused", exc.message, review.id)
    if result.review.status != "resolved":  # several reviewers: this one's decision is in, others' to come
        waiting = (
            "the reviewers disagree, so a lead will rule"
            if result.review.status == "needs_adjudication"
            else f"{result.review.decisions_submitted} of {result.review.reviewers_required} decisions are in"
        )
        return Outcome(
            "accepted",
            f"Recorded: {decision.classification} (by {decision.reviewer}); {waiting}.",
            review.id,
            None,
        )
    return Outcome(
        "accepted",
        f"Decided: {decision.classification} (by {decision.reviewer}).",
        review.id,
        result.control_id,
    )


def resolution_of(session: Session, *, integration_id: str, review_id: str) -> dict[str, Any] | None:
    """The review's resolution when it is one of this integration's reviews and resolved; else None."""
    integration = session.get_one(Integration, integration_id)
    review = session.get(Review, review_id)
    if (
        review is None
        or review.status != "resolved"
        or integration.project_id not in (None, review.project_id)
        or not project_in_workspace(
            session, workspace_id=integration.workspace_id, project_id=review.project_id
        )
    ):
        return None
    resolution: dict[str, Any] = review_record(review)["resolution"] or {}
    return resolution


def review_for_external(session: Session, *, integration_id: str, external_id: str) -> list[str]:
    """The reviews linked to a tool's object (a Jira issue key, a ServiceNow sys_id, a Zendesk ticket id), newest
    first."""
    return list(
        session.execute(
            select(IntegrationLink.review_id)
            .where(
                IntegrationLink.integration_id == integration_id, IntegrationLink.external_id == external_id
            )
            .order_by(IntegrationLink.created_at.desc())
        ).scalars()
    )


def note_ticket_state(session: Session, *, integration_id: str, external_id: str, closed: bool) -> int:
    """The tool says its ticket (a Jira issue, a ServiceNow record, a Zendesk ticket, an Azure DevOps work item)
    is closed (resolved, done, deleted) or open again: its links keep it (since when it is closed), and the SLA
    sweep pauses only the reviews whose ticket is open (casework.services.sla_sweep). Returns how many reviews
    are linked to the ticket (0: not one of Casework's)."""
    links = list(
        session.execute(
            select(IntegrationLink)
            .where(
                IntegrationLink.integration_id == integration_id, IntegrationLink.external_id == external_id
            )
            .with_for_update()
        ).scalars()
    )
    for link in links:
        if not closed:
            link.closed_at = None
        elif link.closed_at is None:
            link.closed_at = utcnow()
    return len(links)
