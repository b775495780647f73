"""Encoders for exports: JSON (``{"reviews": [...]}``, as the tutorial reads it) and JSON Lines take records
already encoded as JSON text; CSV takes records as dicts."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol


class JsonEncoder:
    media_type = "application/json"
    extension = "json"

    def __init__(self, collection: str) -> None:
        self.collection = collection
        self._first = True

    def header(self) -> bytes:
        return f'{{"{self.collection}": ['.encode()

    def batch(self, records: list[str]) -> bytes:
        if not records:
            return b""
        body = ",".join(records)
        prefix = "" if self._first else ","
        self._first = False
        return (prefix + body).encode()

    def footer(self) -> bytes:
        return b"]}\n"


class JsonLinesEncoder:
    media_type = "application/x-ndjson"
    extension = "jsonl"

    def __init__(self, collection: str) -> None:
        self.collection = collection

    def header(self) -> bytes:
        return b""

    def batch(self, records: list[str]) -> bytes:
        return ("\n".join(records) + "\n").encode() if records else b""

    def footer(self) -> bytes:
        return b""


class CsvEncoder:
    """One row per record. Nested values (options, metadata, resolution) are flattened or written as JSON."""

    media_type = "text/csv; charset=utf-8"
    extension = "csv"

    def __init__(self, collection: str) -> None:
        self.collection = collection
        self._columns: list[str] | None = None

    def header(self) -> bytes:
        return b""

    def _flatten(self, record: dict[str, Any]) -> dict[str, Any]:
        flat: dict[str, Any] = {}
        for key, value in record.items():
            if key == "resolution":
                for sub_key, sub_value in (value or {}).items():
                    flat[f"resolution_{sub_key}"] = sub_value
            else:
                flat[key] = value
        return {
            k: json.dumps(v, ensure_ascii=False) if isinstance(v, list | dict) else v for k, v in flat.items()
        }

    def batch(self, records: list[dict[str, Any]]) -> bytes:
        if not records:
            return b""
        buffer = io.StringIO()
        if self._columns is None:
            self._columns = [k for k in records[0] if k != "resolution"] + [
                f"resolution_{k}"
                for k in (
                    "classification",
                    "reasoning",
                    "reviewer",
                    "tags",
                    "control_id",
                    "resolved_by",
                    "resolved_at",
                    "submitted_by",
                )
            ]
            csv.writer(buffer).writerow(self._columns)
        writer = csv.DictWriter(buffer, fieldnames=self._columns, extrasaction="ignore")
        writer.writerows(self._flatten(record) for record in records)
        return buffer.getvalue().encode()

    def footer(self) -> bytes:
        return b""


class Encoder(Protocol):
    media_type: str
    extension: str

    def header(self) -> bytes: ...
    def batch(self, records: Any) -> bytes: ...
    def footer(self) -> bytes: ...


ENCODERS: dict[str, Callable[[str], Encoder]] = {
    "json": JsonEncoder,
    "jsonl": JsonLinesEncoder,
    "csv": CsvEncoder,
}
# The encoders that take records as JSON text (built by the database) rather than as dicts.
TAKES_JSON_TEXT = frozenset({"json", "jsonl"})


def encode(batches: Iterable[Any], encoder: Encoder) -> Iterator[bytes]:
    yield encoder.header()
    for records in batches:
        chunk = encoder.batch(records)
        if chunk:
            yield chunk
    yield encoder.footer()
