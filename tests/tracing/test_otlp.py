"""The OTLP decoder is the server's widest door: property tests (hypothesis) that any body, of any shape, in
either encoding, either decodes to spans every database can store or is refused with a 4xx error, and that
protobuf and OTLP/JSON (hex ids, gzip or not) decode alike."""

from __future__ import annotations

import gzip
import json
import math
from typing import Any

from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from casework.errors import CaseworkError
from casework.text import json_problem, text_problem
from casework.tracing.otlp import JSON, PROTOBUF, SpanRecord, decode_request

MAX_BYTES = 1024 * 1024
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)
ids = st.binary(min_size=0, max_size=20).map(bytes.hex) | st.text(max_size=40) | st.integers() | st.none()
any_value = st.recursive(
    st.builds(lambda v: {"stringValue": v}, st.text())
    | st.builds(lambda v: {"intValue": str(v)}, st.integers(min_value=-(2**63), max_value=2**63 - 1))
    | st.builds(lambda v: {"doubleValue": v if math.isfinite(v) else str(v).replace("inf", "Infinity").replace("nan", "NaN")}, st.floats())
    | st.builds(lambda v: {"boolValue": v}, st.booleans())
    | st.just({}),
    lambda inner: st.builds(lambda vs: {"arrayValue": {"values": vs}}, st.lists(inner, max_size=3))
    | st.builds(
        lambda kvs: {"kvlistValue": {"values": [{"key": k, "value": v} for k, v in kvs]}},
        st.lists(st.tuples(st.text(max_size=10), inner), max_size=3),
    ),
    max_leaves=12,
)  # fmt: skip
attributes = st.lists(
    st.builds(lambda k, v: {"key": k, "value": v}, st.text(max_size=20), any_value), max_size=5
)
spans = st.fixed_dictionaries(
    {"traceId": ids, "spanId": ids, "name": st.text(max_size=30)},
    optional={
        "parentSpanId": ids,
        "attributes": attributes,
        "startTimeUnixNano": st.integers(min_value=0, max_value=2**64 - 1).map(str),
        "endTimeUnixNano": st.integers(min_value=0, max_value=2**64 - 1).map(str),
        "status": st.fixed_dictionaries({"code": st.integers(0, 2), "message": st.text(max_size=20)}),
        "events": st.lists(st.fixed_dictionaries({"name": st.text(max_size=10), "attributes": attributes}), max_size=2),
    },
)  # fmt: skip
otlp_documents = st.builds(
    lambda resource, scoped: {
        "resourceSpans": [{"resource": {"attributes": resource}, "scopeSpans": [{"spans": scoped}]}]
    },
    attributes,
    st.lists(spans, max_size=4),
)
valid_spans = st.fixed_dictionaries(
    {
        "traceId": st.binary(min_size=16, max_size=16).map(bytes.hex),
        "spanId": st.binary(min_size=8, max_size=8).map(bytes.hex),
        "name": st.text(max_size=30),
        "attributes": attributes,
        "startTimeUnixNano": st.integers(min_value=0, max_value=2**63).map(str),
    },
    optional={"parentSpanId": st.binary(min_size=8, max_size=8).map(bytes.hex)},
)
valid_documents = st.builds(
    lambda resource, scoped: {
        "resourceSpans": [{"resource": {"attributes": resource}, "scopeSpans": [{"spans": scoped}]}]
    },
    attributes,
    st.lists(valid_spans, min_size=1, max_size=4),
)


def decode(body: bytes, content_type: str, encoding: str = "") -> list[SpanRecord] | CaseworkError:
    try:
        return decode_request(body, content_type=content_type, content_encoding=encoding, max_bytes=MAX_BYTES)
    except CaseworkError as error:
        return error


def assert_storable(outcome: list[SpanRecord] | CaseworkError) -> None:
    """Refused with a client error, or spans whose every text and JSON value a database can hold."""
    if isinstance(outcome, CaseworkError):
        assert 400 <= outcome.status_code < 500
        json.dumps(outcome.to_dict()).encode()  # the error reply itself can be written
        return
    for record in outcome:
        assert len(record.trace_id) == 32 and len(record.span_id) == 16
        assert record.parent_span_id is None or len(record.parent_span_id) == 16
        for text in (record.name, record.status_message or ""):
            assert text_problem(text) is None
        for value in (record.attributes, record.resource, record.events):
            assert json_problem(value) is None, json_problem(value)
            json.dumps(value, allow_nan=False).encode()
        assert record.start_time.year >= 1970 and record.end_time >= record.start_time


def as_protobuf(document: dict[str, Any]) -> bytes:
    message = ExportTraceServiceRequest()
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = __import__("base64").b64encode(bytes.fromhex(span[key])).decode()
    json_format.ParseDict(document, message)
    return message.SerializeToString()


@SETTINGS
@given(value=json_values)
def test_any_json_body_is_spans_or_a_client_error(value: Any) -> None:
    assert_storable(decode(json.dumps(value).encode(), JSON))


@SETTINGS
@given(document=otlp_documents)
def test_any_otlp_shaped_json_is_storable_spans_or_a_client_error(document: dict[str, Any]) -> None:
    assert_storable(decode(json.dumps(document).encode(), JSON))


@SETTINGS
@given(body=st.binary(max_size=512))
def test_any_bytes_as_protobuf_are_spans_or_a_client_error(body: bytes) -> None:
    assert_storable(decode(body, PROTOBUF))
    assert_storable(decode(body, PROTOBUF, "gzip"))


@SETTINGS
@given(document=valid_documents)
def test_protobuf_and_json_gzip_or_not_decode_alike(document: dict[str, Any]) -> None:
    as_json = json.dumps(document).encode()
    from_json = decode(as_json, JSON)
    assert isinstance(from_json, list) and len(from_json) == len(
        document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    )
    assert_storable(from_json)
    assert decode(gzip.compress(as_json), f"{JSON}; charset=utf-8", "gzip") == from_json
    assert decode(as_protobuf(json.loads(as_json)), PROTOBUF) == from_json
