"""Trends and the SLA report at volume: 1,000,000 reviews over 90 days in one project, half of them resolved
(by people and by memory, some past their due time), on SQLite.

Target (2-core machine): p99 under 200 ms for ``GET /api/v1/projects/{id}/trends`` (90 days by day, by week, one
evaluator, CSV) and ``GET /api/v1/projects/{id}/sla-report`` (30 and 90 days). Both read the kept roll-ups
(casework.services.rollups), rebuilt here once after the rows went in around the services. Measured from a
client on the same machine, one request at a time after a warm-up.

``python -m bench trends`` runs it at full volume (a few minutes, most of it seeding);
``CASEWORK_BENCH_TRENDS_SCALE=0.1`` runs a tenth of it.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert

from bench.results import casework_server, measures_table, milliseconds, write_section
from casework.db import migrate
from casework.db.engine import Database
from casework.db.models import Project, Review, Workspace
from casework.ids import new_id
from casework.services import auth, rollups
from casework.services.review_counts import recount

SCALE = float(os.environ.get("CASEWORK_BENCH_TRENDS_SCALE", "1"))
REVIEWS = int(1_000_000 * SCALE)
DAYS = 90
REQUESTS = 40
EVALUATORS = ["hallucination", "policy-adherence", "toxicity", "relevance"]
REVIEWERS = [f"reviewer{i}@bank.example" for i in range(12)]
TARGET_HOURS = 24.0


def seed(database_url: str, count: int) -> tuple[str, str]:
    """``count`` reviews over ``DAYS`` days, half resolved; returns the project id and an API key."""
    database = Database.from_url(database_url)
    migrate.upgrade(database)
    rng = random.Random(5)
    end = datetime.now(timezone.utc)
    start = end - timedelta(days=DAYS)
    step = timedelta(days=DAYS) / count
    with database.transaction() as session:
        workspace = session.query(Workspace).filter_by(name="default").one()
        project = Project(id=new_id("prj"), workspace_id=workspace.id, name="trends", created_at=start)
        session.add(project)
        project_id = project.id
        key = auth.create_key(session, workspace_id=workspace.id, role=auth.Role.admin, label="bench").secret
    batch: list[dict[str, Any]] = []
    for i in range(count):
        created = start + step * i
        resolved = rng.random() < 0.5
        by_memory = resolved and rng.random() < 0.3
        waited = timedelta(hours=rng.expovariate(1 / 10))  # a mean of 10 hours: some past the 24-hour target
        resolved_at = min(created + waited, end) if resolved else None
        due, warn = created + timedelta(hours=TARGET_HOURS), created + timedelta(hours=TARGET_HOURS * 0.75)
        batch.append(
            {
                "id": new_id("rev"), "project_id": project_id, "run_id": None,
                "evaluator_type": EVALUATORS[i % len(EVALUATORS)], "query": f"question {i}",
                "response": "answer", "context": None, "options": ["yes", "no"], "classification": "ambiguous",
                "confidence": 0.4, "explanation": "unsure", "trace_id": None, "span_id": None,
                "dedupe_key": None, "priority": 0, "metadata": {}, "status": "resolved" if resolved else "pending",
                "created_at": created, "created_by": "bench", "resolved_at": resolved_at,
                "resolved_by": ("memory" if by_memory else "human") if resolved else None,
                "resolution_classification": "yes" if resolved else None,
                "resolution_reasoning": "Checked." if resolved else None,
                "resolution_reviewer": ("casework-memory" if by_memory else rng.choice(REVIEWERS))
                if resolved else None,
                "resolution_tags": [] if resolved else None, "resolution_submitted_by": "bench" if resolved else None,
                "control_id": None, "due_at": due, "warn_at": warn,
                # As a running system leaves them: the sweep announced what had passed each point.
                "due_soon_sent_at": warn if not resolved and warn <= end else None,
                "overdue_sent_at": due if not resolved and due <= end else None,
            }
        )  # fmt: skip
        if len(batch) == 20_000 or i == count - 1:
            with database.transaction() as session:
                session.execute(insert(Review.__table__), batch)
            batch = []
            print(f"\r  seeded {i + 1:,} reviews", end="", flush=True)
    print()
    started = time.perf_counter()
    with database.transaction() as session:
        recount(session, project_id)  # the rows went in around the services, which keep counts and roll-ups
        rollups.rebuild(session, project_id)
    print(f"  roll-ups rebuilt in {time.perf_counter() - started:.1f} s")
    with database.engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
    database.dispose()
    return project_id, key


def timings(client: httpx.Client, path: str, params: dict[str, str]) -> list[float]:
    for _ in range(3):
        client.get(path, params=params).raise_for_status()
    values = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        reply = client.get(path, params=params)
        values.append(time.perf_counter() - started)
        reply.raise_for_status()
    return values


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        with casework_server(home) as (_url, _):
            pass  # first start: migrations, workspace default, admin key, the demo
        database_url = f"sqlite:///{home / 'casework.db'}"
        print(f"seeding {REVIEWS:,} reviews over {DAYS} days")
        project_id, key = seed(database_url, REVIEWS)
        today = datetime.now(timezone.utc).date()
        first = str(today - timedelta(days=DAYS))
        calls = {
            "trends, 90 days by day": ("trends", {"from": first, "to": str(today)}),
            "trends, 90 days by week": ("trends", {"from": first, "to": str(today), "bucket": "week"}),
            "trends, one evaluator": (
                "trends",
                {"from": first, "to": str(today), "evaluator_type": "toxicity"},
            ),
            "trends, CSV": ("trends", {"from": first, "to": str(today), "format": "csv"}),
            "sla-report, 30 days": ("sla-report", {}),
            "sla-report, 90 days": ("sla-report", {"from": first, "to": str(today)}),
        }
        rows = []
        with (
            casework_server(home) as (url, _),
            httpx.Client(base_url=url, timeout=60, headers={"x-api-key": key}) as client,
        ):
            for name, (endpoint, params) in calls.items():
                values = timings(client, f"/api/v1/projects/{project_id}/{endpoint}", params)
                rows.append((f"{name}: p50", milliseconds(values, 0.5), ""))
                rows.append((f"{name}: p99", milliseconds(values, 0.99), "< 200 ms"))
                print(
                    f"  {name}: p50 {milliseconds(values, 0.5)}, p99 {milliseconds(values, 0.99)}", flush=True
                )
    table = measures_table(rows)
    print(table)
    write_section(
        "trends",
        table
        + f"\n\n{REVIEWS:,} reviews in one project over {DAYS} days, about half resolved (30% of those by "
        f"memory), {len(EVALUATORS)} evaluators, {len(REVIEWERS)} reviewers, a {TARGET_HOURS:.0f}-hour target; "
        f"SQLite; {REQUESTS} requests per call, one at a time. The sla-report counts the reviews overdue now "
        "(about half a million here: every pending review older than a day), exactly, as the pending reviews (kept "
        "counted) less those not overdue.",
    )


if __name__ == "__main__":
    main()
