"""Golden-set runs at scale: a 5,000-item set from HaluEval general (../shared/data/halueval-general, read at
run time), the stand-in judge answering in 200 ms, CASEWORK_GOLDEN_CONCURRENCY=64. Measures items per second
from the POST of the run to its completion (the ceiling is 64 / 0.2 s = 320/s; the gap is Casework's own cost)
and how long the finished run's report takes to read."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.results import (
    casework_server,
    free_port,
    halueval_rows,
    measures_table,
    milliseconds,
    write_section,
)

ITEMS = 5_000
JUDGE_DELAY = 0.2
CONCURRENCY = int(os.environ.get("BENCH_GOLDEN_CONCURRENCY", "64"))
BATCH = 1_000  # items per request while building the set


def golden_items() -> list[dict[str, str]]:
    """HaluEval's queries and answers with their human label, repeated (numbered) up to ITEMS."""
    rows = halueval_rows()
    items = []
    for n in range(ITEMS):
        row = rows[n % len(rows)]
        items.append(
            {
                "query": row["user_query"] + ("" if n < len(rows) else f" (#{n})"),
                "response": row["chatgpt_response"],
                "expected": "hallucinated" if row["hallucination"] == "yes" else "faithful",
            }
        )
    return items


def measure(url: str, key: str) -> tuple[float, float, list[float], dict[str, object]]:
    with httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=120) as client:
        project_id = client.post("/api/v1/projects", json={"name": "bench-golden"}).json()["id"]
        items = golden_items()
        made = client.post(
            "/api/v1/golden-sets", json={"project_id": project_id, "name": "halueval", "items": items[:BATCH]}
        )
        made.raise_for_status()
        set_id = made.json()["id"]
        for start in range(BATCH, ITEMS, BATCH):
            client.post(
                f"/api/v1/golden-sets/{set_id}/versions", json={"items": items[start : start + BATCH]}
            ).raise_for_status()
        started = time.perf_counter()
        run = client.post(f"/api/v1/golden-sets/{set_id}/runs", json={"evaluators": ["hallucination"]})
        run.raise_for_status()
        path = f"/api/v1/golden-sets/{set_id}/runs/{run.json()['id']}"
        while (report := client.get(path).json())["status"] == "running":
            time.sleep(0.05)
        if report["status"] != "completed":
            raise SystemExit(f"the golden run failed: {report.get('error')}")
        elapsed = time.perf_counter() - started
        reads = []
        for _ in range(20):
            began = time.perf_counter()
            client.get(path).raise_for_status()
            reads.append(time.perf_counter() - began)
        return ITEMS / elapsed, elapsed, reads, report


def main() -> None:
    judge_port = free_port()
    judge = subprocess.Popen([sys.executable, "-m", "bench.judge", str(judge_port), str(JUDGE_DELAY)])
    os.environ.update({"OPENAI_API_KEY": "bench", "OPENAI_BASE_URL": f"http://127.0.0.1:{judge_port}/v1"})
    try:
        with tempfile.TemporaryDirectory() as home:
            settings = {"CASEWORK_GOLDEN_CONCURRENCY": str(CONCURRENCY)}
            with casework_server(Path(home), settings=settings) as (url, _server):
                key = (Path(home) / "admin-key").read_text().strip()
                rate, elapsed, reads, report = measure(url, key)
    finally:
        judge.terminate()
        judge.wait()
    [metrics] = report["metrics"]  # type: ignore[misc]
    assert metrics["items"] == ITEMS and metrics["errors"] == 0, metrics
    table = measures_table(
        [
            (
                f"golden run, {ITEMS:,} items, judge answering in {JUDGE_DELAY * 1000:.0f} ms, "
                f"CASEWORK_GOLDEN_CONCURRENCY={CONCURRENCY} (SQLite)",
                f"{rate:.0f} items/s ({elapsed:.1f} s)",
                ">= 250 items/s",
            ),
            (
                "same: judge latency through the runner, p50 / p90",
                f"{metrics['latency_p50_ms']:.0f} / {metrics['latency_p90_ms']:.0f} ms",
                "",
            ),
            ("GET the finished run's report: p50", milliseconds(reads, 0.5), "< 1 s"),
            ("same: p99", milliseconds(reads, 0.99), "< 1 s"),
        ]
    )
    print(table)
    note = (
        f"The ceiling is {CONCURRENCY} / {JUDGE_DELAY} s = {CONCURRENCY / JUDGE_DELAY:.0f} items/s. The run is "
        f"timed from its POST to the first GET that sees it completed (polled every 50 ms): jobs of 250 items, "
        "their verdicts stored one transaction per job, the metrics (accuracy, kappa, confusion, diff) computed "
        "when the last job is in. The stand-in judge (bench/judge.py) answers every item with the first option, "
        "so the accuracy measured is HaluEval's share of non-hallucinated answers, not a judge's quality."
    )
    load = os.getloadavg()[0]
    note += f" Load average when it finished: {load:.1f} on {os.cpu_count()} cores" + (
        " (other work was running: these figures are not the machine's best)."
        if load > (os.cpu_count() or 1)
        else "."
    )
    write_section("golden", f"{table}\n\n{note}")


if __name__ == "__main__":
    main()
