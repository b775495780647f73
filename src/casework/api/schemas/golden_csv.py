"""Golden-set items from CSV: a header row naming the columns, then one item per row. Every row is checked
before anything is written; the first bad one is a 422 that names its line and column."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from pydantic import ValidationError

from casework.api.schemas.golden_sets import MAX_ITEMS, GoldenItemCreate
from casework.errors import ValidationFailed

REQUIRED = ("query", "response", "expected")
OPTIONAL = ("context", "evaluator_type", "tags", "metadata")
COLUMNS = REQUIRED + OPTIONAL


def _bad(message: str, *, line: int, column: str | None) -> ValidationFailed:
    where = f"line {line}" + (f", column {column!r}" if column else "")
    return ValidationFailed(f"CSV {where}: {message}", details={"line": line, "column": column})


def _tags(text: str) -> Any:
    if text.lstrip().startswith("["):
        return json.loads(text)
    return [tag for tag in re.split(r"[,;]", text) if tag.strip()]


def items_from_csv(text: str) -> list[GoldenItemCreate]:
    """The items of a CSV document: columns query, response, expected, and optionally context,
    evaluator_type, tags (comma- or semicolon-separated, or a JSON array) and metadata (a JSON object).
    An empty optional cell is left out."""
    if "\x00" in text:
        raise _bad("the file holds a NUL character (is it a CSV text file?)", line=1, column=None)
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise _bad(str(exc), line=1, column=None) from exc
    if not header or not any(cell.strip() for cell in header):
        raise _bad(f"a header row naming the columns is needed: {', '.join(COLUMNS)}.", line=1, column=None)
    names = [cell.strip().lower() for cell in header]
    for name in names:
        if name not in COLUMNS:
            raise _bad(f"unknown column; the columns are {', '.join(COLUMNS)}.", line=1, column=name)
    if len(set(names)) != len(names):
        raise _bad("a column is named twice.", line=1, column=None)
    for name in REQUIRED:
        if name not in names:
            raise _bad("this column is required.", line=1, column=name)
    items: list[GoldenItemCreate] = []
    line = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise _bad(str(exc), line=line, column=None) from exc
        start, line = line, reader.line_num + 1  # a quoted cell may hold line breaks
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(names):
            raise _bad(f"{len(row)} cells where the header names {len(names)}.", line=start, column=None)
        fields: dict[str, Any] = {}
        for name, cell in zip(names, row, strict=True):
            if name in OPTIONAL and not cell.strip():
                continue
            if name == "tags" or name == "metadata":
                try:
                    fields[name] = _tags(cell) if name == "tags" else json.loads(cell)
                except json.JSONDecodeError as exc:
                    raise _bad(f"not JSON ({exc.msg}).", line=start, column=name) from exc
            else:
                fields[name] = cell
        try:
            items.append(GoldenItemCreate.model_validate(fields))
        except ValidationError as exc:
            error = exc.errors()[0]
            column = str(error["loc"][0]) if error["loc"] else None
            raise _bad(error["msg"], line=start, column=column) from exc
        if len(items) > MAX_ITEMS:
            raise _bad(f"at most {MAX_ITEMS} items in one version.", line=start, column=None)
    if not items:
        raise _bad("no items: the file has a header and no rows.", line=line, column=None)
    return items
