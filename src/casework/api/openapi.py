"""The OpenAPI document, made true about errors in one place: every error status an operation can answer is
listed with the one error shape, derived from what the operation is (authenticated, a write, takes a body, names
objects), instead of repeated on every route. ``tests/api/test_openapi.py`` and the fuzzing stage hold it to
what the server does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant

from casework.api.deps import current_principal, unit_of_work, write_unit_of_work
from casework.api.schemas.common import ErrorBody

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SECURITY_SCHEMES = {
    "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    "bearer": {"type": "http", "scheme": "bearer", "description": "The same API key, as a bearer token."},
}
_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}
}
WHEN = {
    400: "The body cannot be understood as sent: not valid JSON (or OTLP that does not decode).",
    401: "No API key, an unknown one, or a revoked one.",
    403: "The key's role may not do this.",
    404: "No such object in the caller's workspace.",
    409: "The request conflicts with the current state.",
    413: "The body is over CASEWORK_MAX_BODY_BYTES, or a batch over its item limit.",
    415: "The body's content type (or encoding) is not accepted here.",
    422: "The parameters or the body are invalid: details.errors says where.",
    500: "A bug: the server logged it.",
    503: "Overloaded, or the database cannot serve right now: retry after Retry-After seconds.",
}


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` with FastAPI's document plus the error responses of every operation."""
    make_document = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = make_document()  # FastAPI's, cached on the app: completed here, once
            _document_errors(document, app)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def error_statuses(route: Any, method: str) -> set[int]:
    """The error statuses ``method`` on ``route`` (an API route) can answer."""
    calls = set(_calls(route.dependant))
    authenticated = current_principal in calls
    uses_database = authenticated or bool(calls & {unit_of_work, write_unit_of_work})
    takes_body = route.body_field is not None or "requestBody" in (route.openapi_extra or {})
    parameters = [p for d in _dependants(route.dependant) for p in (*d.path_params, *d.query_params)]
    names_objects = bool(route.dependant.path_params) or any(p.alias.endswith("_id") for p in parameters)
    if route.body_field is not None:
        model = route.body_field.field_info.annotation
        names_objects |= any(name.endswith("_id") for name in getattr(model, "model_fields", {}))
    statuses = {500}
    if parameters or takes_body:
        statuses.add(422)
    if takes_body:
        statuses |= {400, 413, 415}
    if authenticated:
        statuses.add(401)
        if method in _WRITES:
            statuses.add(403)
        if names_objects:
            statuses.add(404)
    if uses_database:
        statuses.add(503)
    # What only the route itself knows (a conflict, a bound of its own) it declares in its decorator.
    statuses |= {int(status) for status in route.responses if str(status).isdigit() and int(status) >= 400}
    return statuses


def _document_errors(document: dict[str, Any], app: FastAPI) -> None:
    components = document.setdefault("components", {})
    components["securitySchemes"] = SECURITY_SCHEMES
    schemas = components.setdefault("schemas", {})
    error_body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_body.pop("$defs", {}))
    schemas["ErrorBody"] = error_body
    for route in _api_routes(app):
        for method in route.methods:
            operation = document["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            statuses = error_statuses(route, method)
            if 401 in statuses:  # a key is needed: either header
                operation["security"] = [{"apiKey": []}, {"bearer": []}]
            for status in sorted(statuses):
                described = responses.get(str(status), {})
                responses[str(status)] = {
                    "description": described.get("description") or WHEN.get(status, "An error."),
                    "content": {"application/json": {"schema": ERROR_REF}},
                    **({"headers": _RETRY_AFTER} if status == 503 else {}),
                }
    _document_metrics(document, app)
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's own 422 shape, which we never send
        schemas.pop(unused, None)


def _api_routes(app: FastAPI) -> Iterator[Any]:
    """The app's documented API routes, also those of included routers (FastAPI >= 0.160 wraps them)."""
    flatten = getattr(routing, "iter_route_contexts", None)
    for route in flatten(app.routes) if flatten is not None else app.routes:
        if getattr(route, "include_in_schema", False) and getattr(route, "dependant", None) is not None:
            yield route


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    """The route's own and its dependencies', all the way down."""
    pending = [dependant]
    while pending:
        current = pending.pop()
        yield current
        pending.extend(current.dependencies)


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    return (d.call for d in _dependants(dependant) if d.call is not None)


def _document_metrics(document: dict[str, Any], app: FastAPI) -> None:
    """GET /metrics asks for a token only when CASEWORK_METRICS_TOKEN is set, and then its own, not an API key:
    the document says what this server does (a 401 it cannot answer would tell clients, and fuzzers, that it
    needs a key it ignores)."""
    operation = document["paths"].get("/metrics", {}).get("get")
    if operation is None:
        return
    settings = getattr(app.state, "settings", None)
    if settings is None or settings.metrics_token is None:
        operation.pop("security", None)
        operation.get("responses", {}).pop("401", None)
    else:
        operation["security"] = [{"bearer": []}]
