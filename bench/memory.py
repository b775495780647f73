"""Evaluation memory at volume, and what Casework adds to each evaluation.

Targets (2-core machine): retrieval p99 < 10 ms with 100,000 controls in one project on SQLite; at least 250
evaluations/s through POST /api/v1/evaluations with a judge that answers in 200 ms, at concurrency 64.
Controls are HaluEval's real queries and answers (shared/data), cycled.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert

from bench.loadgen import encode_request, run_load
from bench.results import (
    casework_server,
    cpu_seconds,
    free_port,
    halueval_rows,
    measures_table,
    milliseconds,
    write_section,
)
from casework import heap
from casework.db import migrate
from casework.db.engine import Database
from casework.db.models import Control, ControlVersion, MemoryTerm, Project, Workspace
from casework.ids import new_id
from casework.memory.retrieval import retrieve
from casework.memory.similarity import control_terms

CONTROLS = 100_000
CONCURRENCY = 64
EVALUATIONS = 4_000
WARM_UP = 4  # evaluations per client before measuring
JUDGE_DELAY = 0.2


def seed_controls(database: Database, count: int) -> str:
    data = halueval_rows()
    rng = random.Random(3)
    start = datetime.now(timezone.utc) - timedelta(days=90)
    with database.transaction() as session:
        workspace = session.query(Workspace).filter_by(name="default").one()
        project = Project(id=new_id("prj"), workspace_id=workspace.id, name="memory-volume", created_at=start)
        session.add(project)
        project_id = project.id
    batch: list[dict[str, Any]] = []
    terms: Counter[str] = Counter()
    for i in range(count):
        row = data[i % len(data)]
        hallucinated = row["hallucination"] == "yes"
        spans = ", ".join(row.get("hallucination_spans") or [])
        reasoning = (
            (f"Invents: {spans}." if spans else "Invents facts.")
            if hallucinated
            else "Stays with what is known."
        )
        created = start + timedelta(seconds=i * 60)
        batch.append(
            {
                "id": new_id("ctl"),
                "project_id": project_id,
                "evaluator_type": "hallucination",
                "classification": "hallucinated" if hallucinated else "faithful",
                "reasoning": reasoning,
                "tags": [rng.choice(["facts", "numbers", "names", "dates"])],
                "reviewer": "bench@example.com",
                "status": "active",
                "version": 1,
                "review_id": None,
                "query": row["user_query"],
                "response": row["chatgpt_response"],
                "context": None,
                "created_at": created,
                "created_by": "bench",
                "updated_at": created,
            }
        )
        if len(batch) == 10_000 or i == count - 1:
            for c in batch:  # memory's word statistics, as the control service keeps them
                terms.update(control_terms(c["query"], c["response"], c["reasoning"], c["tags"]))
            with database.transaction() as session:
                session.execute(insert(Control.__table__), batch)
                session.execute(
                    insert(ControlVersion.__table__),
                    [
                        {
                            "control_id": c["id"],
                            "version": 1,
                            "classification": c["classification"],
                            "reasoning": c["reasoning"],
                            "tags": c["tags"],
                            "status": "active",
                            "changed_by": "bench",
                            "changed_at": c["created_at"],
                        }
                        for c in batch
                    ],
                )
            batch = []
            print(f"\r  seeded {i + 1:,} controls", end="", flush=True)
    print()
    with database.transaction() as session:
        rows = [
            {"project_id": project_id, "evaluator_type": "hallucination", "term": term, "df": n}
            for term, n in terms.items()
        ]
        for start_row in range(0, len(rows), 10_000):
            session.execute(insert(MemoryTerm.__table__), rows[start_row : start_row + 10_000])
    with database.engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
    return project_id


def retrieval_latencies(database: Database, project_id: str) -> tuple[list[float], float]:
    data = halueval_rows()
    rng = random.Random(5)
    samples = [data[rng.randrange(len(data))] for _ in range(600)]
    latencies = []
    found = 0
    heap.settle()  # as each server process does once started; here, after seeding's garbage
    with database.transaction(write=False) as session:
        for i, row in enumerate(samples):
            started = time.perf_counter()
            memories = retrieve(
                session,
                project_id=project_id,
                evaluator_type="hallucination",
                query=row["user_query"],
                response=row["chatgpt_response"],
            )
            if i >= 100:  # the first hundred warm the caches
                latencies.append(time.perf_counter() - started)
                found += bool(memories)
    return latencies, found / len(latencies)


def evaluation_rate(url: str, key: str, server_pid: int) -> tuple[float, list[float], dict[int, int], float]:
    """Evaluations per second at CONCURRENCY clients, their latencies and statuses, and the server's CPU per
    evaluation in milliseconds. A first round of WARM_UP evaluations per client opens the connections (to the
    server and from it to the judge) and is not counted."""
    with httpx.Client(base_url=url, headers={"x-api-key": key}) as client:
        project_id = client.post("/api/v1/projects", json={"name": "evaluation-rate"}).json()["id"]
    data = halueval_rows()
    per_client = EVALUATIONS // CONCURRENCY

    def requests(offset: int, count: int) -> list[list[bytes]]:
        out = []
        for c in range(CONCURRENCY):
            mine = []
            for j in range(count):
                row = data[(offset + c * count + j) % len(data)]
                body = json.dumps(
                    {
                        "project_id": project_id,
                        "evaluators": ["hallucination"],
                        "query": row["user_query"],
                        "response": row["chatgpt_response"],
                    }
                ).encode()
                headers = {"x-api-key": key, "content-type": "application/json"}
                mine.append(encode_request(f"{url}/api/v1/evaluations", "POST", headers, body))
            out.append(mine)
        return out

    warm_up = asyncio.run(run_load(url, requests(0, WARM_UP)))
    assert set(warm_up.statuses) == {200}, warm_up.statuses
    measured = requests(CONCURRENCY * WARM_UP, per_client)
    cpu_before = cpu_seconds(server_pid)
    result = asyncio.run(run_load(url, measured))
    cpu_ms = (cpu_seconds(server_pid) - cpu_before) * 1000 / len(result.latencies)
    return result.rate, result.latencies, result.statuses, cpu_ms


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        with casework_server(Path(home)) as _:
            pass  # first start: migrations, workspace, key
        key = (Path(home) / "admin-key").read_text().strip()
        database = Database.from_url(f"sqlite:///{Path(home) / 'casework.db'}")
        migrate.upgrade(database)
        print(f"seeding {CONTROLS:,} controls")
        project_id = seed_controls(database, CONTROLS)
        latencies, hit_rate = retrieval_latencies(database, project_id)
        database.dispose()

        judge_port = free_port()
        judge = subprocess.Popen([sys.executable, "-m", "bench.judge", str(judge_port), str(JUDGE_DELAY)])
        os.environ.update({"OPENAI_API_KEY": "bench", "OPENAI_BASE_URL": f"http://127.0.0.1:{judge_port}/v1"})
        by_workers = {}
        try:
            time.sleep(1.5)
            for workers in (1, 2):
                with casework_server(Path(home), workers=workers) as (url, server):
                    by_workers[workers] = evaluation_rate(url, key, server.pid)
        finally:
            judge.terminate()
            judge.wait()
    assert all(set(statuses) == {200} for _, _, statuses, _ in by_workers.values()), by_workers

    rows = [
        (f"retrieval, {CONTROLS:,} controls in one project (SQLite): p50", milliseconds(latencies, 0.5), ""),
        ("same: p99", milliseconds(latencies, 0.99), "< 10 ms"),
        ("same: share of interactions with at least one memory", f"{hit_rate:.0%}", ""),
    ]
    for workers, (rate, evaluation_latencies, _, cpu_ms) in by_workers.items():
        rows.append(
            (
                f"POST /api/v1/evaluations, judge answering in {JUDGE_DELAY * 1000:.0f} ms, {CONCURRENCY} clients, "
                f"CASEWORK_WORKERS={workers}",
                f"{rate:.0f} evaluations/s",
                ">= 250/s",
            )
        )
        rows.append(
            (
                "same: p50 / p99 latency",
                f"{milliseconds(evaluation_latencies, 0.5)} / {milliseconds(evaluation_latencies, 0.99)}",
                "",
            )
        )
        rows.append(("same: server CPU per evaluation", f"{cpu_ms:.1f} ms", ""))
    table = measures_table(rows)
    print(table)
    note = (
        f"The ceiling for the evaluation figures is {CONCURRENCY} / {JUDGE_DELAY} s = "
        f"{CONCURRENCY / JUDGE_DELAY:.0f} evaluations/s; the gap to it is Casework's own cost. Each of the "
        f"{CONCURRENCY} clients keeps one connection and sends its next evaluation when the last is answered, "
        f"after {WARM_UP} uncounted evaluations each. The stand-in judge (bench/judge.py) and the load generator "
        "run on the same 2 cores, written lean so that their CPU is not charged to Casework's. One server process "
        "is bound to one core by Python's GIL; with CASEWORK_WORKERS=2 the kernel hands each new connection to "
        "whichever process accepts first, so the two rarely get 32 each. Figures vary by about a tenth between "
        "runs on this machine."
    )
    write_section("memory", f"{table}\n\n{note}")


if __name__ == "__main__":
    main()
