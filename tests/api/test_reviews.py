from __future__ import annotations

import base64
import csv
import io
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from casework.db.engine import Database
from tests.support import POLICY_OPTIONS, Tenant, enqueue, make_project, table_counts

FEEDBACK = {
    "classification": "non_compliant",
    "reasoning": "No product has guaranteed returns; the agent had to correct the customer.",
    "reviewer": "[email protected]",
    "tags": ["guaranteed-returns"],
}


@pytest.fixture
def project_id(admin: httpx.Client) -> str:
    return make_project(admin)


def test_enqueue_returns_the_review_with_every_field(admin: httpx.Client, project_id: str) -> None:
    run = admin.post(f"/api/v1/projects/{project_id}/runs", json={"name": "r1"}).json()
    review = enqueue(
        admin,
        project_id,
        run_id=run["id"],
        context="policy v3",
        explanation="unsure",
        trace_id="t1",
        span_id="s1",
        priority=5,
        metadata={"channel": "chat"},
    )
    assert review["id"].startswith("rev_")
    assert review["status"] == "pending"
    assert review["classification"] == "ambiguous"
    assert review["options"] == POLICY_OPTIONS
    assert review["run_id"] == run["id"]
    assert (review["trace_id"], review["span_id"], review["priority"]) == ("t1", "s1", 5)
    assert review["metadata"] == {"channel": "chat"}
    assert review["resolution"] is None
    assert 0 <= review["age_seconds"] < 60
    assert admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()["id"] == review["id"]


def test_enqueue_twice_for_the_same_span_returns_the_pending_review(
    admin: httpx.Client, project_id: str
) -> None:
    first = admin.post(
        "/api/v1/hitl/reviews",
        json={
            "project_id": project_id,
            "evaluator_type": "e",
            "query": "q",
            "response": "r",
            "options": ["a", "b"],
            "span_id": "s-1",
        },
    )
    again = admin.post(
        "/api/v1/hitl/reviews",
        json={
            "project_id": project_id,
            "evaluator_type": "e",
            "query": "q",
            "response": "r",
            "options": ["a", "b"],
            "span_id": "s-1",
        },
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    other_evaluator = enqueue(admin, project_id, evaluator_type="other", span_id="s-1")
    assert other_evaluator["id"] != first.json()["id"]
    by_trace = [enqueue(admin, project_id, trace_id="t-9")["id"] for _ in range(3)]
    assert len(set(by_trace)) == 1


def test_pending_reviews_come_highest_priority_then_oldest_first_across_pages(
    admin: httpx.Client, project_id: str
) -> None:
    ids = {}
    for name, priority in [("low-old", 0), ("high-old", 9), ("low-new", 0), ("high-new", 9), ("mid", 3)]:
        ids[name] = enqueue(admin, project_id, priority=priority, query=name)["id"]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"project_id": project_id, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = admin.get("/api/v1/hitl/reviews", params=params).json()
        seen.extend(r["query"] for r in page["reviews"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["high-old", "high-new", "mid", "low-old", "low-new"]


def test_filters_status_evaluator_tag_and_time(admin: httpx.Client, project_id: str) -> None:
    a = enqueue(admin, project_id, evaluator_type="policy-adherence")
    enqueue(admin, project_id, evaluator_type="correctness", options=["correct", "incorrect"])
    admin.post(f"/api/v1/hitl/reviews/{a['id']}/feedback", json={**FEEDBACK, "classification": "compliant"})

    def ids(**params: Any) -> list[str]:
        response = admin.get("/api/v1/hitl/reviews", params={"project_id": project_id, **params})
        assert response.status_code == 200, response.text
        return [r["evaluator_type"] for r in response.json()["reviews"]]

    assert ids() == ["correctness"]
    assert ids(status="resolved") == ["policy-adherence"]
    assert sorted(ids(status="all")) == ["correctness", "policy-adherence"]
    assert ids(status="all", evaluator_type="correctness") == ["correctness"]
    assert ids(status="all", tag="guaranteed-returns") == ["policy-adherence"]
    assert ids(status="all", tag="nope") == []
    later = (datetime.now(timezone.utc) + timedelta(minutes=1)).isoformat()
    earlier = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    assert ids(status="all", created_after=later) == []
    assert len(ids(status="all", created_after=earlier, created_before=later)) == 2
    resolved = admin.get(f"/api/v1/hitl/reviews/{a['id']}").json()
    assert resolved["resolution"]["resolved_by"] == "human"
    assert resolved["resolution"]["reviewer"] == "[email protected]"
    assert resolved["resolution"]["tags"] == ["guaranteed-returns"]
    assert "admin@" in resolved["resolution"]["submitted_by"]


def test_feedback_creates_a_control_and_a_repeat_is_idempotent(admin: httpx.Client, project_id: str) -> None:
    review = enqueue(admin, project_id)
    first = admin.post(f"/api/v1/hitl/reviews/{review['id']}/feedback", json=FEEDBACK)
    assert first.status_code == 201
    body = first.json()
    assert body["status"] == "accepted" and body["review_id"] == review["id"]
    control = admin.get(f"/api/v1/controls/{body['control_id']}").json()
    assert control["review_id"] == review["id"]
    assert control["query"] == review["query"] and control["response"] == review["response"]
    assert control["reasoning"] == FEEDBACK["reasoning"]

    again = admin.post(f"/api/v1/hitl/reviews/{review['id']}/feedback", json=FEEDBACK)
    assert again.status_code == 200
    assert again.json() == body

    different = admin.post(
        f"/api/v1/hitl/reviews/{review['id']}/feedback", json={**FEEDBACK, "classification": "compliant"}
    )
    assert different.status_code == 409
    error = different.json()["error"]
    assert error["code"] == "review_already_resolved"
    assert error["details"]["resolution"]["classification"] == "non_compliant"
    assert len(admin.get("/api/v1/controls", params={"project_id": project_id}).json()["controls"]) == 1


def test_twenty_concurrent_submitters_make_exactly_one_control(
    tenant: Tenant, admin: httpx.Client, project_id: str
) -> None:
    review = enqueue(admin, project_id)

    def submit(i: int) -> httpx.Response:
        with tenant.client("reviewer") as client:
            classification = "non_compliant" if i % 2 else "compliant"
            return client.post(
                f"/api/v1/hitl/reviews/{review['id']}/feedback",
                json={**FEEDBACK, "classification": classification},
            )

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(submit, range(20)))
    assert sum(r.status_code == 201 for r in responses) == 1
    assert {r.status_code for r in responses} <= {200, 201, 409}
    winner = next(r.json() for r in responses if r.status_code == 201)
    for response in responses:
        if response.status_code == 200:
            assert response.json()["control_id"] == winner["control_id"]
        if response.status_code == 409:
            assert response.json()["error"]["code"] == "review_already_resolved"
    assert len(admin.get("/api/v1/controls", params={"project_id": project_id}).json()["controls"]) == 1


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"classification": "maybe"}, 422, "validation_error"),
        ({"classification": "ambiguous"}, 422, "validation_error"),
        ({"reasoning": ""}, 422, "validation_error"),
        ({"reasoning": "   "}, 422, "validation_error"),
        ({"reviewer": None}, 422, "validation_error"),
        ({"tags": ["Not A Slug!"]}, 422, "validation_error"),
        ({"tags": [f"t{i}" for i in range(21)]}, 422, "validation_error"),
    ],
)
def test_bad_feedback_is_rejected_and_changes_nothing(
    admin: httpx.Client, project_id: str, database: Database, change: dict[str, Any], status: int, code: str
) -> None:
    review = enqueue(admin, project_id)
    before = table_counts(database)
    body = {k: v for k, v in {**FEEDBACK, **change}.items() if v is not None}
    response = admin.post(f"/api/v1/hitl/reviews/{review['id']}/feedback", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert table_counts(database) == before
    assert admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()["status"] == "pending"


def test_wrong_classification_names_the_allowed_ones(admin: httpx.Client, project_id: str) -> None:
    review = enqueue(admin, project_id)
    error = admin.post(
        f"/api/v1/hitl/reviews/{review['id']}/feedback", json={**FEEDBACK, "classification": "maybe"}
    ).json()["error"]
    assert error["details"]["allowed"] == POLICY_OPTIONS
    assert "compliant" in error["message"]


def test_unknown_review_malformed_json_and_other_workspace_change_nothing(
    admin: httpx.Client, other_tenant: Tenant, project_id: str, database: Database
) -> None:
    review = enqueue(admin, project_id)
    before = table_counts(database)
    missing = admin.post("/api/v1/hitl/reviews/rev_nope/feedback", json=FEEDBACK)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "review_not_found")
    malformed = admin.post(
        f"/api/v1/hitl/reviews/{review['id']}/feedback",
        content=b'{"classification": ',
        headers={"content-type": "application/json"},
    )
    assert (malformed.status_code, malformed.json()["error"]["code"]) == (400, "bad_request")
    with other_tenant.client() as intruder:
        for response in (
            intruder.get(f"/api/v1/hitl/reviews/{review['id']}"),
            intruder.post(f"/api/v1/hitl/reviews/{review['id']}/feedback", json=FEEDBACK),
        ):
            assert (response.status_code, response.json()["error"]["code"]) == (404, "review_not_found")
            assert review["query"] not in response.text
        listing = intruder.get("/api/v1/hitl/reviews", params={"project_id": project_id})
        assert (listing.status_code, listing.json()["error"]["code"]) == (404, "project_not_found")
    assert table_counts(database) == before


def test_viewer_cannot_submit_or_enqueue(
    tenant: Tenant, admin: httpx.Client, project_id: str, database: Database
) -> None:
    review = enqueue(admin, project_id)
    before = table_counts(database)
    with tenant.client("viewer") as viewer:
        assert viewer.get("/api/v1/hitl/reviews", params={"project_id": project_id}).status_code == 200
        assert viewer.post(f"/api/v1/hitl/reviews/{review['id']}/feedback", json=FEEDBACK).status_code == 403
        assert viewer.post("/api/v1/hitl/reviews/bulk-feedback", json={"feedback": []}).status_code == 403
        assert (
            viewer.post(
                "/api/v1/hitl/reviews",
                json={
                    "project_id": project_id,
                    "evaluator_type": "e",
                    "query": "q",
                    "response": "r",
                    "options": ["a"],
                },
            ).status_code
            == 403
        )
    assert table_counts(database) == before


def test_enqueue_validation(admin: httpx.Client, project_id: str, database: Database) -> None:
    before = table_counts(database)
    base = {
        "project_id": project_id,
        "evaluator_type": "e",
        "query": "q",
        "response": "r",
        "options": ["a", "b"],
    }
    for bad, code in [
        ({**base, "options": None}, "validation_error"),
        ({**base, "options": []}, "validation_error"),
        ({**base, "options": ["a", "a"]}, "validation_error"),
        ({**base, "options": ["a", "ambiguous"]}, "validation_error"),
        ({**base, "confidence": 1.5}, "validation_error"),
        ({**base, "run_id": "run_nope"}, "run_not_found"),
        ({**base, "project_id": "prj_nope"}, "project_not_found"),
    ]:
        response = admin.post("/api/v1/hitl/reviews", json={k: v for k, v in bad.items() if v is not None})
        assert response.json()["error"]["code"] == code, (bad, response.text)
        assert response.status_code in (404, 422)
    assert table_counts(database) == before


def test_list_parameters_are_validated(admin: httpx.Client, project_id: str) -> None:
    for params in (
        {},
        {"project_id": project_id, "status": "done"},
        {"project_id": project_id, "limit": 501},
        {"project_id": project_id, "cursor": "garbage"},
    ):
        response = admin.get("/api/v1/hitl/reviews", params=params)
        assert response.status_code == 422, params
        assert response.json()["error"]["code"] in ("validation_error", "invalid_cursor")


def cursor_of(raw: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"created_after": "0001-01-01T00:00:00+14:00"}, "validation_error"),
        ({"created_before": "9999-12-31T23:59:59-14:00"}, "validation_error"),
        ({"status": "all", "created_before": "9999-12-31T23:59:59-14:00"}, "validation_error"),
        ({"status": "all", "cursor": cursor_of(["2020-01-01", {}])}, "invalid_cursor"),
        (
            {"status": "all", "cursor": cursor_of(["2020-01-01T00:00:00+00:00", "rev_\u0000"])},
            "invalid_cursor",
        ),
        ({"cursor": cursor_of([True, "2020-01-01T00:00:00+00:00", "rev_1"])}, "invalid_cursor"),
        ({"cursor": cursor_of([10**30, "2020-01-01T00:00:00+00:00", "rev_1"])}, "invalid_cursor"),
        ({"cursor": cursor_of([0, "0001-01-01T00:00:00+14:00", "rev_1"])}, "invalid_cursor"),
        ({"cursor": "x" * 1001}, "validation_error"),
    ],
)
def test_extreme_times_and_forged_cursors_are_422(
    admin: httpx.Client, project_id: str, params: dict[str, Any], code: str
) -> None:
    enqueue(admin, project_id)
    response = admin.get("/api/v1/hitl/reviews", params={"project_id": project_id, **params})
    assert (response.status_code, response.json()["error"]["code"]) == (422, code), response.text
    export = admin.get("/api/v1/hitl/reviews/export", params={"project_id": project_id, **params})
    if "cursor" not in params:  # the export reads every page itself
        assert (export.status_code, export.json()["error"]["code"]) == (422, code), export.text


def test_the_earliest_and_latest_times_in_utc_are_fine(admin: httpx.Client, project_id: str) -> None:
    enqueue(admin, project_id)
    for params in (
        {"created_after": "0001-01-01T14:00:00+14:00", "created_before": "9999-12-31T09:59:59-14:00"},
        {"created_after": "0001-01-01T00:00:00", "created_before": "9999-12-31T23:59:59Z"},
    ):
        response = admin.get(
            "/api/v1/hitl/reviews", params={"project_id": project_id, "status": "all", **params}
        )
        assert (response.status_code, len(response.json()["reviews"])) == (200, 1), response.text


def test_bulk_feedback_applies_good_items_and_rejects_bad_ones_alone(
    admin: httpx.Client, project_id: str
) -> None:
    good = [enqueue(admin, project_id, query=f"q{i}")["id"] for i in range(3)]
    items: list[Any] = [
        {"review_id": good[0], **FEEDBACK},
        {"review_id": good[1], **FEEDBACK, "classification": "maybe"},
        {"review_id": "rev_missing", **FEEDBACK},
        {"review_id": good[2], "classification": "compliant", "reviewer": "x"},  # no reasoning
        "not an object",
        {"review_id": good[2], **FEEDBACK, "classification": "compliant"},
    ]
    response = admin.post("/api/v1/hitl/reviews/bulk-feedback", json={"feedback": items})
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["accepted"], result["rejected"]) == (2, 4)
    statuses = [(r["status"], (r.get("error") or {}).get("code")) for r in result["results"]]
    assert statuses == [
        ("accepted", None),
        ("rejected", "validation_error"),
        ("rejected", "review_not_found"),
        ("rejected", "validation_error"),
        ("rejected", "validation_error"),
        ("accepted", None),
    ]
    pending = admin.get("/api/v1/hitl/reviews", params={"project_id": project_id}).json()["reviews"]
    assert [r["id"] for r in pending] == [good[1]]


def test_bulk_feedback_over_1000_items_is_413_and_changes_nothing(
    admin: httpx.Client, project_id: str, database: Database
) -> None:
    review = enqueue(admin, project_id)
    before = table_counts(database)
    response = admin.post(
        "/api/v1/hitl/reviews/bulk-feedback",
        json={"feedback": [{"review_id": review["id"], **FEEDBACK}] * 1001},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert table_counts(database) == before


def test_export_in_every_format(admin: httpx.Client, project_id: str) -> None:
    ids = [
        enqueue(admin, project_id, query=f"q{i}", response='he said "hi",\nthen left')["id"] for i in range(5)
    ]
    params = {"project_id": project_id, "status": "pending"}

    as_json = admin.get("/api/v1/hitl/reviews/export", params={**params, "format": "json"})
    assert as_json.headers["content-type"].startswith("application/json")
    assert 'filename="reviews-' in as_json.headers["content-disposition"]
    assert [r["id"] for r in as_json.json()["reviews"]] == ids

    as_jsonl = admin.get("/api/v1/hitl/reviews/export", params={**params, "format": "jsonl"})
    assert [json.loads(line)["id"] for line in as_jsonl.text.splitlines()] == ids
    assert as_jsonl.headers["content-disposition"].endswith('.jsonl"')

    as_csv = admin.get("/api/v1/hitl/reviews/export", params={**params, "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [row["id"] for row in rows] == ids
    assert rows[0]["response"] == 'he said "hi",\nthen left'
    assert json.loads(rows[0]["options"]) == POLICY_OPTIONS

    empty = admin.get("/api/v1/hitl/reviews/export", params={**params, "status": "resolved"})
    assert empty.json() == {"reviews": []}
    bad = admin.get("/api/v1/hitl/reviews/export", params={**params, "format": "xml"})
    assert bad.status_code == 422
    missing = admin.get("/api/v1/hitl/reviews/export", params={"project_id": "prj_nope"})
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "project_not_found")


@pytest.mark.parametrize("status", ["pending", "resolved", "all"])
def test_export_streams_every_batch_in_order_in_every_format(
    admin: httpx.Client, project_id: str, monkeypatch: pytest.MonkeyPatch, status: str
) -> None:
    """Batches of 4 rows (the server runs in this process), so 23 reviews cross many batch boundaries, within one
    priority and from one to the next: exports and list pages hold every review once, in the queue's order
    (highest priority, then oldest) or, for status=all, in arrival order."""
    from casework.services import review_queries

    monkeypatch.setattr(review_queries, "EXPORT_BATCH_ROWS", 4)
    monkeypatch.setattr(review_queries, "EXPORT_JSON_BATCH_ROWS", 4)
    reviews = [(i, (i * 7) % 3, i % 3 == 0) for i in range(23)]  # (arrival, priority, resolved)
    ids = [enqueue(admin, project_id, query=f"q{i}", priority=priority)["id"] for i, priority, _ in reviews]
    for i, _, resolved in reviews:
        if resolved:
            decided = {**FEEDBACK, "classification": "compliant"}
            admin.post(f"/api/v1/hitl/reviews/{ids[i]}/feedback", json=decided).raise_for_status()
    if status == "all":
        expected = ids
    else:
        chosen = [r for r in reviews if r[2] == (status == "resolved")]
        expected = [ids[i] for i, _, _ in sorted(chosen, key=lambda r: (-r[1], r[0]))]

    params = {"project_id": project_id, "status": status}
    listed: list[str] = []
    cursor: str | None = None
    while True:
        page = admin.get(
            "/api/v1/hitl/reviews", params={**params, "limit": 5, **({"cursor": cursor} if cursor else {})}
        )
        listed += [r["id"] for r in page.json()["reviews"]]
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    exported = {
        "json": [r["id"] for r in admin.get("/api/v1/hitl/reviews/export", params={**params, "format": "json"}).json()["reviews"]],
        "jsonl": [json.loads(line)["id"] for line in admin.get("/api/v1/hitl/reviews/export", params={**params, "format": "jsonl"}).text.splitlines()],
        "csv": [row["id"] for row in csv.DictReader(io.StringIO(admin.get("/api/v1/hitl/reviews/export", params={**params, "format": "csv"}).text))],
    }  # fmt: skip
    assert listed == expected
    assert exported == {"json": expected, "jsonl": expected, "csv": expected}


def test_all_and_polling_list_in_arrival_order_across_pages(admin: httpx.Client, project_id: str) -> None:
    first = enqueue(admin, project_id, priority=0, query="first")
    enqueue(admin, project_id, priority=9, query="second")
    enqueue(admin, project_id, priority=5, query="third")
    since = first["created_at"]

    def queries(**params: Any) -> list[str]:
        seen: list[str] = []
        params = {"project_id": project_id, "limit": 1, **params}
        while True:
            page = admin.get("/api/v1/hitl/reviews", params=params).json()
            seen += [r["query"] for r in page["reviews"]]
            if not page["next_cursor"]:
                return seen
            params["cursor"] = page["next_cursor"]

    assert queries() == ["second", "third", "first"]
    assert queries(status="all") == ["first", "second", "third"]
    assert queries(created_after=since) == ["second", "third"]
