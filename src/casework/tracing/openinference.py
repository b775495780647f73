"""What an OpenInference span means to Casework: its kind, model, token counts, session, and, for an LLM span,
the interaction (query, response, context) that evaluators judge.

Attribute names follow the OpenInference semantic conventions, as ``openinference-instrumentation-*`` write
them (``llm.input_messages.0.message.role`` ...); plain OpenTelemetry GenAI names are read as a fallback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from casework.definitions import Interaction

_INDEXED = re.compile(r"^(llm\.(?:input|output)_messages|retrieval\.documents)\.(\d+)\.(.+)$")
# The columns these facts are stored in: longer text is cut, counts out of an INTEGER's range are dropped.
_MAX_KIND, _MAX_NAME = 40, 200
_MAX_COUNT = 2**31 - 1


@dataclass(frozen=True)
class SpanFacts:
    kind: str | None
    model: str | None
    session_id: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    interaction: Interaction | None


def span_facts(attributes: dict[str, Any]) -> SpanFacts:
    kind = _text(attributes.get("openinference.span.kind")).upper()[:_MAX_KIND] or None
    model = _text(attributes.get("llm.model_name") or attributes.get("gen_ai.response.model"))
    return SpanFacts(
        kind=kind,
        model=model[:_MAX_NAME] if model else None,
        session_id=(_text(attributes.get("session.id"))[:_MAX_NAME] or None),
        prompt_tokens=_int(
            attributes.get("llm.token_count.prompt", attributes.get("gen_ai.usage.input_tokens"))
        ),
        completion_tokens=_int(
            attributes.get("llm.token_count.completion", attributes.get("gen_ai.usage.output_tokens"))
        ),
        interaction=interaction_of(attributes) if kind == "LLM" else None,
    )


def interaction_of(attributes: dict[str, Any]) -> Interaction | None:
    """The last user message is the query, the assistant's output the response, the system prompt(s) and any
    retrieved documents the context. ``input.value`` / ``output.value`` stand in for missing messages."""
    groups = _indexed(attributes)
    inputs = groups.get("llm.input_messages", [])
    outputs = groups.get("llm.output_messages", [])
    user = [m for m in inputs if _role(m) == "user"]
    query = _content(user[-1]) if user else _text(attributes.get("input.value"))
    answers = [m for m in outputs if _role(m) in ("assistant", "model", "")]
    response = _content(answers[-1]) if answers else _text(attributes.get("output.value"))
    context_parts = [_content(m) for m in inputs if _role(m) == "system"]
    context_parts += [_text(doc.get("document.content")) for doc in groups.get("retrieval.documents", [])]
    context = "\n\n".join(part for part in context_parts if part)
    if not query or not response:
        return None
    return Interaction(query=query, response=response, context=context or None)


@dataclass(frozen=True)
class Message:
    role: str
    content: str


def messages_of(attributes: dict[str, Any]) -> tuple[list[Message], list[Message]]:
    """An LLM span's input and output messages, in order, as the trace page shows them."""
    groups = _indexed(attributes)
    return (
        [Message(_role(m), _content(m)) for m in groups.get("llm.input_messages", [])],
        [Message(_role(m), _content(m)) for m in groups.get("llm.output_messages", [])],
    )


def _indexed(attributes: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """``llm.input_messages.0.message.role = "user"`` -> ``{"llm.input_messages": [{"message.role": "user"}]}``."""
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for key, value in attributes.items():
        match = _INDEXED.match(key)
        if match:
            prefix, index, rest = match.groups()
            found.setdefault(prefix, {}).setdefault(int(index), {})[rest] = value
    return {prefix: [items[i] for i in sorted(items)] for prefix, items in found.items()}


def _role(message: dict[str, Any]) -> str:
    return (_text(message.get("message.role")) or "").lower()


def _content(message: dict[str, Any]) -> str:
    content = _text(message.get("message.content"))
    if content:
        return content
    # Multi-part messages: message.contents.N.message_content.text
    parts = sorted(
        (int(key.split(".")[2]), value)
        for key, value in message.items()
        if key.startswith("message.contents.")
        and key.endswith(".message_content.text")
        and key.split(".")[2].isdigit()
    )
    return "\n".join(_text(value) for _, value in parts)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _int(value: Any) -> int | None:
    """A token count: a whole number a database INTEGER holds, else None."""
    try:
        number = int(value) if value is not None else None
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number is not None and 0 <= number <= _MAX_COUNT else None
