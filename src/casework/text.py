"""One rule for text that comes from outside, on SQLite and PostgreSQL alike.

PostgreSQL cannot store the NUL character (U+0000) in text or JSON, and no database (nor a UTF-8 reply) can hold
a lone surrogate (U+D800 to U+DFFF, half of a UTF-16 pair). API fields, path ids and query parameters holding
either are refused with 422, so a caller learns at once; span text from OTLP exporters has them removed instead,
since an exporter cannot fix a batch it has already sent.

Free-form JSON (a review's ``metadata``, span attributes) is bounded too: nested at most ``MAX_JSON_DEPTH``
levels, so that any stored value can be written back in a reply.
"""

from __future__ import annotations

import math
import re
from typing import Any

MAX_JSON_DEPTH = 32
# NUL, and any surrogate code point: in a Python str decoded from JSON or UTF-8, a surrogate is always a lone one.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as it is, or None when it can."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not contain the NUL character (U+0000)"
    return "must be valid Unicode text (it holds a lone surrogate, half of a UTF-16 pair)"


def clean_text(value: str) -> str:
    """``value`` without NUL characters and lone surrogates."""
    return _UNSTORABLE.sub("", value) if _UNSTORABLE.search(value) else value


def json_problem(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why a JSON value (from ``json.loads``) cannot be stored, with the path to the offending part, or None:
    text breaking :func:`text_problem`, numbers that are not finite, nesting deeper than ``max_depth``.

    Walks without recursion, so any depth is measured safely."""
    pending: list[tuple[Any, str, int]] = [(value, "", 1)]
    while pending:
        item, path, depth = pending.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return f"{_at(path)}text {problem}"
        elif isinstance(item, float) and not math.isfinite(item):
            # JSON has no NaN or Infinity (Python's parser accepts them; PostgreSQL's JSON type does not).
            return f"{_at(path)}numbers must be finite, not {item}"
        elif isinstance(item, dict | list):
            if depth > max_depth:
                return f"{_at(path)}nested deeper than {max_depth} levels"
            if isinstance(item, dict):
                for key, child in item.items():
                    name = clean_text(
                        str(key)
                    )  # the path goes into the error message, which must be writable
                    where = f"{path}.{name}" if path else name
                    if isinstance(key, str) and (problem := text_problem(key)):
                        return f"{_at(where)}a key {problem}"
                    pending.append((child, where, depth + 1))
            else:
                pending.extend((child, f"{path}[{index}]", depth + 1) for index, child in enumerate(item))
    return None


def _at(path: str) -> str:
    return f"at {path}: " if path else ""
