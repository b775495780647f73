"""Events and webhooks at volume: 10,000 reviews created and resolved through the API, paced at about 200
events a second, with two webhook endpoints subscribed to every event, against the same run with none.

Reports events delivered per second and event-to-delivery latency (from the event's own timestamp, taken in
the transaction that made the change, to its arrival at the receiver: commit, sequencing, the subscriber,
the delivery job and the HTTP request), and the API's own latency with webhooks on and off. The server is
`casework serve` on SQLite, as a user runs it; the receiver (bench/receiver.py) is a separate lean process.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

from bench.loadgen import encode_request, run_load
from bench.results import (
    casework_server,
    free_port,
    halueval_rows,
    measured_commit,
    measures_table,
    milliseconds,
    percentile,
    write_section,
)

REVIEWS = int(os.environ.get("BENCH_EVENTS_REVIEWS", "10000"))
# Server processes (`casework serve --workers N`): one Python process uses one core.
WORKERS = int(os.environ.get("BENCH_EVENTS_WORKERS", "1"))
# "separate": the background work (deliveries, the memory pass, replays) in a `casework worker` process of its
# own, as the README says to run at scale; "embedded": in the server's process. At 200 reviews a second one
# process has more work than one core (API ~4 ms and memory ~2.5 ms a review): embedded, the API's latency is
# the length of a queue that only grows, with or without webhooks, so the off/on comparison says little.
TOPOLOGY = os.environ.get("BENCH_EVENTS_TOPOLOGY", "separate")
EVENTS_PER_SECOND = 200
CLIENTS = 8


def receiver(port: int, out: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "bench.receiver", str(port), str(out)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
        except httpx.RemoteProtocolError:
            return process  # it answers (a GET is not a webhook): up
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("receiver did not start")


def paced(url: str, requests: list[bytes], per_second: float) -> tuple[list[float], dict[int, int], float]:
    result = asyncio.run(
        run_load(url, [requests[i::CLIENTS] for i in range(CLIENTS)], rate_per_client=per_second / CLIENTS)
    )
    return result.latencies, result.statuses, result.seconds


def interactions() -> list[dict[str, str]]:
    """Real questions and answers (HaluEval general), as many as REVIEWS: each evaluator sees each one once, as
    three evaluators of one project would, so memory meets the look-alikes and strangers of real text (identical
    template text would make every decision look like every pending review)."""
    rows = halueval_rows()
    evaluators = ("faithfulness", "policy", "tone")
    return [
        {
            "evaluator_type": evaluators[(i // len(rows)) % len(evaluators)],
            "query": rows[i % len(rows)]["user_query"],
            "response": rows[i % len(rows)]["chatgpt_response"],
            "label": "hallucinated" if rows[i % len(rows)]["hallucination"] == "yes" else "faithful",
        }
        for i in range(REVIEWS)
    ]


def workload(url: str, key: str, project_id: str) -> tuple[list[float], dict[int, int]]:
    """Create the reviews, then resolve them; each paced so the server writes about EVENTS_PER_SECOND events."""
    headers = {"x-api-key": key, "content-type": "application/json"}
    items = interactions()
    create = [
        encode_request(
            f"{url}/api/v1/hitl/reviews",
            "POST",
            headers,
            json.dumps(
                {
                    "project_id": project_id,
                    "evaluator_type": item["evaluator_type"],
                    "options": ["faithful", "hallucinated"],
                    "query": item["query"],
                    "response": item["response"],
                    "span_id": f"s{i}",
                }
            ).encode(),
        )
        for i, item in enumerate(items)
    ]
    labels = {(item["evaluator_type"], f"s{i}"): item["label"] for i, item in enumerate(items)}
    latencies, statuses, _ = paced(url, create, EVENTS_PER_SECOND)  # one event each
    ids: list[tuple[str, str]] = []
    with httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=60) as client:
        cursor = None
        while True:
            page = client.get(
                "/api/v1/hitl/reviews",
                params={"project_id": project_id, "limit": 500, **({"cursor": cursor} if cursor else {})},
            ).json()
            ids += [(r["id"], labels[(r["evaluator_type"], r["span_id"])]) for r in page["reviews"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
    decide = [
        encode_request(
            f"{url}/api/v1/hitl/reviews/{review_id}/feedback",
            "POST",
            headers,
            json.dumps(
                {
                    "classification": label,
                    "reasoning": f"Checked the answer against the question: {label}.",
                    "reviewer": "bench@example.com",
                }
            ).encode(),
        )
        for review_id, label in ids
    ]
    more, more_statuses, _ = paced(url, decide, EVENTS_PER_SECOND / 2)  # control.created and review.resolved
    for status, count in more_statuses.items():
        statuses[status] = statuses.get(status, 0) + count
    return latencies + more, statuses


def moment(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def expected_deliveries(url: str, key: str, project_id: str, endpoints: list[str]) -> int:
    """How many deliveries the project's log asks for, once it stops growing (the worker's memory work may add
    events): one per event and endpoint subscribed when it happened (the first endpoint's own creation event
    reaches only itself)."""
    counted, last = -1, 0
    with httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=60) as client:
        since = [
            moment(client.get(f"/api/v1/webhooks/{endpoint}").json()["created_at"]) for endpoint in endpoints
        ]
        while counted != last:
            counted, last, after = last, 0, None
            while True:
                page = client.get(
                    "/api/v1/events",
                    params={"project_id": project_id, "limit": 1000, **({"after": after} if after else {})},
                ).json()
                last += sum(
                    sum(1 for created in since if created <= moment(event["timestamp"]))
                    for event in page["events"]
                )
                after = page["next_after"]
                if not after or not page["events"]:
                    break
            time.sleep(2)
    return last


@dataclass
class Run:
    latencies: list[float]
    statuses: dict[int, int]
    delays: list[float]
    received: int
    unique: int
    expected: int
    seconds: float


def run(webhooks: bool) -> Run:
    with tempfile.TemporaryDirectory() as home:
        out = Path(home) / "received.txt"
        port = free_port()
        hook = receiver(port, out) if webhooks else None
        try:
            with casework_server(
                Path(home),
                workers=WORKERS,
                separate_worker=TOPOLOGY == "separate",
                settings={
                    "CASEWORK_WEBHOOKS_ALLOW_PRIVATE": "true",
                    "CASEWORK_SPOT_CHECK_RATE": "0",
                    # A separate worker hears of new events by looking (no wake-up crosses processes on
                    # SQLite): every 100 ms, a read.
                    **({"CASEWORK_WORKER_POLL_SECONDS": "0.1"} if TOPOLOGY == "separate" else {}),
                },
            ) as (url, _process):
                key = (Path(home) / "admin-key").read_text().strip()
                with httpx.Client(base_url=url, headers={"x-api-key": key}) as client:
                    project_id = client.post("/api/v1/projects", json={"name": "events"}).json()["id"]
                    endpoints: list[str] = []
                    if webhooks:
                        for path in ("/first", "/second"):
                            created = client.post(
                                "/api/v1/webhooks",
                                json={
                                    "url": f"http://127.0.0.1:{port}{path}",
                                    "events": ["*"],
                                    "project_id": project_id,
                                },
                            ).raise_for_status()
                            endpoints.append(created.json()["id"])
                started = time.time()
                latencies, statuses = workload(url, key, project_id)
                # Every event the project's log holds, to each endpoint subscribed by then (memory's
                # resolutions and suggestions write events too); read once the queue is quiet, from the feed.
                expected = expected_deliveries(url, key, project_id, endpoints) if webhooks else 0
                deadline = time.monotonic() + 300
                lines: list[str] = []
                while webhooks:
                    lines = out.read_text().splitlines() if out.exists() else []
                    arrived = {tuple(line.split()[2:4]) for line in lines}
                    if len(arrived) >= expected or time.monotonic() > deadline:
                        break
                    time.sleep(0.5)
                finished = time.time()
        finally:
            if hook is not None:
                hook.terminate()
                hook.wait()
    delays = [float(a) - float(c) for a, c, *_ in (line.split() for line in lines)]
    unique = {(line.split()[2], line.split()[3]) for line in lines}
    return Run(
        latencies=latencies,
        statuses=statuses,
        delays=delays,
        received=len(lines),
        unique=len(unique),
        expected=expected,
        seconds=finished - started,
    )


def main() -> None:
    off = run(webhooks=False)
    on = run(webhooks=True)
    api_off = percentile(off.latencies, 0.99)
    api_on = percentile(on.latencies, 0.99)
    rows = [
        (
            f"events delivered ({REVIEWS:,} reviews created and resolved, 2 endpoints)",
            f"{on.unique:,} of {on.expected:,} ({on.received:,} requests received)",
            "every event",
        ),
        ("delivered per second, over the run", f"{on.unique / on.seconds:.0f} events/s", ""),
        ("event to delivery: p50", milliseconds(on.delays, 0.5), ""),
        ("event to delivery: p99", milliseconds(on.delays, 0.99), "< 1 s at 200 events/s"),
        ("API p99, webhooks off", f"{api_off * 1000:.1f} ms", ""),
        ("API p99, webhooks on", f"{api_on * 1000:.1f} ms", "within 10% of off"),
        ("API p50, off / on", f"{milliseconds(off.latencies, 0.5)} / {milliseconds(on.latencies, 0.5)}", ""),
        ("API statuses, on", str(on.statuses), "all 2xx"),
    ]
    table = measures_table(rows)
    print(table)
    note = (
        f"Measured at {measured_commit()}. `casework serve --workers {WORKERS}` on SQLite, "
        + (
            "with one `casework worker` process beside it (it delivers, and runs the memory pass and replays), "
            if TOPOLOGY == "separate"
            else "each process's embedded worker delivering, "
        )
        + f"the load generator and the receiver on the same 2 cores. About {EVENTS_PER_SECOND} events a second: reviews "
        "created at 200 a second (review.created), then resolved at 100 a second (control.created and "
        "review.resolved each), HaluEval general's questions and answers under three evaluators, decided as "
        "labelled; latency is counted from when each request was due. The memory pass and the evidence replay "
        "of each decision run in the same worker; events it writes (suggestions, resolutions) are counted in "
        "the events expected."
    )
    write_section("events", f"{table}\n\n{note}")


if __name__ == "__main__":
    main()
