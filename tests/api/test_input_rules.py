"""What no caller can store, on SQLite and PostgreSQL alike: NUL characters and lone surrogates in any text,
free-form JSON nested without bound. Each is refused at the edge (422), before anything is written; and a reply
that cannot be written rolls its request back."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from casework.db.engine import Database
from tests.support import enqueue, make_project, table_counts

FEEDBACK = {"classification": "compliant", "reasoning": "Fine.", "reviewer": "ana@bank.example"}


def nested(depth: int) -> dict[str, Any]:
    """An object ``depth`` levels deep: {"a": {"a": ... {}}}."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def post_json(client: httpx.Client, path: str, text: str) -> httpx.Response:
    """A JSON body sent as written (httpx's json= would refuse a lone surrogate)."""
    return client.post(
        path, content=text.encode("utf-8", "surrogatepass"), headers={"content-type": "application/json"}
    )


def assert_refused(response: httpx.Response, where: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert where in error["message"], error["message"]


def test_deeply_nested_metadata_is_refused_and_the_queue_keeps_working(
    admin: httpx.Client, database: Database
) -> None:
    project_id = make_project(admin)
    before = table_counts(database)
    for depth in (33, 256, 900):
        response = admin.post(
            "/api/v1/hitl/reviews",
            json={
                "project_id": project_id,
                "evaluator_type": "e",
                "query": "q",
                "response": "r",
                "options": ["a", "b"],
                "metadata": nested(depth),
            },
        )
        assert_refused(response, "nested deeper than 32 levels")
    assert table_counts(database) == before
    listing = admin.get("/api/v1/hitl/reviews", params={"project_id": project_id})
    assert (listing.status_code, listing.json()["reviews"]) == (200, [])
    kept = enqueue(admin, project_id, metadata=nested(32))
    assert kept["metadata"] == nested(32)
    assert admin.get("/api/v1/hitl/reviews", params={"project_id": project_id}).status_code == 200


def test_metadata_is_bounded_in_size(admin: httpx.Client) -> None:
    project_id = make_project(admin)
    too_big = {"notes": "x" * (64 * 1024)}
    response = admin.post(
        "/api/v1/hitl/reviews",
        json={"project_id": project_id, "evaluator_type": "e", "query": "q", "response": "r", "options": ["a"],
              "metadata": too_big},
    )  # fmt: skip
    assert_refused(response, "at most 65536 bytes")


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ('{"name": "a\\u0000b"}', "body.name"),
        ('{"name": "a\\ud800b"}', "body.name"),
    ],
)
def test_project_names_with_nul_or_a_lone_surrogate_are_refused(
    admin: httpx.Client, database: Database, body: str, where: str
) -> None:
    before = table_counts(database)
    assert_refused(post_json(admin, "/api/v1/projects", body), where)
    assert table_counts(database) == before


@pytest.mark.parametrize(
    "metadata",
    ['{"a": "x\\u0000"}', '{"a\\u0000": 1}', '{"a": ["\\udc80"]}', '{"a": NaN}', '{"a": [1, Infinity]}'],
)
def test_metadata_that_a_database_cannot_store_is_refused(
    admin: httpx.Client, database: Database, metadata: str
) -> None:
    project_id = make_project(admin)
    before = table_counts(database)
    body = (
        f'{{"project_id": "{project_id}", "evaluator_type": "e", "query": "q", "response": "r", '
        f'"options": ["a"], "metadata": {metadata}}}'
    )
    assert_refused(post_json(admin, "/api/v1/hitl/reviews", body), "body.metadata")
    assert table_counts(database) == before


def test_nul_in_feedback_and_controls_is_refused(admin: httpx.Client, database: Database) -> None:
    project_id = make_project(admin)
    review = enqueue(admin, project_id)
    before = table_counts(database)
    feedback = admin.post(
        f"/api/v1/hitl/reviews/{review['id']}/feedback", json={**FEEDBACK, "reasoning": "because\x00"}
    )
    assert_refused(feedback, "body.reasoning")
    control = admin.post(
        "/api/v1/controls",
        json={"project_id": project_id, "evaluator_type": "e", "classification": "a", "reasoning": "r",
              "reviewer": "x", "query": "\x00"},
    )  # fmt: skip
    assert_refused(control, "body.query")
    bulk = admin.post(
        "/api/v1/hitl/reviews/bulk-feedback",
        json={"feedback": [{"review_id": review["id"], **FEEDBACK, "reviewer": "a\x00"}]},
    )
    assert bulk.status_code == 200
    assert bulk.json()["results"][0]["error"]["code"] == "validation_error"
    assert table_counts(database) == before


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/projects/prj%00x",
        "/api/v1/hitl/reviews/rev%00x",
        "/api/v1/controls/ctl%00x",
        "/api/v1/controls/ctl%00x/history",
        "/api/v1/evaluators/evl%00x",
        "/api/v1/traces/abc%00",
        "/api/v1/sessions/s%00",
        "/api/v1/jobs/job%00x",
    ],
)
def test_path_ids_with_nul_are_refused(admin: httpx.Client, path: str) -> None:
    assert_refused(admin.get(path), "path.")


def test_query_parameters_with_nul_are_refused(admin: httpx.Client) -> None:
    project_id = make_project(admin)
    for path, params in [
        ("/api/v1/hitl/reviews", {"project_id": project_id, "evaluator_type": "a\x00"}),
        ("/api/v1/hitl/reviews", {"project_id": project_id, "tag": "\x00"}),
        ("/api/v1/controls", {"project_id": project_id, "q": "word\x00"}),
        ("/api/v1/controls", {"project_id": f"{project_id}\x00"}),
        ("/api/v1/audit", {"project_id": project_id, "action": "\x00"}),
        ("/api/v1/traces", {"project_id": project_id, "session_id": "\x00"}),
    ]:
        assert_refused(admin.get(path, params=params), "query.")


def test_a_reply_that_cannot_be_written_changes_nothing(
    admin: httpx.Client, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever slips past the edge, a write whose reply cannot be serialised is rolled back: a 500 that leaves
    the review behind would fail every later read of the queue."""
    from casework.api.routers.v1 import reviews

    project_id = make_project(admin)
    before = table_counts(database)

    def unwritable(_review: Any) -> Any:
        raise ValueError("cannot serialise this reply")

    monkeypatch.setattr(reviews, "_public", unwritable)
    response = admin.post(
        "/api/v1/hitl/reviews",
        json={
            "project_id": project_id,
            "evaluator_type": "e",
            "query": "q",
            "response": "r",
            "options": ["a"],
        },
    )
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert table_counts(database) == before


def test_a_body_nested_past_the_parser_is_a_bad_request(admin: httpx.Client) -> None:
    response = admin.post(
        "/api/v1/projects", content=b"[" * 100_000, headers={"content-type": "application/json"}
    )
    assert (response.status_code, response.json()["error"]["code"]) == (400, "bad_request")
    assert json.loads(response.text)["error"]["details"] == {}
