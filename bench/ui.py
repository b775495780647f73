"""The reviewer UI at volume: every page's time with 1,000,000 reviews in the database.

Target (2-core machine): every page under 200 ms, server side, on SQLite, with 1,000,000 reviews in one
project (half of them pending: the worst case for the queue's counts). Measured from a client on the same
machine, one request at a time after a warm-up, so each figure is the server's time plus loopback HTTP.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import httpx

from bench.results import casework_server, measures_table, milliseconds, write_section
from bench.review_queue import seed
from casework.db.engine import Database
from casework.services.web_auth import create_login_link_token

REVIEWS = 1_000_000
REQUESTS = 40


def sign_in(client: httpx.Client, database_url: str) -> None:
    database = Database.from_url(database_url)
    with database.transaction() as session:
        token = create_login_link_token(session, key_label="admin")
    database.dispose()
    assert client.get(f"/login?token={token}").status_code == 303


def timings(client: httpx.Client, path: str) -> list[float]:
    for _ in range(3):
        client.get(path).raise_for_status()
    values = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        reply = client.get(path)
        values.append(time.perf_counter() - started)
        reply.raise_for_status()
    return values


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        with casework_server(home) as (_url, _):
            pass  # first start: migrations, workspace default, admin key, the demo
        database_url = f"sqlite:///{home / 'casework.db'}"
        print(f"seeding {REVIEWS:,} reviews")
        project_id = seed(database_url, REVIEWS)
        with (
            casework_server(home) as (url, _),
            httpx.Client(base_url=url, timeout=60, headers={"accept": "text/html"}) as client,
        ):
            sign_in(client, database_url)
            queue = client.get(f"/projects/{project_id}/queue")
            review_path = queue.text.split('href="/reviews/', 1)[1].split('"', 1)[0]
            pages = {
                "projects (/)": "/",
                "queue": f"/projects/{project_id}/queue",
                "queue, filtered by evaluator": f"/projects/{project_id}/queue?evaluator=hallucination",
                "review": f"/reviews/{review_path}",
                "controls": f"/projects/{project_id}/controls",
                "overview": f"/projects/{project_id}/overview",
            }
            rows = []
            for name, path in pages.items():
                values = timings(client, path)
                rows.append((f"{name}: p50", milliseconds(values, 0.5), ""))
                rows.append((f"{name}: p99", milliseconds(values, 0.99), "< 200 ms"))
                print(
                    f"  {name}: p50 {milliseconds(values, 0.5)}, p99 {milliseconds(values, 0.99)}", flush=True
                )
    table = measures_table(rows)
    print(table)
    write_section(
        "ui",
        table
        + f"\n\n{REVIEWS:,} reviews in one project, half pending; {REQUESTS} requests per page, one at a time.",
    )


if __name__ == "__main__":
    main()
