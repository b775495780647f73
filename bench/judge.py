"""A stand-in judge for benchmarks: an OpenAI-compatible chat-completions endpoint that answers after a fixed
delay with a confident verdict. Run as its own process: ``python -m bench.judge PORT DELAY_SECONDS``."""

from __future__ import annotations

import asyncio
import json
import sys

import uvicorn
from fastapi import FastAPI, Request


def make_app(delay: float) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def complete(request: Request) -> dict[str, object]:
        body = await request.json()
        await asyncio.sleep(delay)
        options = json.loads(body["messages"][-1]["content"].split("one of ")[-1].split("]")[0] + "]")
        verdict = {"classification": options[0], "confidence": 0.95, "explanation": "Bench verdict."}
        return {
            "id": "bench",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "bench"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": json.dumps(verdict)},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }

    return app


if __name__ == "__main__":
    uvicorn.run(make_app(float(sys.argv[2])), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
