"""Cold start of ``casework serve`` on a fresh SQLite home, and GET /api/v1/projects latency under 50 clients.

Targets (2-core machine): cold start under 3 s; p99 under 20 ms with 50 concurrent clients.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.loadgen import encode_request, run_load
from bench.results import (
    casework_server,
    free_port,
    measures_table,
    milliseconds,
    wait_ready,
    write_section,
)

CLIENTS = 50
REQUESTS_PER_CLIENT = 100
PACED_RATES_PER_CLIENT = (5.0, 10.0)  # requests per second per client in the paced runs


def cold_start() -> list[float]:
    times = []
    for _ in range(3):
        with tempfile.TemporaryDirectory() as home:
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
            env.update({"CASEWORK_HOME": home, "CASEWORK_PORT": str(port), "CASEWORK_LOG_LEVEL": "warning"})
            started = time.perf_counter()
            process = subprocess.Popen(
                [sys.executable, "-m", "casework", "serve"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                wait_ready(f"http://127.0.0.1:{port}", process)
                times.append(time.perf_counter() - started)
            finally:
                process.terminate()
                process.wait(timeout=30)
    return times


def load(url: str, key: str, *, pace: float | None) -> tuple[list[float], float]:
    request = encode_request(f"{url}/api/v1/projects", headers={"x-api-key": key})
    result = asyncio.run(
        run_load(url, [[request] * REQUESTS_PER_CLIENT for _ in range(CLIENTS)], rate_per_client=pace)
    )
    assert set(result.statuses) == {200}, result.statuses
    return result.latencies, result.rate


def main() -> None:
    starts = cold_start()
    print(f"cold start to /readyz: {', '.join(f'{s:.2f}s' for s in starts)}")
    with tempfile.TemporaryDirectory() as home, casework_server(Path(home)) as (url, _):
        key = (Path(home) / "admin-key").read_text().strip()
        for i in range(10):
            httpx.post(f"{url}/api/v1/projects", headers={"x-api-key": key}, json={"name": f"project-{i}"})
        load(url, key, pace=None)  # warm-up
        saturated, throughput = load(url, key, pace=None)
        paced = [(rate, *load(url, key, pace=rate)) for rate in PACED_RATES_PER_CLIENT]

    rows = [("cold start to /readyz, fresh SQLite home (median of 3)", f"{sorted(starts)[1]:.2f} s", "< 3 s")]
    for rate, latencies, achieved in paced:
        rows.append(
            (
                f"GET /api/v1/projects, {CLIENTS} clients at {rate:.0f} req/s each ({achieved:.0f} req/s): p50",
                milliseconds(latencies, 0.5),
                "",
            )
        )
        rows.append(("same: p99", milliseconds(latencies, 0.99), "< 20 ms"))
    rows += [
        (f"GET /api/v1/projects, {CLIENTS} clients back to back: throughput", f"{throughput:.0f} req/s", ""),
        ("same: p50", milliseconds(saturated, 0.5), ""),
        ("same: p99", milliseconds(saturated, 0.99), ""),
    ]
    table = measures_table(rows)
    print(table)
    note = (
        "One `casework serve` process on SQLite; the load generator (bench/loadgen.py) runs on the same machine.\n"
        "Back to back, 50 clients keep 50 requests in flight, so latency there is queueing time: 50 / throughput.\n"
        "The paced run is the latency 50 clients see at a steady offered load."
    )
    write_section("startup", f"{table}\n\n{note}")


if __name__ == "__main__":
    main()
