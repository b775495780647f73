"""OTLP/HTTP trace requests, decoded: protobuf or JSON, gzip or not, into plain span records.

Pure functions, no database: the API decodes, the traces service stores.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from casework.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


@dataclass
class SpanRecord:
    """One span as the exporter sent it, with its resource's attributes alongside."""

    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int
    status_code: str
    status_message: str | None
    attributes: dict[str, Any]
    resource: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def start_time(self) -> datetime:
        return _from_ns(self.start_ns)

    @property
    def end_time(self) -> datetime:
        return _from_ns(max(self.end_ns, self.start_ns))

    @property
    def duration_ms(self) -> float:
        return max(self.end_ns - self.start_ns, 0) / 1e6


def decode_request(
    body: bytes, *, content_type: str, content_encoding: str, max_bytes: int
) -> list[SpanRecord]:
    """The spans of one ``POST /v1/traces`` body. Undecodable: 400; another media type or encoding: 415; a
    span without proper ids: 422; over ``max_bytes`` once decompressed: 413."""
    body = _decompress(body, content_encoding.strip().lower(), max_bytes)
    media_type = content_type.split(";")[0].strip().lower()
    request = ExportTraceServiceRequest()
    if media_type == PROTOBUF:
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise BadRequest(f"The body is not an OTLP ExportTraceServiceRequest: {exc}") from exc
    elif media_type == JSON:
        try:
            json_format.ParseDict(_hex_ids_to_base64(json.loads(body)), request, ignore_unknown_fields=True)
        except (ValueError, json_format.ParseError) as exc:
            raise BadRequest(f"The body is not OTLP/JSON: {exc}") from exc
    else:
        raise UnsupportedMediaType(
            f"Send OTLP as {PROTOBUF} or {JSON}, not {media_type or 'no content type'}.",
            details={"content_type": media_type},
        )
    return _records(request)


def encode_response(content_type: str) -> tuple[bytes, str]:
    """The (empty) ExportTraceServiceResponse, in the request's encoding."""
    if content_type.split(";")[0].strip().lower() == JSON:
        return b"{}", JSON
    return b"", PROTOBUF


def _decompress(body: bytes, encoding: str, max_bytes: int) -> bytes:
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise UnsupportedMediaType(f"Unsupported Content-Encoding {encoding!r}: send gzip, deflate or none.")
    # Bounded: a small compressed body must not become an unbounded one.
    decompressor = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        data = decompressor.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise BadRequest(f"The body is not valid {encoding}: {exc}") from exc
    if len(data) > max_bytes or decompressor.unconsumed_tail:
        raise PayloadTooLarge(
            f"The decompressed body is over {max_bytes} bytes (CASEWORK_MAX_BODY_BYTES).",
            details={"max_bytes": max_bytes},
        )
    return data


def _hex_ids_to_base64(document: Any) -> Any:
    """OTLP/JSON writes trace and span ids as hex, where protobuf's JSON mapping expects base64."""
    if not isinstance(document, dict):
        raise ValueError("expected a JSON object")
    for resource_spans in document.get("resourceSpans", document.get("resource_spans", [])) or []:
        for scope_spans in resource_spans.get("scopeSpans", resource_spans.get("scope_spans", [])) or []:
            for span in scope_spans.get("spans", []) or []:
                for key in ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"):
                    if span.get(key):
                        span[key] = _hex_to_base64(span[key])
                for link in span.get("links", []) or []:
                    for key in ("traceId", "spanId", "trace_id", "span_id"):
                        if link.get(key):
                            link[key] = _hex_to_base64(link[key])
    return document


def _hex_to_base64(value: str) -> str:
    try:
        return base64.b64encode(bytes.fromhex(value)).decode()
    except ValueError as exc:
        raise ValueError(f"ids are hex strings in OTLP/JSON, not {value!r}") from exc


def _records(request: ExportTraceServiceRequest) -> list[SpanRecord]:
    records = []
    for resource_spans in request.resource_spans:
        resource = attributes_of(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if len(span.trace_id) != 16 or len(span.span_id) != 8:
                    raise ValidationFailed(
                        "Every span needs a 16-byte trace_id and an 8-byte span_id.",
                        details={"name": span.name},
                    )
                records.append(
                    SpanRecord(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        name=span.name[:500],
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        status_code=_STATUS.get(span.status.code, "UNSET"),
                        status_message=span.status.message or None,
                        attributes=attributes_of(span.attributes),
                        resource=resource,
                        events=[
                            {
                                "name": event.name,
                                "time": _from_ns(event.time_unix_nano).isoformat(),
                                "attributes": attributes_of(event.attributes),
                            }
                            for event in span.events
                        ],
                    )
                )
    return records


def attributes_of(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, which)


def _from_ns(nanoseconds: int) -> datetime:
    return datetime.fromtimestamp(nanoseconds / 1e9, tz=timezone.utc)
