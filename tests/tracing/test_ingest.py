"""OTLP in, evaluations out: the stock OpenTelemetry exporter against a real server, on both databases."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from casework.db.engine import Database
from tests.judge_server import JudgeServer, confident
from tests.support import POLICY_EVALUATOR, LiveServer, Tenant, table_counts

pytestmark = pytest.mark.storage


def wait_for(condition: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def llm_attributes(question: str, answer: str, *, session_id: str | None = None) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o-mini",
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": "You are a bank customer service agent.",
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.content": question,
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": answer,
        "llm.token_count.prompt": 31,
        "llm.token_count.completion": 12,
        "input.value": json.dumps({"messages": [{"role": "user", "content": question}]}),
        "output.value": answer,
    }
    if session_id:
        attributes["session.id"] = session_id
    return attributes


@pytest.fixture
def provider(tenant: Tenant) -> Iterator[Callable[..., TracerProvider]]:
    made: list[TracerProvider] = []

    def make(**resource: Any) -> TracerProvider:
        provider = TracerProvider(resource=Resource.create(resource))
        exporter = OTLPSpanExporter(
            endpoint=f"{tenant.base_url}/v1/traces", headers={"x-api-key": tenant.keys["reviewer"]}
        )
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.shutdown()


def test_spans_from_the_stock_exporter_become_traces_sessions_and_reviews(
    provider: Callable[..., TracerProvider], admin: httpx.Client, judge_server: JudgeServer
) -> None:
    project = admin.post("/api/v1/projects", json={"name": "bank-agent"}).json()
    admin.post("/api/v1/evaluators", json={**POLICY_EVALUATOR, "project_id": project["id"]})
    run = admin.post(
        f"/api/v1/projects/{project['id']}/runs", json={"name": "r1", "evaluators": ["policy-adherence"]}
    ).json()
    assert run["evaluators"] == ["policy-adherence"]
    tracer = provider(
        **{"openinference.project.name": "bank-agent", "casework.run_id": run["id"]}
    ).get_tracer("test")
    judge_server.reply = lambda body: (
        confident("compliant")(body)
        if "branch" in body["messages"][-1]["content"]
        else {"classification": "ambiguous", "confidence": 0.4, "explanation": "Borderline."}
    )
    with tracer.start_as_current_span("agent", attributes={"openinference.span.kind": "CHAIN"}) as root:
        with tracer.start_as_current_span("retrieve", attributes={"openinference.span.kind": "RETRIEVER"}):
            pass
        with tracer.start_as_current_span(
            "ChatCompletion",
            attributes=llm_attributes("Is this guaranteed?", "Sure, mostly.", session_id="s-1"),
        ):
            pass
    with tracer.start_as_current_span(
        "ChatCompletion", attributes=llm_attributes("When is the branch open?", "At nine.", session_id="s-1")
    ) as second:
        second.set_status(Status(StatusCode.ERROR, "slow"))
    trace_id = format(root.get_span_context().trace_id, "032x")

    traces = admin.get("/api/v1/traces", params={"project_id": project["id"]}).json()["traces"]
    assert len(traces) == 2
    first = next(t for t in traces if t["trace_id"] == trace_id)
    assert (first["span_count"], first["interaction_count"], first["root_name"], first["run_id"]) == (
        3,
        1,
        "agent",
        run["id"],
    )
    assert admin.get("/api/v1/traces", params={"project_id": project["id"], "session_id": "s-1"}).json()[
        "traces"
    ]
    tree = admin.get(f"/api/v1/traces/{trace_id}").json()
    [agent] = tree["spans"]
    assert agent["name"] == "agent" and [c["name"] for c in agent["children"]] == [
        "retrieve",
        "ChatCompletion",
    ]
    llm = agent["children"][1]
    assert (llm["kind"], llm["model"], llm["prompt_tokens"], llm["query"], llm["response"]) == (
        "LLM",
        "gpt-4o-mini",
        31,
        "Is this guaranteed?",
        "Sure, mostly.",
    )
    assert llm["context"] == "You are a bank customer service agent."
    session = admin.get("/api/v1/sessions/s-1").json()
    assert [turn["query"] for turn in session["turns"]] == ["Is this guaranteed?", "When is the branch open?"]

    # Each interaction is evaluated by the run's evaluator; the ambiguous one is queued for review.
    wait_for(
        lambda: admin.get("/api/v1/jobs/counts", params={"project_id": project["id"]}).json()["done"] == 2
    )
    reviews = admin.get("/api/v1/hitl/reviews", params={"project_id": project["id"]}).json()["reviews"]
    assert [(r["query"], r["trace_id"], r["evaluator_type"]) for r in reviews] == [
        ("Is this guaranteed?", trace_id, "policy-adherence")
    ]
    evaluations = admin.get("/api/v1/evaluations", params={"project_id": project["id"]}).json()["evaluations"]
    assert sorted(e["classification"] for e in evaluations) == ["ambiguous", "compliant"]
    assert {e["run_id"] for e in evaluations} == {run["id"]}


def test_otlp_json_with_gzip_and_a_resent_batch_is_stored_once(
    tenant: Tenant, admin: httpx.Client, database: Database, settled: Callable[[], None]
) -> None:
    project = admin.post("/api/v1/projects", json={"name": "json-project"}).json()
    admin.post("/api/v1/evaluators", json={**POLICY_EVALUATOR, "project_id": project["id"]})
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "casework.project_id", "value": {"stringValue": project["id"]}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "llm",
                                "kind": 3,
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": "1700000000250000000",
                                "attributes": [
                                    {"key": "openinference.span.kind", "value": {"stringValue": "LLM"}},
                                    {"key": "input.value", "value": {"stringValue": "Can I skip the fee?"}},
                                    {"key": "output.value", "value": {"stringValue": "Yes, always."}},
                                    {"key": "llm.token_count.prompt", "value": {"intValue": "9"}},
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    payload = gzip.compress(json.dumps(body).encode())
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    for _ in range(2):  # an exporter retrying after a lost reply
        reply = admin.post("/v1/traces", content=payload, headers=headers)
        assert (reply.status_code, reply.json()) == (200, {})
    counts = table_counts(database)
    assert (counts["spans"], counts["traces"]) == (1, 1)
    assert admin.get("/api/v1/jobs/counts", params={"project_id": project["id"]}).json()["failed"] == 0
    trace = admin.get("/api/v1/traces/5b8efff798038103d269b633813fc60c").json()
    [span] = trace["spans"]
    assert (span["query"], span["response"], span["duration_ms"], span["prompt_tokens"]) == (
        "Can I skip the fee?",
        "Yes, always.",
        250.0,
        9,
    )
    assert trace["span_count"] == 1
    # Once the server's background work has caught up (every event read, no job due or running), the resent
    # span has had every chance to start a second evaluation: there is none.
    settled()
    counts = table_counts(database)
    assert (counts["evaluations"], counts["jobs"]) == (1, 1)


def test_bad_exports_get_a_clear_error_and_change_nothing(
    tenant: Tenant, admin: httpx.Client, database: Database
) -> None:
    before = table_counts(database)
    proto = {"content-type": "application/x-protobuf"}
    cases = [
        (admin.post("/v1/traces", content=b"\xff\xff not protobuf", headers=proto), 400, "bad_request"),
        (
            admin.post("/v1/traces", content=b"{}", headers={"content-type": "text/plain"}),
            415,
            "unsupported_media_type",
        ),
        (
            admin.post("/v1/traces", content=b"not gzip", headers={**proto, "content-encoding": "gzip"}),
            400,
            "bad_request",
        ),
        (
            admin.post(
                "/v1/traces",
                content=gzip.compress(
                    b"\x00" * (2 * 1024 * 1024)
                ),  # a small body that inflates past the limit
                headers={**proto, "content-encoding": "gzip"},
            ),
            413,
            "payload_too_large",
        ),
        (
            admin.post(
                "/v1/traces",
                content=json.dumps(
                    {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "01"}]}]}]}
                ),
                headers={"content-type": "application/json"},
            ),
            400,
            "bad_request",
        ),
        (
            admin.post(
                "/v1/traces",
                content=json.dumps(
                    {
                        "resourceSpans": [
                            {
                                "resource": {
                                    "attributes": [
                                        {"key": "casework.run_id", "value": {"stringValue": "run_nope"}}
                                    ]
                                },
                                "scopeSpans": [
                                    {
                                        "spans": [
                                            {
                                                "traceId": "5b8efff798038103d269b633813fc60c",
                                                "spanId": "eee19b7ec3c1b174",
                                                "name": "x",
                                            }
                                        ]
                                    }
                                ],
                            }
                        ]
                    }
                ),
                headers={"content-type": "application/json"},
            ),
            404,
            "run_not_found",
        ),
        (httpx.post(f"{tenant.base_url}/v1/traces", content=b"", headers=proto), 401, "unauthenticated"),
        (
            httpx.post(
                f"{tenant.base_url}/v1/traces",
                content=b"",
                headers={**proto, "authorization": f"Bearer {tenant.keys['viewer']}"},
            ),
            403,
            "permission_denied",
        ),
    ]
    for reply, status, code in cases:
        assert (reply.status_code, reply.json()["error"]["code"]) == (status, code), reply.text
    # Only the run check got as far as creating a project, and its transaction was rolled back.
    assert table_counts(database) == before


def test_ingestion_at_its_bound_answers_503_with_retry_after(
    live_server: LiveServer, admin: httpx.Client
) -> None:
    state = live_server.app.state
    state.ingest_pending = state.settings.ingest_max_pending  # as if that many exports were being stored
    try:
        reply = admin.post("/v1/traces", content=b"", headers={"content-type": "application/x-protobuf"})
    finally:
        state.ingest_pending = 0
    assert (reply.status_code, reply.headers["retry-after"], reply.json()["error"]["code"]) == (
        503,
        "1",
        "service_unavailable",
    )
    assert (
        admin.post("/v1/traces", content=b"", headers={"content-type": "application/x-protobuf"}).status_code
        == 200
    )


def test_a_failing_judge_is_retried_then_the_job_is_parked_with_its_error(
    admin: httpx.Client, judge_server: JudgeServer, live_server: LiveServer
) -> None:
    project = admin.post("/api/v1/projects", json={"name": "judge-down"}).json()
    admin.post("/api/v1/evaluators", json={**POLICY_EVALUATOR, "project_id": project["id"]})
    judge_server.reply = lambda _body: 500
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "casework.project_id", "value": {"stringValue": project["id"]}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "0af7651916cd43dd8448eb211c80319c",
                                "spanId": "b7ad6b7169203331",
                                "name": "llm",
                                "attributes": [
                                    {"key": "openinference.span.kind", "value": {"stringValue": "LLM"}},
                                    {"key": "input.value", "value": {"stringValue": "q"}},
                                    {"key": "output.value", "value": {"stringValue": "r"}},
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    assert admin.post("/v1/traces", json=body).status_code == 200
    max_attempts = live_server.app.state.settings.job_max_attempts

    def failed() -> list[dict[str, Any]]:
        return admin.get("/api/v1/jobs", params={"project_id": project["id"], "status": "failed"}).json()[
            "jobs"
        ]

    [job] = wait_for(failed, timeout=30)
    assert job["attempts"] == max_attempts
    assert "500" in job["last_error"] or "judge" in job["last_error"].lower()
    assert admin.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "failed"
    assert admin.get("/api/v1/evaluations", params={"project_id": project["id"]}).json()["evaluations"] == []
