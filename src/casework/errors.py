"""The domain error tree. Each error has an HTTP status and a stable ``code``; the API renders them as
``{"error": {"code", "message", "details"}}`` and the SDK raises the matching class from that code.

No web framework is imported here: services raise these, the API and the SDK both use them.
"""

from __future__ import annotations

from typing import Any, ClassVar


class CaseworkError(Exception):
    """Base of every error Casework reports to a caller."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(CaseworkError):
    status_code = 400
    code = "bad_request"


class Unauthenticated(CaseworkError):
    status_code = 401
    code = "unauthenticated"


class PermissionDenied(CaseworkError):
    status_code = 403
    code = "permission_denied"


class NotFound(CaseworkError):
    status_code = 404
    code = "not_found"


class WorkspaceNotFound(NotFound):
    code = "workspace_not_found"


class ProjectNotFound(NotFound):
    code = "project_not_found"


class RunNotFound(NotFound):
    code = "run_not_found"


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"


class ReviewNotFound(NotFound):
    code = "review_not_found"


class ControlNotFound(NotFound):
    code = "control_not_found"


class EvaluatorNotFound(NotFound):
    code = "evaluator_not_found"


class TraceNotFound(NotFound):
    code = "trace_not_found"


class SessionNotFound(NotFound):
    code = "session_not_found"


class EvaluationNotFound(NotFound):
    code = "evaluation_not_found"


class JobNotFound(NotFound):
    code = "job_not_found"


class WebhookNotFound(NotFound):
    code = "webhook_not_found"


class DeliveryNotFound(NotFound):
    code = "delivery_not_found"


class IntegrationNotFound(NotFound):
    code = "integration_not_found"


class GoldenSetNotFound(NotFound):
    code = "golden_set_not_found"


class GoldenRunNotFound(NotFound):
    code = "golden_run_not_found"


class MethodNotAllowed(CaseworkError):
    status_code = 405
    code = "method_not_allowed"


class Conflict(CaseworkError):
    status_code = 409
    code = "conflict"


class ReviewAlreadyResolved(Conflict):
    code = "review_already_resolved"


class ReviewClaimed(Conflict):
    code = "review_claimed"


class GoldenSetExists(Conflict):
    code = "golden_set_exists"


class DecisionAlreadySubmitted(Conflict):
    """A reviewer already gave a different decision on this overlapped review: one decision per reviewer."""

    code = "decision_already_submitted"


class ReviewNeedsAdjudication(Conflict):
    """The reviewers disagreed: only a lead (an admin) decides now, with ``adjudicate: true``."""

    code = "review_needs_adjudication"


class ReviewNotAwaitingAdjudication(Conflict):
    """``adjudicate: true`` on a review whose reviewers have not disagreed."""

    code = "review_not_awaiting_adjudication"


class PayloadTooLarge(CaseworkError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(CaseworkError):
    status_code = 415
    code = "unsupported_media_type"


class ValidationFailed(CaseworkError):
    status_code = 422
    code = "validation_error"


class InvalidCursor(ValidationFailed):
    code = "invalid_cursor"


class RateLimited(CaseworkError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int = 1, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class ServiceUnavailable(CaseworkError):
    status_code = 503
    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after: int = 1, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class OutcomeUnknown(ServiceUnavailable):
    """The database stopped answering while it committed: the change may or may not have been saved. A 503
    like any outage (never a 500), but with its own code, so that a client checks before sending it again."""

    code = "outcome_unknown"


class InternalError(CaseworkError):
    status_code = 500
    code = "internal_error"


def all_error_classes() -> list[type[CaseworkError]]:
    """Every concrete error class, for the docs check and the SDK's code-to-class table."""
    found: list[type[CaseworkError]] = []
    pending: list[type[CaseworkError]] = [CaseworkError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def error_class_for_code(code: str) -> type[CaseworkError]:
    """The most specific class registered for ``code``; ``CaseworkError`` for codes this version does not know."""
    for cls in all_error_classes():
        if cls.code == code and cls is not CaseworkError:
            return cls
    return CaseworkError
