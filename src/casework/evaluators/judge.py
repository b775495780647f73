"""The LLM judge: any OpenAI-compatible chat-completions endpoint, through the ``openai`` client.

Wire contract (what a model, or a test server, sees and must answer): the formatted system prompt, then the
formatted human prompt followed by an instruction to answer in JSON; ``response_format`` json_object,
temperature 0, log-probabilities requested. The reply's content is a JSON object
``{"classification", "confidence", "explanation"}``.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from openai import AsyncOpenAI

from casework.definitions import (
    AMBIGUOUS,
    DEFAULT_MODEL,
    EvaluatorDefinition,
    Interaction,
    JudgeExchange,
    Verdict,
)
from casework.text import clean_text


class JudgeError(Exception):
    """The judge gave no usable verdict (unreachable after retries, or replies that are not the JSON asked for).
    ``exchange``: what it was sent, and its last raw reply if any, kept with the failed evaluation."""

    def __init__(self, message: str, *, exchange: JudgeExchange | None = None) -> None:
        super().__init__(message)
        self.exchange = exchange


def render(
    template: str, definition: EvaluatorDefinition, interaction: Interaction, memories: str | None
) -> str:
    values = {
        "query": interaction.query,
        "response": interaction.response,
        "context": interaction.context or "",
        "evaluation_options": ", ".join(definition.options),
        "memories": memories if memories is not None else "",
    }
    return template.format_map(values)


def answer_instruction(definition: EvaluatorDefinition) -> str:
    allowed = json.dumps([*definition.options, AMBIGUOUS])
    return (
        "\n\nAnswer with only a JSON object, no other text: "
        f'{{"classification": one of {allowed}, "confidence": a number from 0 to 1 for how sure you are, '
        '"explanation": "one or two sentences"}'
    )


def judge_client(*, timeout: float = 60.0, max_retries: int = 3, **options: Any) -> AsyncOpenAI:
    """An ``AsyncOpenAI`` client on the aiohttp transport (``openai[aiohttp]``), which the client documents for
    many concurrent calls. On its default transport a judge call cost the server 1.7 ms of CPU, over a third of
    an evaluation's; on aiohttp, about half that (bench/memory.py, py-spy). ``options`` are the client's own
    (``api_key``, ``base_url``); left out, it reads OPENAI_API_KEY and OPENAI_BASE_URL.

    ``openai`` is imported here, not at the top: its thousand typed models cost a second to import, which a
    server without a judge model (and every CLI command) need not pay."""
    import openai

    return openai.AsyncOpenAI(
        max_retries=max_retries,
        timeout=timeout,
        http_client=openai.DefaultAioHttpClient(timeout=timeout),
        **options,
    )


class LLMJudge:
    """Calls the judge model. One instance per process; it holds the HTTP connection pool."""

    def __init__(self, client: AsyncOpenAI | None, *, default_model: str = DEFAULT_MODEL) -> None:
        self.client = client
        self.default_model = default_model

    @classmethod
    def from_environment(cls, *, default_model: str = DEFAULT_MODEL, timeout: float = 60.0) -> LLMJudge:
        """Reads OPENAI_API_KEY and OPENAI_BASE_URL, as the openai client does. With no key, the judge is
        absent and LLM evaluations record an error saying so (the precedent evaluator still works)."""
        if not os.environ.get("OPENAI_API_KEY"):  # what the client itself would refuse, without importing it
            return cls(None, default_model=default_model)
        import openai

        try:
            return cls(judge_client(timeout=timeout), default_model=default_model)
        except openai.OpenAIError:
            return cls(None, default_model=default_model)

    async def aclose(self) -> None:
        """Close the connection pool (the app does this on shutdown)."""
        if self.client is not None:
            await self.client.close()

    async def judge(
        self, definition: EvaluatorDefinition, interaction: Interaction, *, memories: str | None = None
    ) -> Verdict:
        """First pass when ``memories`` is None; the re-evaluation, with {memories}, otherwise."""
        if self.client is None:
            raise JudgeError(
                "No judge model is configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for another endpoint)."
            )
        import openai  # loaded with the client (judge_client)

        reeval = memories is not None
        system = render(
            definition.reeval_system_prompt if reeval else definition.evaluation_system_prompt,
            definition,
            interaction,
            memories,
        )
        human = render(
            definition.reeval_human_prompt if reeval else definition.evaluation_human_prompt,
            definition,
            interaction,
            memories,
        )
        messages: Any = [
            {"role": "system", "content": system},
            {"role": "user", "content": human + answer_instruction(definition)},
        ]
        model = definition.model or self.default_model
        sent = tuple((m["role"], m["content"]) for m in messages)
        problem = ""
        reply = ""
        for _ in range(2):  # an unparseable reply is asked again once
            started = time.perf_counter()
            try:
                # The client's documented way to call an endpoint with a plain body: its auth, timeouts and
                # retries with backoff, without the typed-parameter transform and the response models, which
                # a profile under load put at a fifth of the server's CPU per evaluation.
                http_response = await self.client.post(
                    "/chat/completions",
                    cast_to=httpx.Response,
                    body={
                        "model": model,
                        "messages": messages,
                        "temperature": 0,
                        "response_format": {"type": "json_object"},
                        "logprobs": True,
                    },
                )
            except openai.APIError as exc:  # the client already retried timeouts, 429 and 5xx with backoff
                raise JudgeError(
                    f"The judge endpoint failed: {exc.__class__.__name__}: {exc}",
                    exchange=JudgeExchange(messages=sent, answer=reply),
                ) from exc
            latency_ms = (time.perf_counter() - started) * 1000
            try:
                completion = http_response.json()
                choice = completion["choices"][0]
                content = choice["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                problem = f"the reply is not a chat completion ({exc.__class__.__name__}: {exc})"
                reply = http_response.text
                continue
            reply = content
            try:
                parsed = _parse(content)
            except ValueError as exc:
                problem = f"{exc}; the reply began: {content[:200]!r}"
                continue
            classification, confidence, explanation = parsed
            probability = _label_probability(choice, content, classification)
            if probability is not None:
                confidence = min(confidence, probability)
            usage = completion.get("usage") or {}
            return Verdict(
                classification=classification,
                confidence=round(confidence, 4),
                explanation=explanation,
                model=completion.get("model") or model,
                prompt_tokens=usage.get("prompt_tokens"),
                completion_tokens=usage.get("completion_tokens"),
                latency_ms=round(latency_ms, 1),
                exchange=JudgeExchange(messages=sent, answer=content),
            )
        raise JudgeError(
            f"The judge replied twice with something other than the JSON verdict asked for: {problem}",
            exchange=JudgeExchange(messages=sent, answer=reply),
        )


def _parse(content: str) -> tuple[str, float, str]:
    try:
        data = json.loads(content)
    except json.JSONDecodeError as exc:
        raise ValueError("not JSON") from exc
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    classification = data.get("classification")
    confidence = data.get("confidence")
    if not isinstance(classification, str) or not classification.strip():
        raise ValueError("no classification")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 <= confidence <= 1:
        raise ValueError("confidence is not a number in [0, 1]")
    explanation = data.get("explanation")
    # A model's text is outside text: storable on either database (casework.text); a label longer than any
    # option (200 characters) is no option, so it is cut to fit its column and judged ambiguous.
    label = clean_text(classification.strip())[:200]
    return label, float(confidence), clean_text(explanation) if isinstance(explanation, str) else ""


def _label_probability(choice: dict[str, Any], content: str, classification: str) -> float | None:
    """The probability the model gave its own label: the product of its tokens' probabilities, when the
    endpoint returned log-probabilities. A stated confidence above it is not believed."""
    tokens = (choice.get("logprobs") or {}).get("content")
    if not tokens:
        return None
    key = content.find('"classification"')
    start = content.find(classification, key if key >= 0 else 0)
    if start < 0:
        return None
    end = start + len(classification)
    position, total = 0, 0.0
    for token in tokens:
        token_end = position + len(token["token"])
        if token_end > start and position < end:
            total += float(token["logprob"])
        position = token_end
    return math.exp(total)
