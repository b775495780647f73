"""One error shape for every failure: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from casework.errors import CaseworkError, InternalError, RateLimited, ServiceUnavailable, ValidationFailed

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


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CaseworkError)
    async def _casework(_request: Request, exc: CaseworkError) -> JSONResponse:
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

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(InternalError("Something went wrong on the server; it has been logged."))
