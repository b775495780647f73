"""The review queue at volume: 1,000,000 reviews on SQLite, 100,000 on PostgreSQL.

Targets (2-core machine): a page of 50 pending reviews p99 < 30 ms; feedback p99 < 50 ms; bulk feedback of
1,000 items < 2 s; export of every review as JSONL >= 50,000 rows/s with the server's memory under 300 MB.
Interactions are HaluEval's real user queries and ChatGPT answers (shared/data), cycled.
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert

from bench.loadgen import encode_request, run_load
from bench.results import (
    casework_server,
    halueval_rows,
    measures_table,
    milliseconds,
    postgres_database,
    rss_megabytes,
    write_section,
)
from casework.db import migrate
from casework.db.engine import Database
from casework.db.models import Project, Review, Workspace
from casework.ids import new_id
from casework.services.review_counts import recount

SIZES = {"sqlite": 1_000_000, "postgresql": 100_000}
OPTIONS = ["faithful", "hallucinated"]


def seed(database_url: str, count: int) -> str:
    """Insert ``count`` reviews (about half resolved) into one project of workspace default; return its id."""
    database = Database.from_url(database_url)
    migrate.upgrade(database)
    data = halueval_rows()
    rng = random.Random(7)
    start = datetime.now(timezone.utc) - timedelta(days=30)
    step = timedelta(days=30) / count
    with database.transaction() as session:
        workspace = session.query(Workspace).filter_by(name="default").one()
        project = Project(id=new_id("prj"), workspace_id=workspace.id, name="volume", created_at=start)
        session.add(project)
        project_id = project.id
    batch: list[dict[str, Any]] = []
    for i in range(count):
        row = data[i % len(data)]
        created = start + step * i
        resolved = rng.random() < 0.5
        label = "hallucinated" if row["hallucination"] == "yes" else "faithful"
        batch.append(
            {
                "id": new_id("rev"),
                "project_id": project_id,
                "run_id": None,
                "evaluator_type": "hallucination",
                "query": row["user_query"],
                "response": row["chatgpt_response"],
                "context": None,
                "options": OPTIONS,
                "classification": "ambiguous",
                "confidence": round(rng.random() * 0.6, 2),
                "explanation": "unsure",
                "trace_id": None,
                "span_id": None,
                "dedupe_key": None,
                "priority": rng.choice([0] * 8 + [1, 5]),
                "metadata": {},
                "status": "resolved" if resolved else "pending",
                "created_at": created,
                "created_by": "bench",
                "resolved_at": created + timedelta(hours=2) if resolved else None,
                "resolved_by": "human" if resolved else None,
                "resolution_classification": label if resolved else None,
                "resolution_reasoning": "Checked against the source." if resolved else None,
                "resolution_reviewer": "bench@example.com" if resolved else None,
                "resolution_tags": ["bench"] if resolved else None,
                "resolution_submitted_by": "bench" if resolved else None,
                "control_id": None,
            }
        )
        if len(batch) == 20_000 or i == count - 1:
            with database.transaction() as session:
                session.execute(insert(Review.__table__), batch)
            batch = []
            print(f"\r  seeded {i + 1:,} reviews", end="", flush=True)
    print()
    with database.transaction() as session:
        recount(session, project_id)  # the rows went in around the services, which keep the counts
    with database.engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
    database.dispose()
    return project_id


def list_latencies(url: str, key: str, project_id: str) -> list[float]:
    request = encode_request(
        f"{url}/api/v1/hitl/reviews?project_id={project_id}&status=pending&limit=50",
        headers={"x-api-key": key},
    )
    asyncio.run(run_load(url, [[request] * 50]))  # warm-up
    # 4 reviewers' browsers, each paging the queue 5 times a second.
    result = asyncio.run(run_load(url, [[request] * 250 for _ in range(4)], rate_per_client=5))
    assert set(result.statuses) == {200}, result.statuses
    return result.latencies


def pending_ids(client: httpx.Client, project_id: str, count: int) -> list[str]:
    ids: list[str] = []
    cursor = None
    while len(ids) < count:
        params: dict[str, Any] = {"project_id": project_id, "status": "pending", "limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/v1/hitl/reviews", params=params).json()
        ids += [r["id"] for r in page["reviews"]]
        cursor = page["next_cursor"]
    return ids[:count]


def feedback_latencies(client: httpx.Client, ids: list[str]) -> list[float]:
    latencies = []
    for review_id in ids:
        started = time.perf_counter()
        response = client.post(
            f"/api/v1/hitl/reviews/{review_id}/feedback",
            json={
                "classification": "faithful",
                "reasoning": "Matches the source.",
                "reviewer": "bench@example.com",
                "tags": ["bench"],
            },
        )
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 201, response.text
    return latencies


def bulk_seconds(client: httpx.Client, ids: list[str]) -> float:
    items = [
        {
            "review_id": i,
            "classification": "hallucinated",
            "reasoning": "Invents a fact.",
            "reviewer": "b@x.io",
        }
        for i in ids
    ]
    started = time.perf_counter()
    result = client.post("/api/v1/hitl/reviews/bulk-feedback", json={"feedback": items}, timeout=120).json()
    elapsed = time.perf_counter() - started
    assert result["accepted"] == len(ids), result["rejected"]
    return elapsed


def export_rate(client: httpx.Client, project_id: str, pid: int) -> tuple[int, float, float]:
    peak = [rss_megabytes(pid)]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak.append(rss_megabytes(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    rows = 0
    started = time.perf_counter()
    with client.stream(
        "GET",
        "/api/v1/hitl/reviews/export",
        params={"project_id": project_id, "status": "all", "format": "jsonl"},
        timeout=600,
    ) as response:
        for chunk in response.iter_bytes():  # count lines without decoding them: the client must stay cheap
            rows += chunk.count(b"\n")
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    return rows, rows / elapsed, max(peak)


def run(backend: str, database_url: str | None, home: Path) -> list[tuple[str, str, str]]:
    count = SIZES[backend]
    with casework_server(home, database_url=database_url) as (url, _):
        pass  # first start: migrations, workspace default, admin key
    key = (home / "admin-key").read_text().strip()
    print(f"{backend}: seeding {count:,} reviews")
    project_id = seed(database_url or f"sqlite:///{home / 'casework.db'}", count)
    with (
        casework_server(home, database_url=database_url) as (url, process),
        httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=60) as client,
    ):
        listing = list_latencies(url, key, project_id)
        ids = pending_ids(client, project_id, 1300)
        feedback = feedback_latencies(client, ids[:300])
        bulk = bulk_seconds(client, ids[300:1300])
        rows, rate, peak_mb = export_rate(client, project_id, process.pid)

    n = f"{count:,}"
    return [
        (
            f"{backend}, {n} reviews: page of 50 pending, 4 clients at 5 req/s: p50",
            milliseconds(listing, 0.5),
            "",
        ),
        ("same: p99", milliseconds(listing, 0.99), "< 30 ms"),
        (f"{backend}: submit feedback, one at a time (300): p50", milliseconds(feedback, 0.5), ""),
        ("same: p99", milliseconds(feedback, 0.99), "< 50 ms"),
        (f"{backend}: bulk feedback, 1,000 items", f"{bulk:.2f} s", "< 2 s"),
        (
            f"{backend}: export all {rows:,} as JSONL",
            f"{rate:,.0f} rows/s" + ("" if rate >= 50_000 else " (missed)"),
            ">= 50,000 rows/s",
        ),
        ("same: server peak resident memory", f"{peak_mb:.0f} MB", "< 300 MB"),
    ]


def main() -> None:
    backends = sys.argv[2:] if len(sys.argv) > 2 else list(SIZES)
    rows: list[tuple[str, str, str]] = []
    for backend in backends:
        with tempfile.TemporaryDirectory() as home:
            if backend == "sqlite":
                rows += run(backend, None, Path(home))
            else:
                with postgres_database() as url:
                    rows += run(backend, url, Path(home))
    table = measures_table(rows)
    print(table)
    write_section(
        "review_queue", table + "\n\nHalf the reviews are resolved; all in one project (the worst case)."
    )


if __name__ == "__main__":
    main()
