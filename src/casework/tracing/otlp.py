"""OTLP/HTTP trace requests, decoded: protobuf or JSON, gzip or not, into plain span records.

Pure functions, no database: the API decodes, the traces service stores.
"""

from __future__ import annotations

import base64
import json
import math
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from casework.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from casework.text import MAX_JSON_DEPTH, clean_text

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
    span without proper ids, or with attributes nested deeper than MAX_JSON_DEPTH: 422; over ``max_bytes`` once
    decompressed: 413. Text comes out storable (casework.text): NUL characters are dropped, not refused."""
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
        except (ValueError, TypeError, json_format.ParseError) as exc:
            raise BadRequest(f"The body is not OTLP/JSON: {clean_text(str(exc))[:300]}") from exc
        except RecursionError as exc:  # nested past what the parsers take
            raise BadRequest("The body is not OTLP/JSON: it nests too deeply.") from exc
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
    """OTLP/JSON writes trace and span ids as hex, where protobuf's JSON mapping expects base64. Parts of the
    wrong shape are left as they are, for the protobuf parser to refuse with its own message."""
    if not isinstance(document, dict):
        raise ValueError("expected a JSON object")
    for resource_spans in _items(document, "resourceSpans", "resource_spans"):
        for scope_spans in _items(resource_spans, "scopeSpans", "scope_spans"):
            for span in _items(scope_spans, "spans"):
                for key in ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"):
                    if span.get(key):
                        span[key] = _hex_to_base64(span[key])
                for link in _items(span, "links"):
                    for key in ("traceId", "spanId", "trace_id", "span_id"):
                        if link.get(key):
                            link[key] = _hex_to_base64(link[key])
    return document


def _items(parent: dict[str, Any], *keys: str) -> list[dict[str, Any]]:
    """The objects in the list at the first of ``keys`` that ``parent`` has."""
    value = next((parent[key] for key in keys if key in parent), None)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _hex_to_base64(value: Any) -> str:
    try:
        return base64.b64encode(bytes.fromhex(value)).decode()
    except (ValueError, TypeError) as exc:
        raise ValueError(f"ids are hex strings in OTLP/JSON, not {clean_text(repr(value))[:100]}") from exc


def _records(request: ExportTraceServiceRequest) -> list[SpanRecord]:
    records = []
    for resource_spans in request.resource_spans:
        resource = attributes_of(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if (
                    len(span.trace_id) != 16
                    or len(span.span_id) != 8
                    or len(span.parent_span_id) not in (0, 8)
                ):
                    raise ValidationFailed(
                        "Every span needs a 16-byte trace_id and an 8-byte span_id (and parent_span_id, if any).",
                        details={"name": clean_text(span.name)[:500]},
                    )
                records.append(
                    SpanRecord(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        name=clean_text(span.name)[:500],
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        status_code=_STATUS.get(span.status.code, "UNSET"),
                        status_message=clean_text(span.status.message) or None,
                        attributes=attributes_of(span.attributes),
                        resource=resource,
                        events=[
                            {
                                "name": clean_text(event.name),
                                "time": _from_ns(event.time_unix_nano).isoformat(),
                                "attributes": attributes_of(event.attributes),
                            }
                            for event in span.events
                        ],
                    )
                )
    return records


def attributes_of(pairs: Any, depth: int = 1) -> dict[str, Any]:
    """OTLP key-values as a JSON object: text cleaned, numbers finite, at most MAX_JSON_DEPTH levels."""
    _within_depth(depth)
    return {clean_text(pair.key): _value(pair.value, depth) for pair in pairs}


def _within_depth(depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise ValidationFailed(
            f"Span attributes may nest at most {MAX_JSON_DEPTH} levels.",
            details={"max_depth": MAX_JSON_DEPTH},
        )


def _value(value: AnyValue, depth: int) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        _within_depth(depth + 1)
        return [_value(v, depth + 1) for v in value.array_value.values]
    if which == "kvlist_value":
        return attributes_of(value.kvlist_value.values, depth + 1)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if which == "string_value":
        return clean_text(value.string_value)
    if which == "double_value" and not math.isfinite(value.double_value):
        return str(value.double_value)  # JSON has no NaN or Infinity: "nan", "inf", "-inf"
    return getattr(value, which)


def _from_ns(nanoseconds: int) -> datetime:
    return datetime.fromtimestamp(nanoseconds / 1e9, tz=timezone.utc)
