"""Exports no exporter should send, and the server takes them all in its stride, on both databases: malformed
OTLP/JSON is a 400, the same span twice (in one request, or in identical requests at the same moment) is
stored and counted once, text a database cannot hold is cleaned, ids of the wrong length are refused."""

from __future__ import annotations

import math
import threading
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from casework.db.engine import Database
from casework.tracing.otlp import _hex_ids_to_base64
from tests.support import POLICY_EVALUATOR, Tenant, make_project, table_counts

pytestmark = pytest.mark.storage

TRACE_ID = "5b8efff798038103d269b633813fc60c"


def value(item: Any) -> dict[str, Any]:
    if isinstance(item, bool):
        return {"boolValue": item}
    if isinstance(item, int):
        return {"intValue": str(item)}
    if isinstance(item, float):  # protobuf's JSON mapping writes NaN and infinities as strings
        return {"doubleValue": item if math.isfinite(item) else {"nan": "NaN", "inf": "Infinity"}[str(item)]}
    return {"stringValue": item}


def attributes(**items: Any) -> list[dict[str, Any]]:
    return [{"key": key.replace("__", "."), "value": value(item)} for key, item in items.items()]


def span(
    span_id: str, parent: str | None = None, *, name: str = "step", llm: bool = False, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "traceId": TRACE_ID,
        "spanId": span_id,
        "name": name,
        "startTimeUnixNano": str(1_700_000_000_000_000_000 + int(span_id, 16) % 1_000_000),
        "endTimeUnixNano": str(1_700_000_001_000_000_000),
        "attributes": attributes(
            openinference__span__kind="LLM" if llm else "CHAIN",
            input__value=f"Question {span_id}?",
            output__value="An answer.",
        ),
        **extra,
    }
    if parent:
        body["parentSpanId"] = parent
    return body


def export(project_id: str, spans: list[dict[str, Any]], **resource: Any) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": attributes(casework__project_id=project_id, **resource)},
                "scopeSpans": [{"spans": spans}],
            }
        ]
    }


@pytest.fixture
def evaluated_project(admin: httpx.Client) -> str:
    """A project with an evaluator: every LLM span it receives queues an evaluation job."""
    project_id = make_project(admin, "traced")
    admin.post("/api/v1/evaluators", json={**POLICY_EVALUATOR, "project_id": project_id}).raise_for_status()
    return project_id


def span_count(admin: httpx.Client, project_id: str) -> int:
    return sum(
        t["span_count"]
        for t in admin.get("/api/v1/traces", params={"project_id": project_id}).json()["traces"]
    )


def test_the_same_span_twice_in_one_request_is_stored_and_counted_once(
    admin: httpx.Client, evaluated_project: str, database: Database
) -> None:
    twice = [span("00f067aa0ba902b7", llm=True), span("00f067aa0ba902b7", llm=True)]
    reply = admin.post("/v1/traces", json=export(evaluated_project, twice))
    assert reply.status_code == 200, reply.text
    assert span_count(admin, evaluated_project) == 1
    counts = table_counts(database)
    assert (counts["spans"], counts["jobs"]) == (1, 1)


def test_identical_exports_at_the_same_moment_are_all_200_and_counted_once(
    tenant: Tenant, admin: httpx.Client, evaluated_project: str, database: Database
) -> None:
    spans = [span(f"{i + 1:016x}", llm=True) for i in range(50)]
    body = export(evaluated_project, spans)
    senders = 5
    start = threading.Barrier(senders)
    replies: list[httpx.Response] = []

    def send() -> None:
        with tenant.client("reviewer") as client:
            start.wait()
            replies.append(client.post("/v1/traces", json=body))

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [reply.status_code for reply in replies] == [200] * senders, [r.text for r in replies]
    assert span_count(admin, evaluated_project) == 50
    counts = table_counts(database)
    assert (counts["spans"], counts["traces"], counts["jobs"]) == (50, 1, 50)


@pytest.mark.parametrize(
    "body",
    [
        '{"resourceSpans": "x"}',
        '{"resourceSpans": [1]}',
        '{"resourceSpans": [{"scopeSpans": "x"}]}',
        '{"resourceSpans": [{"scopeSpans": [{"spans": [7]}]}]}',
        '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 12, "spanId": "00f067aa0ba902b7"}]}]}]}',
        '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": ["a"], "spanId": "00f067aa0ba902b7"}]}]}]}',
        '{"resourceSpans": [{"resource": {"attributes": 5}}]}',
        "[1, 2]",
        "[" * 100_000,
        '{"a":' * 100_000,
    ],
    ids=lambda body: body[:40],
)
def test_malformed_otlp_json_is_a_400_in_the_error_shape(
    admin: httpx.Client, database: Database, body: str
) -> None:
    before = table_counts(database)
    reply = admin.post("/v1/traces", content=body, headers={"content-type": "application/json"})
    assert (reply.status_code, reply.json()["error"]["code"]) == (400, "bad_request"), reply.text
    assert table_counts(database) == before


def test_span_text_that_a_database_cannot_hold_is_cleaned_not_refused(
    admin: httpx.Client, database: Database
) -> None:
    spans = [
        span(
            "00f067aa0ba902b7",
            name="agent\x00step",
            llm=True,
            status={"code": 2, "message": "bad\x00"},
            events=[
                {
                    "name": "retry\x00",
                    "timeUnixNano": "1700000000500000000",
                    "attributes": attributes(n="\x00"),
                }
            ],
        )
    ]
    spans[0]["attributes"] += attributes(
        user__note="a\x00b",
        **{"key\x00": 1},
        session__id="s" * 500,
        llm__token_count__prompt=2**40,
        llm__token_count__completion=12,
        score=float("nan"),
        limit=float("inf"),
    )
    spans[0]["attributes"].append(
        {"key": "openinference.span.kind", "value": {"stringValue": "LLM" + "X" * 100}}
    )
    reply = admin.post("/v1/traces", json=export("", spans, openinference__project__name="bank\x00-agent"))
    assert reply.status_code == 200, reply.text
    projects = admin.get("/api/v1/projects").json()["projects"]
    assert [p["name"] for p in projects] == ["bank-agent"]
    tree = admin.get(f"/api/v1/traces/{TRACE_ID}").json()
    [stored] = tree["spans"]
    assert stored["name"] == "agentstep"
    assert stored["status_message"] == "bad"
    assert stored["attributes"]["user.note"] == "ab"
    assert stored["attributes"]["key"] == 1
    assert (stored["attributes"]["score"], stored["attributes"]["limit"]) == ("nan", "inf")
    assert stored["events"][0]["name"] == "retry"
    assert (stored["prompt_tokens"], stored["completion_tokens"]) == (None, 12)
    assert stored["session_id"] == "s" * 200
    assert len(stored["kind"]) == 40


def test_spans_with_ids_of_the_wrong_length_are_refused(admin: httpx.Client, database: Database) -> None:
    project_id = make_project(admin)
    before = table_counts(database)
    for bad in ({"parentSpanId": "00f067aa0ba902b700"}, {"spanId": "00f0"}, {"traceId": "5b8e"}):
        reply = admin.post("/v1/traces", json=export(project_id, [{**span("00f067aa0ba902b7"), **bad}]))
        assert (reply.status_code, reply.json()["error"]["code"]) == (422, "validation_error"), reply.text
    assert table_counts(database) == before


def test_attributes_nested_past_the_bound_are_refused(admin: httpx.Client) -> None:
    """Arrays in arrays: protobuf's own bound (100 message levels, so about 31 key-value lists) comes later."""
    project_id = make_project(admin)
    body = span("00f067aa0ba902b7")
    deep: dict[str, Any] = {"stringValue": "bottom"}
    for _ in range(40):
        deep = {"arrayValue": {"values": [deep]}}
    body["attributes"].append({"key": "deep", "value": deep})
    document = export(project_id, [body])
    message = ExportTraceServiceRequest()
    json_format.ParseDict(_hex_ids_to_base64(document), message)
    reply = admin.post(
        "/v1/traces", content=message.SerializeToString(), headers={"content-type": "application/x-protobuf"}
    )
    assert (reply.status_code, reply.json()["error"]["code"]) == (422, "validation_error"), reply.text
    assert "nest at most 32 levels" in reply.json()["error"]["message"]
