"""A small OpenAI-compatible chat-completions server that plays the judge over real HTTP.

Each test sets ``reply``: a function from the request body to a verdict dict, a raw content string, or an
HTTP status code (an error). Every request is recorded.
"""

from __future__ import annotations

import asyncio
import json
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
        self.reply: Reply = confident("ambiguous", 0.3)
        self.delay_seconds = 0.0
        self.logprobs: list[tuple[str, float]] | None = None
        self.base_url = ""
        self.app = FastAPI()
        self.app.post("/v1/chat/completions")(self._complete)
        self.app.post("/v1/embeddings")(self._embed)
        self.embedding_requests: list[dict[str, Any]] = []

    def reset(self) -> None:
        self.requests.clear()
        self.embedding_requests.clear()
        self.reply = confident("ambiguous", 0.3)
        self.delay_seconds = 0.0
        self.logprobs = None

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
        self.requests.append(body)
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        answer = self.reply(body)
        if isinstance(answer, int):
            return JSONResponse(
                {"error": {"message": "judge unavailable", "type": "server_error"}}, status_code=answer
            )
        content = answer if isinstance(answer, str) else json.dumps(answer)
        return JSONResponse(
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", "test-judge"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                        "logprobs": self._logprobs(),
                    }
                ],
                "usage": {"prompt_tokens": 120, "completion_tokens": 20, "total_tokens": 140},
            }
        )

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
