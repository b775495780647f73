"""What an OpenInference span means: the interaction read from its attributes."""

from __future__ import annotations

from casework.tracing.openinference import interaction_of, span_facts


def test_multi_part_messages_keep_their_order() -> None:
    attributes = {"llm.input_messages.0.message.role": "user", "output.value": "answer"}
    for i in range(12):
        attributes[f"llm.input_messages.0.message.contents.{i}.message_content.text"] = f"part{i}"
    interaction = interaction_of(attributes)
    assert interaction is not None
    assert interaction.query.split() == [f"part{i}" for i in range(12)]


def test_only_llm_spans_are_interactions() -> None:
    chain = span_facts({"openinference.span.kind": "CHAIN", "input.value": "q", "output.value": "r"})
    llm = span_facts({"openinference.span.kind": "llm", "input.value": "q", "output.value": "r"})
    assert chain.interaction is None
    assert llm.kind == "LLM" and llm.interaction is not None and llm.interaction.response == "r"
