"""The load generator measures what a user waits: a paced request's latency counts from when it was due."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.loadgen import LoadResult, encode_request, run_load
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.support import LiveServer

SERVICE_SECONDS = 0.1


def load(*args: Any, **kwargs: Any) -> LoadResult:
    """run_load on an event loop of its own thread (the browser tests keep one running in this thread)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(run_load(*args, **kwargs))).result()


async def slow(_request: object) -> PlainTextResponse:
    await asyncio.sleep(SERVICE_SECONDS)
    return PlainTextResponse("ok")


def test_paced_latency_counts_the_time_a_late_request_waited() -> None:
    """One client due every 50 ms, a server that takes 100 ms: each request is sent later than it was due, and
    the wait piles up. Counted from when each was sent, every latency would look like 100 ms."""
    with LiveServer(Starlette(routes=[Route("/", slow)])) as server:
        request = encode_request(f"{server.base_url}/")
        started = time.perf_counter()
        result = load(server.base_url, [[request] * 8], rate_per_client=20)
        elapsed = time.perf_counter() - started
    assert result.statuses == {200: 8}
    # The 8th was due 8 x 50 ms after the start, and cannot be answered before 8 x 100 ms of service: it waited
    # at least 0.4 s (counted from sending, it would be about 0.1 s).
    assert result.latencies[-1] >= 8 * SERVICE_SECONDS - 8 * 0.05 - 0.01
    assert max(result.latencies) <= elapsed


def test_back_to_back_latency_counts_from_sending() -> None:
    with LiveServer(Starlette(routes=[Route("/", slow)])) as server:
        result = load(server.base_url, [[encode_request(f"{server.base_url}/")] * 4])
    assert len(result.latencies) == 4
    # (A timer may fire a millisecond early: uvloop counts in milliseconds.)
    assert all(latency >= SERVICE_SECONDS - 0.005 for latency in result.latencies)
