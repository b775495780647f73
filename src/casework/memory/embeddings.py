"""Embeddings from any OpenAI-compatible /v1/embeddings endpoint, through the openai client."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from openai import AsyncOpenAI


class EmbeddingError(Exception):
    pass


class Embedder:
    def __init__(self, client: AsyncOpenAI, model: str) -> None:
        self.client = client
        self.model = model

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        import openai  # loaded with the client; a second to import, so not at start-up

        try:
            response = await self.client.post(
                "/embeddings", cast_to=httpx.Response, body={"model": self.model, "input": list(texts)}
            )
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            return [[float(x) for x in item["embedding"]] for item in data]
        except (openai.APIError, ValueError, KeyError, TypeError) as exc:
            raise EmbeddingError(f"The embeddings endpoint failed: {exc.__class__.__name__}: {exc}") from exc


def cosine(left: Sequence[float], right: Sequence[float]) -> float:
    dot = sum(a * b for a, b in zip(left, right, strict=False))
    norms = math.sqrt(sum(a * a for a in left)) * math.sqrt(sum(b * b for b in right))
    return dot / norms if norms else 0.0
