"""A small OpenAI-compatible chat-completions server that plays the judge over real HTTP.

Each test sets ``reply``: a function from the request body to a verdict dict, a raw content string, or an
HTTP status code (an error). Every request is recorded. Each completion reports ``usage`` as OpenAI's
does (``None``: a server that reports none). Requests that do not ask for a JSON object are an
application's own chat calls (the tutorial's bank agent), not the judge's: ``chat`` answers those.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

Reply = Callable[[dict[str, Any]], "dict[str, Any] | str | int"]


def confident(classification: str, confidence: float = 0.95, explanation: str = "Clear case.") -> Reply:
    return lambda _body: {
        "classification": classification,
        "confidence": confidence,
        "explanation": explanation,
    }


def human_message(body: dict[str, Any]) -> str:
    return str(body["messages"][-1]["content"])


def system_message(body: dict[str, Any]) -> str:
    return str(body["messages"][0]["content"])


class JudgeServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.arrivals: list[float] = []  # when each judge request came in (time.monotonic)
        self.reply: Reply = confident("ambiguous", 0.3)
        self.delay_seconds = 0.0
        self.held = False  # while True, every judge request waits (a test releases them when it is ready)
        self.logprobs: list[tuple[str, float]] | None = None
        self.usage: dict[str, int] | None = dict(USAGE)
        self.chat: Callable[[dict[str, Any]], str] = agent_answer
        self.chat_requests: list[dict[str, Any]] = []
        self.base_url = ""
        self.app = FastAPI()
        self.app.post("/v1/chat/completions")(self._complete)
        self.app.post("/v1/embeddings")(self._embed)
        self.embedding_requests: list[dict[str, Any]] = []

    def reset(self) -> None:
        self.requests.clear()
        self.arrivals.clear()
        self.chat_requests.clear()
        self.embedding_requests.clear()
        self.chat = agent_answer
        self.reply = confident("ambiguous", 0.3)
        self.delay_seconds = 0.0
        self.held = False
        self.logprobs = None
        self.usage = dict(USAGE)

    def _logprobs(self) -> dict[str, Any] | None:
        if self.logprobs is None:
            return None
        return {
            "content": [
                {"token": token, "logprob": logprob, "bytes": None, "top_logprobs": []}
                for token, logprob in self.logprobs
            ]
        }

    async def _complete(self, request: Request) -> JSONResponse:
        body = await request.json()
        if (body.get("response_format") or {}).get("type") != "json_object":
            self.chat_requests.append(body)
            return JSONResponse(_completion(body, self.chat(body), None, len(self.chat_requests), self.usage))
        self.requests.append(body)
        self.arrivals.append(time.monotonic())
        while self.held:
            await asyncio.sleep(0.01)
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        answer = self.reply(body)
        if isinstance(answer, int):
            return JSONResponse(
                {"error": {"message": "judge unavailable", "type": "server_error"}}, status_code=answer
            )
        content = answer if isinstance(answer, str) else json.dumps(answer)
        return JSONResponse(_completion(body, content, self._logprobs(), len(self.requests), self.usage))

    async def _embed(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.embedding_requests.append(body)
        data = [
            {"object": "embedding", "index": i, "embedding": embedding(text)}
            for i, text in enumerate(body["input"])
        ]
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        )


USAGE = {"prompt_tokens": 120, "completion_tokens": 20, "total_tokens": 140}


def _completion(
    body: dict[str, Any], content: str, logprobs: Any, number: int, usage: dict[str, int] | None
) -> dict[str, Any]:
    completion: dict[str, Any] = {
        "id": f"chatcmpl-{number}",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "test-judge"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
                "logprobs": logprobs,
            }
        ],
    }
    if usage is not None:
        completion["usage"] = usage
    return completion


def agent_answer(body: dict[str, Any]) -> str:
    """A bank agent that is helpful and a little loose with policy: borderline on purpose."""
    question = str(body["messages"][-1]["content"]).lower()
    if "guaranteed" in question:
        return "Thank you for reaching out. I can't comment on what your advisor said, but it is a popular product."
    if "credit limit" in question:
        return "I appreciate your loyalty! I can certainly look into that for you. Based on your history it looks good."
    if "transfer" in question:
        return "International transfers of that size need identity verification; please visit a branch or call us."
    return "Thanks for your message. A colleague will follow up shortly."


# A toy model that knows a few synonyms: enough to tell embedding similarity from word overlap.
SYNONYMS = {
    "broker": "advisor",
    "adviser": "advisor",
    "promised": "guaranteed",
    "assured": "guaranteed",
    "gains": "returns",
    "profits": "returns",
    "fixed": "guaranteed",
}


def embedding(text: str, dimensions: int = 64) -> list[float]:
    import hashlib
    import re

    vector = [0.0] * dimensions
    for word in re.findall(r"[a-z]{3,}", text.lower()):
        word = SYNONYMS.get(word, word)
        vector[int(hashlib.sha1(word.encode()).hexdigest(), 16) % dimensions] += 1.0
    return vector
