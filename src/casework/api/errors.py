"""One error shape for every failure: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from casework.errors import (
    CaseworkError,
    InternalError,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
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


def error_response(error: CaseworkError) -> JSONResponse:
    headers = {}
    if isinstance(error, RateLimited | ServiceUnavailable):
        headers["Retry-After"] = str(error.retry_after)
    return JSONResponse(error.to_dict(), status_code=error.status_code, headers=headers)


def _validation_details(exc: RequestValidationError) -> dict[str, Any]:
    errors = []
    for item in exc.errors():
        errors.append(
            {"loc": list(item.get("loc", ())), "message": item.get("msg", ""), "type": item.get("type")}
        )
    return {"errors": errors}


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
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        first = details["errors"][0] if details["errors"] else {"loc": [], "message": "invalid request"}
        where = ".".join(str(part) for part in first["loc"])
        return error_response(ValidationFailed(f"{where}: {first['message']}", details=details))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        body = {"error": {"code": code, "message": str(exc.detail), "details": {}}}
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(OperationalError)
    async def _database(request: Request, exc: OperationalError) -> JSONResponse:
        # SQLite gives up waiting for another process's write lock after busy_timeout: that is overload.
        if "database is locked" in str(exc.orig):
            logger.warning("database busy on %s %s", request.method, request.url.path)
            return error_response(
                ServiceUnavailable("The database is busy with other writes; try again.", retry_after=1)
            )
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(InternalError("Something went wrong on the server; it has been logged."))


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
