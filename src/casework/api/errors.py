"""One error shape for every failure: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from casework.db.engine import CommitOutcomeUnknown, database_unavailable
from casework.errors import (
    BadRequest,
    CaseworkError,
    InternalError,
    OutcomeUnknown,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)

logger = logging.getLogger("casework.api")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def error_headers(error: CaseworkError) -> dict[str, str]:
    """The headers an error's reply carries, as JSON or as a page: when to try again, for a "not now"."""
    if isinstance(error, RateLimited | ServiceUnavailable):
        return {"Retry-After": str(error.retry_after)}
    return {}


def error_response(error: CaseworkError) -> JSONResponse:
    return JSONResponse(error.to_dict(), status_code=error.status_code, headers=error_headers(error))


def _validation_details(exc: RequestValidationError) -> dict[str, Any]:
    errors = []
    for item in exc.errors():
        errors.append(
            {"loc": list(item.get("loc", ())), "message": item.get("msg", ""), "type": item.get("type")}
        )
    return {"errors": errors}


def _takes_json(request: Request) -> bool:
    """Whether the matched endpoint reads a JSON body (the web UI's forms do not)."""
    body_field = getattr(request.scope.get("route"), "body_field", None)
    return body_field is not None and not isinstance(body_field.field_info, params.Form)


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _request_error(request: Request, exc: RequestValidationError) -> CaseworkError:
    """A request the endpoint could not take: 400 for a body that is not JSON at all, 415 for a body sent as
    another media type, 422 for anything that parsed but is not valid."""
    errors = exc.errors()
    if any(item.get("type") == "json_invalid" for item in errors):
        problem = next(item for item in errors if item.get("type") == "json_invalid")
        reason = (problem.get("ctx") or {}).get("error", "not JSON")
        return BadRequest(f"The body is not valid JSON: {reason}.", details={"position": problem["loc"][-1]})
    content_type = request.headers.get("content-type", "")
    if _takes_json(request) and not _is_json(content_type):
        return UnsupportedMediaType(
            f"Send the body as application/json, not {content_type or 'without a content type'}.",
            details={"content_type": content_type},
        )
    details = _validation_details(exc)
    first = details["errors"][0] if details["errors"] else {"loc": [], "message": "invalid request"}
    where = ".".join(str(part) for part in first["loc"])
    return ValidationFailed(f"{where}: {first['message']}", details=details)


def _for_a_person(request: Request) -> bool:
    """A page of the web UI asked for by a browser: errors are shown as a page, not as JSON."""
    return (
        not request.url.path.startswith(("/api/", "/v1/"))
        and "text/html" in request.headers.get("accept", "")
        and getattr(request.app.state, "render_error", None) is not None
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CaseworkError)
    async def _casework(request: Request, exc: CaseworkError) -> Response:
        if _for_a_person(request):
            return request.app.state.render_error(request, exc)  # type: ignore[no-any-return]
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(_request_error(request, exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        body = {"error": {"code": code, "message": str(exc.detail), "details": {}}}
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(SQLAlchemyError)
    async def _database(request: Request, exc: SQLAlchemyError) -> Response:
        # Unreachable, restarting, locked by another writer, out of connections: "not now", which clients
        # (OTLP exporters among them) retry after Retry-After; a 500 would make them drop what they sent.
        if isinstance(getattr(exc, "orig", None), CommitOutcomeUnknown):
            logger.error("commit outcome unknown on %s %s: %s", request.method, request.url.path, exc)
            unknown = OutcomeUnknown(
                "The database stopped answering while saving this change: it may or may not have been saved. "
                "Check (for example, read the object back) before sending it again.",
                retry_after=5,
            )
            return await _casework(request, unknown)
        if database_unavailable(exc):
            logger.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
            unavailable = ServiceUnavailable(
                "The database is unavailable or busy right now; try again shortly.", retry_after=1
            )
            return await _casework(request, unavailable)
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        error = InternalError("Something went wrong on the server; it has been logged.")
        if _for_a_person(request):  # a page: an error page, not JSON in the browser
            return request.app.state.render_error(request, error)  # type: ignore[no-any-return]
        return error_response(error)


class RejectLargeBodies:
    """The request body limit, in the one error shape: a body that declares a larger Content-Length is refused
    before it is read; one that does not is counted as it arrives and refused when it passes the limit.
    Without a limit any client could fill the server's memory."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    def _error(self, size: str) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"The request body is {size} bytes; the limit is {self.max_body_bytes}.",
            details={"limit": self.max_body_bytes},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await error_response(self._error(declared))(scope, receive, send)
            return
        received = 0
        too_large = False
        started = False

        async def counted() -> Message:
            # Past the limit the app is told the client left, and stops reading; our 413 goes out instead.
            nonlocal received, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if too_large and not started:
                return  # the app's reply to a body it never got; ours is sent below
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not too_large:
                raise
        if too_large and not started:
            await error_response(self._error(f"more than {self.max_body_bytes}"))(scope, receive, send)
