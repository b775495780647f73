"""A lean HTTP/1.1 keep-alive load generator on raw asyncio streams.

httpx costs the client about as much CPU per request as the server spends answering it; on a 2-core machine
that distorts any latency figure. This sends pre-encoded requests and parses only the status line and
Content-Length, so nearly all the CPU goes to the server under test.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


def encode_request(
    url: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {path or '/'} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def _client(
    host: str, port: int, requests: list[bytes], result: LoadResult, interval: float | None, start_at: float
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    next_at = start_at
    try:
        for request in requests:
            if interval:
                next_at += interval
                delay = next_at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            started = time.perf_counter()
            writer.write(request)
            status = await _read_response(reader)
            # Paced: latency counts from when the request was due, not when it was sent, so a slow server cannot
            # hide queueing: a request sent late because the last answer came late has already waited. (This was
            # max(sent, due), which is the moment it was sent whenever it was late.)
            result.latencies.append(time.perf_counter() - (next_at if interval else started))
            result.statuses[status] = result.statuses.get(status, 0) + 1
    finally:
        writer.close()


async def run_load(
    url: str, requests_per_client: list[list[bytes]], *, rate_per_client: float | None = None
) -> LoadResult:
    """Each inner list is one client's requests, sent in order on one connection. With ``rate_per_client``,
    each client sends at that steady rate (open loop); without, back to back (closed loop)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    result = LoadResult()
    interval = 1 / rate_per_client if rate_per_client else None
    started = time.perf_counter()
    # Spread the clients' first requests over one interval, as independent users would be.
    await asyncio.gather(
        *(
            _client(
                host, port, reqs, result, interval, started + (i / len(requests_per_client)) * (interval or 0)
            )
            for i, reqs in enumerate(requests_per_client)
        )
    )
    result.seconds = time.perf_counter() - started
    return result
