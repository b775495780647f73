"""The OpenAPI document tells the truth: every error status with the one error shape, success statuses as the
server answers them. (The fuzzing stage, tests/api/test_fuzzing.py, checks every reply against it.)"""

from __future__ import annotations

import ast
import builtins
import inspect
import textwrap
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from casework.api.openapi import _api_routes, error_statuses
from casework.app import create_app
from casework.config import Settings
from casework.errors import CaseworkError
from tests.support import POLICY_EVALUATOR, make_project

ERROR = {"$ref": "#/components/schemas/ErrorBody"}


@pytest.fixture
def spec(anonymous: httpx.Client) -> dict[str, Any]:
    document: dict[str, Any] = anonymous.get("/openapi.json").json()
    return document


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in spec["paths"].items() for method, op in ops.items()]


def test_every_error_status_has_the_one_error_shape(spec: dict[str, Any]) -> None:
    assert spec["components"]["schemas"]["ErrorBody"]["required"] == ["error"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for method, path, operation in operations(spec):
        responses = operation["responses"]
        assert "500" in responses, (method, path)
        for status, response in responses.items():
            if int(status) >= 400:
                assert response["content"] == {"application/json": {"schema": ERROR}}, (method, path, status)
        if "503" in responses:
            assert "Retry-After" in responses["503"]["headers"]


def test_each_kind_of_operation_lists_the_errors_it_can_answer(spec: dict[str, Any]) -> None:
    def statuses(method: str, path: str) -> set[str]:
        return set(spec["paths"][path][method.lower()]["responses"])

    assert statuses("GET", "/healthz") == {"200", "500"}
    assert statuses("GET", "/api/v1/projects") == {"200", "401", "500", "503"}
    assert statuses("POST", "/api/v1/projects") == {
        "200", "201", "400", "401", "403", "413", "415", "422", "500", "503",
    }  # fmt: skip
    assert statuses("GET", "/api/v1/hitl/reviews") == {"200", "401", "404", "422", "500", "503"}
    assert {"404", "409"} <= statuses("POST", "/api/v1/hitl/reviews/{review_id}/feedback")
    assert {"404", "409"} <= statuses("POST", "/api/v1/hitl/reviews/{review_id}/claim")
    assert {"404", "409"} <= statuses("PATCH", "/api/v1/hitl/reviews/{review_id}")
    assert "409" in statuses("POST", "/api/v1/golden-sets")
    assert {"400", "404", "413", "415", "422", "503"} <= statuses("POST", "/v1/traces")
    assert set(spec["paths"]["/v1/traces"]["post"]["requestBody"]["content"]) == {
        "application/x-protobuf",
        "application/json",
    }


def test_created_and_existing_are_both_documented_and_answered(
    spec: dict[str, Any], admin: httpx.Client
) -> None:
    project_id = make_project(admin)
    calls = [
        ("/api/v1/projects", "/api/v1/projects", {"name": "again"}),
        ("/api/v1/projects/{project_id}/runs", f"/api/v1/projects/{project_id}/runs", {"name": "r1"}),
        ("/api/v1/evaluators", "/api/v1/evaluators", {**POLICY_EVALUATOR, "project_id": project_id}),
    ]
    for documented, path, body in calls:
        responses = spec["paths"][documented]["post"]["responses"]
        assert {"200", "201"} <= set(responses)
        assert responses["200"]["content"] == responses["201"]["content"]
        assert [admin.post(path, json=body).status_code for _ in range(2)] == [201, 200], path


def test_the_export_documents_each_format_it_answers(spec: dict[str, Any], admin: httpx.Client) -> None:
    project_id = make_project(admin)
    content = spec["paths"]["/api/v1/hitl/reviews/export"]["get"]["responses"]["200"]["content"]
    for format, media_type in (
        ("json", "application/json"),
        ("jsonl", "application/x-ndjson"),
        ("csv", "text/csv"),
    ):
        reply = admin.get("/api/v1/hitl/reviews/export", params={"project_id": project_id, "format": format})
        assert reply.headers["content-type"].split(";")[0] == media_type
        assert media_type in content


def test_operations_that_need_a_key_say_so(spec: dict[str, Any], anonymous: httpx.Client) -> None:
    assert spec["components"]["securitySchemes"]["apiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
    }
    for method, path, operation in operations(spec):
        needs_key = "401" in operation["responses"]
        assert bool(operation.get("security")) == needs_key, (method, path)
    assert anonymous.get("/api/v1/projects").status_code == 401
    assert anonymous.get("/healthz").status_code == 200


def test_every_error_a_route_can_raise_is_documented(tmp_path: Path) -> None:
    """Read each route's code, and the casework functions it names, all the way down: each CaseworkError made
    there and not caught on the way has its status in the route's documented responses."""
    # With a metrics token, so that GET /metrics can answer everything its code can (401 without the token).
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'unused.db'}", metrics_token="t")
    app = create_app(settings)
    try:
        undocumented = {}
        for route in _api_routes(app):
            for method in route.methods:
                found = {error.status_code: error.__name__ for error in raised_by(route.endpoint, set())}
                missing = {
                    code: name for code, name in found.items() if code not in error_statuses(route, method)
                }
                if missing:
                    undocumented[f"{method} {route.path}"] = missing
    finally:
        app.state.database.dispose()
    assert undocumented == {}


def raised_by(function: Callable[..., Any], seen: set[Any]) -> set[type[CaseworkError]]:
    """The error classes ``function`` (or a casework function it names: calls it, or hands it on) makes and does
    not catch itself. Names are resolved in the function's module, as Python would."""
    function = inspect.unwrap(function)
    if function in seen or not getattr(function, "__module__", "").startswith("casework."):
        return set()
    seen.add(function)
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError):
        return set()
    return _errors_in(tree, function.__globals__, seen)


def _errors_in(node: ast.AST, namespace: dict[str, Any], seen: set[Any]) -> set[type[CaseworkError]]:
    if isinstance(node, ast.Try):
        inside = set().union(*(_errors_in(child, namespace, seen) for child in node.body))
        caught: list[Any] = []
        for handler in node.handlers:
            if handler.type is None:
                caught.append(BaseException)
            for name in handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]:
                caught.append(_resolve(name, namespace) if name is not None else BaseException)
        classes = tuple(c for c in caught if isinstance(c, type))
        found = {error for error in inside if not issubclass(error, classes)}
        for rest in (*[s for h in node.handlers for s in h.body], *node.orelse, *node.finalbody):
            found |= _errors_in(rest, namespace, seen)
        return found
    found = set()
    made = node.func if isinstance(node, ast.Call) else node.exc if isinstance(node, ast.Raise) else None
    error = _resolve(made, namespace) if made is not None else None
    if isinstance(error, type) and issubclass(error, CaseworkError):
        found.add(error)
    if isinstance(node, ast.Name | ast.Attribute) and inspect.isfunction(_resolve(node, namespace)):
        found |= raised_by(_resolve(node, namespace), seen)
    for child in ast.iter_child_nodes(node):
        found |= _errors_in(child, namespace, seen)
    return found


def _resolve(node: ast.AST, namespace: dict[str, Any]) -> Any:
    if isinstance(node, ast.Name):
        return namespace.get(node.id, getattr(builtins, node.id, None))
    if isinstance(node, ast.Attribute):
        owner = _resolve(node.value, namespace)
        if isinstance(owner, types.ModuleType | type):
            return getattr(owner, node.attr, None)
    return None


def test_metrics_documents_a_401_only_when_it_asks_for_a_token(tmp_path: Path) -> None:
    def metrics(**settings: Any) -> dict[str, Any]:
        url = f"sqlite:///{tmp_path / 'unused.db'}"
        document = create_app(Settings(home=tmp_path, database_url=url, **settings)).openapi()
        operation: dict[str, Any] = document["paths"]["/metrics"]["get"]
        return operation

    open_metrics = metrics()
    assert "401" not in open_metrics["responses"] and "security" not in open_metrics
    guarded = metrics(metrics_token="t")
    assert "401" in guarded["responses"] and guarded["security"] == [{"bearer": []}]
