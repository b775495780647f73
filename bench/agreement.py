"""Agreement at volume: 100,000 overlapped reviews with 3 decisions each (300,000 decisions by 12 reviewers, each
taking its own time to the millisecond), each queued by a judge's verdict (a third of them re-evaluated with
memory), over 12 weeks in one project, on SQLite.

Target (2-core machine): p99 under 500 ms for ``GET /api/v1/projects/{id}/agreement`` and for
``GET /api/v1/projects/{id}/agreement/trend``, for a stored report and for a scope nobody asked for before. The
rows are written directly (no events), so the project then has the day tallies a live project has: every day
marked and counted by the refresh the server runs after a project's decisions (casework.services.agreement_days;
timed, once, on its own line). Measured from a client on the same machine, one request at a time:

- "while decisions arrive": what a lead gets in a live project. Before each request a reviewer's decision is
  posted through the API (on reviews queued for 3 reviewers), and requests come every ``PAUSE`` seconds, so the
  server's background refresh (the day those decisions changed, then the stored report; one per 15-second window
  after new events) runs while the requests are served. Also reported: how many answers said ``stale`` and the
  oldest ``as_of`` seen.
- "asked again": no decision posted between the requests (the refresh after the last ones may still run).
- "a new scope": each request with its own ``to``, so each one is computed on request (the first request of a
  scope nobody asked for yet): the kept tallies of its days added up, the part-day at its end and any day changed
  since the last refresh counted from the rows.

``python -m bench agreement`` runs it at full volume and writes its section of bench/RESULTS.md;
``CASEWORK_BENCH_AGREEMENT_REVIEWS=2000`` runs a small one (which writes nothing).
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
from casework.db.models import Control, Decision, Evaluation, Evaluator, Project, Review, Workspace
from casework.ids import new_id
from casework.services import agreement_days, auth

REVIEWS = int(os.environ.get("CASEWORK_BENCH_AGREEMENT_REVIEWS", "100000"))
DECISIONS_PER_REVIEW = 3
WEEKS = 12
FULL_SCALE = 100_000
REQUESTS = int(os.environ.get("CASEWORK_BENCH_AGREEMENT_REQUESTS", "60"))
PAUSE = float(os.environ.get("CASEWORK_BENCH_AGREEMENT_PAUSE", "0.5"))  # seconds between live requests
OPTIONS = ["compliant", "non_compliant"]
REVIEWERS = [f"reviewer{i}@bank.example" for i in range(12)]
BATCH = 5_000


def seed(database_url: str, count: int) -> tuple[str, str]:
    """``count`` resolved reviews with 3 submitted decisions each and the evaluation that queued each; returns
    the project id and an API key."""
    database = Database.from_url(database_url)
    migrate.upgrade(database)
    rng = random.Random(7)
    jitter = random.Random(11)  # milliseconds on each decision's time, apart from the draws of the votes
    end = datetime.now(timezone.utc)
    start = end - timedelta(weeks=WEEKS)
    step = timedelta(weeks=WEEKS) / count
    with database.transaction() as session:
        workspace = session.query(Workspace).filter_by(name="default").one()
        project = Project(id=new_id("prj"), workspace_id=workspace.id, name="agreement", created_at=start)
        session.add(project)
        session.flush()
        evaluator = Evaluator(
            id=new_id("evl"), project_id=project.id, name="policy-adherence", version=1, kind="llm",
            options=OPTIONS, ambiguity_threshold=0.5, reeval="ambiguous", reviewers_required=DECISIONS_PER_REVIEW,
            created_at=start, created_by="bench",
        )  # fmt: skip
        session.add(evaluator)
        project_id, evaluator_id = project.id, evaluator.id
        key = auth.create_key(session, workspace_id=workspace.id, role=auth.Role.admin, label="bench").secret
    reviews: list[dict[str, Any]] = []
    decisions: list[dict[str, Any]] = []
    evaluations: list[dict[str, Any]] = []
    controls: list[dict[str, Any]] = []
    for i in range(count):
        created = start + step * i
        truth = rng.choice(OPTIONS)
        # Reviewers agree with the truth 85% of the time; the judge 70% at first, 80% after re-evaluation.
        votes = [truth if rng.random() < 0.85 else rng.choice(OPTIONS) for _ in range(DECISIONS_PER_REVIEW)]
        final = max(set(votes), key=votes.count)
        first = truth if rng.random() < 0.7 else rng.choice(OPTIONS)
        reevaluated = rng.random() < 1 / 3
        verdict = (truth if rng.random() < 0.8 else rng.choice(OPTIONS)) if reevaluated else first
        review_id = new_id("rev")
        reviews.append(
            {
                "id": review_id, "project_id": project_id, "run_id": None, "evaluator_type": "policy-adherence",
                "query": f"question {i}", "response": "answer", "context": None, "options": OPTIONS,
                "classification": verdict, "confidence": 0.4, "explanation": "unsure", "trace_id": None,
                "span_id": None, "dedupe_key": None, "priority": 0, "metadata": {}, "status": "resolved",
                "created_at": created, "created_by": "bench", "resolved_at": created + timedelta(hours=2),
                "resolved_by": "human", "resolution_classification": final, "resolution_reasoning": "Agreed.",
                "resolution_reviewer": "panel", "resolution_tags": [], "resolution_submitted_by": "bench",
                "control_id": None, "reviewers_required": DECISIONS_PER_REVIEW,
                "decisions_submitted": DECISIONS_PER_REVIEW,
            }
        )  # fmt: skip
        for reviewer, vote in zip(rng.sample(REVIEWERS, DECISIONS_PER_REVIEW), votes, strict=True):
            decisions.append(
                {
                    "id": new_id("dec"), "review_id": review_id, "project_id": project_id, "by": "human",
                    "status": "submitted", "classification": vote, "reasoning": "Read the policy.",
                    "reviewer": reviewer, "tags": [], "submitted_by": "bench", "votes": [],
                    "created_at": created + timedelta(
                        minutes=rng.randint(1, 90), milliseconds=jitter.randint(0, 59_999)
                    ),
                }
            )  # fmt: skip
        evaluations.append(
            {
                "id": new_id("evn"), "project_id": project_id, "evaluator_id": evaluator_id,
                "evaluator_type": "policy-adherence", "evaluator_version": 1, "query": f"question {i}",
                "response": "answer", "status": "completed", "classification": verdict, "ambiguous": True,
                "reevaluated": reevaluated, "initial_classification": first if reevaluated else None,
                "memory_control_ids": [], "review_id": review_id, "created_at": created,
            }
        )  # fmt: skip
        if i % 10 == 0:
            controls.append(
                {
                    "id": new_id("ctl"), "project_id": project_id, "evaluator_type": "policy-adherence",
                    "classification": final, "reasoning": "Agreed.", "tags": [], "reviewer": "panel",
                    "status": "active", "version": 1, "review_id": review_id, "created_at": created,
                    "created_by": "bench", "updated_at": created, "attention": [],
                }
            )  # fmt: skip
        if len(reviews) == BATCH or i == count - 1:
            with database.transaction() as session:
                session.execute(insert(Review.__table__), reviews)
                session.execute(insert(Decision.__table__), decisions)
                session.execute(insert(Evaluation.__table__), evaluations)
                if controls:
                    session.execute(insert(Control.__table__), controls)
            reviews, decisions, evaluations, controls = [], [], [], []
            print(f"\r  seeded {i + 1:,} reviews", end="", flush=True)
    print()
    with database.engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
    database.dispose()
    return project_id, key


def count_days(database_url: str, project_id: str) -> tuple[float, int]:
    """The day tallies a live project has: its days marked (the rows went in around the services, which mark
    them), then claimed, counted and kept as the server's refresh does; the seconds that took and the days."""
    database = Database.from_url(database_url)
    with database.transaction() as session:
        agreement_days.mark_all(session, project_id)
    started = time.perf_counter()
    with database.transaction() as session:
        claimed = agreement_days.claim(session, project_id=project_id)
    with database.transaction(write=False) as session:
        counted = agreement_days.count_claimed(session, project_id=project_id, claimed=claimed)
    with database.transaction() as session:
        agreement_days.keep(session, project_id=project_id, counted=counted)
    seconds = time.perf_counter() - started
    database.dispose()
    return seconds, len(claimed)


def timings(client: httpx.Client, path: str, params: dict[str, str], *, fresh: bool) -> list[float]:
    """Latencies of ``REQUESTS`` requests; ``fresh``: each with its own ``to`` (far ahead), a new scope each."""
    if not fresh:
        client.get(path, params=params).raise_for_status()  # computed once, then stored
    values = []
    for i in range(REQUESTS):
        asked = {**params, "to": f"2100-01-01T00:00:{i % 60:02d}.{i // 60:06d}Z"} if fresh else params
        started = time.perf_counter()
        reply = client.get(path, params=asked)
        values.append(time.perf_counter() - started)
        reply.raise_for_status()
    return values


class Decisions:
    """Reviewers deciding, one decision at a time, on reviews queued for 3 reviewers each."""

    def __init__(self, client: httpx.Client, project_id: str) -> None:
        self._client = client
        self._project_id = project_id
        self._review_id = ""
        self.posted = 0

    def post(self) -> None:
        if self.posted % DECISIONS_PER_REVIEW == 0:
            queued = self._client.post(
                "/api/v1/hitl/reviews",
                json={
                    "project_id": self._project_id, "evaluator_type": "policy-adherence",
                    "query": f"live question {self.posted}", "response": "answer", "options": OPTIONS,
                    "classification": OPTIONS[0], "confidence": 0.4,
                },
            )  # fmt: skip
            queued.raise_for_status()
            self._review_id = queued.json()["id"]
        reviewer = REVIEWERS[self.posted % DECISIONS_PER_REVIEW]
        self._client.post(
            f"/api/v1/hitl/reviews/{self._review_id}/feedback",
            json={
                "classification": OPTIONS[self.posted % 2], "reasoning": "Read the policy.",
                "reviewer": reviewer, "tags": [],
            },
        ).raise_for_status()  # fmt: skip
        self.posted += 1


def live_timings(client: httpx.Client, path: str, decisions: Decisions) -> tuple[list[float], int, float]:
    """Latencies of ``REQUESTS`` requests, each after a new decision, ``PAUSE`` seconds apart; with how many
    answers were stale and the largest age of an answer (seconds from its ``as_of`` to when it came)."""
    client.get(path).raise_for_status()  # stored, if no one asked for this scope yet
    values: list[float] = []
    stale = 0
    oldest = 0.0
    for _ in range(REQUESTS):
        decisions.post()
        started = time.perf_counter()
        reply = client.get(path)
        values.append(time.perf_counter() - started)
        reply.raise_for_status()
        body = reply.json()
        stale += bool(body["stale"])
        as_of = datetime.fromisoformat(body["as_of"])
        oldest = max(oldest, (datetime.now(timezone.utc) - as_of).total_seconds())
        time.sleep(PAUSE)
    return values, stale, oldest


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        with casework_server(home) as (_url, _):
            pass  # first start: migrations, workspace default, admin key, the demo
        database_url = f"sqlite:///{home / 'casework.db'}"
        print(f"seeding {REVIEWS:,} reviews with {DECISIONS_PER_REVIEW} decisions each")
        project_id, key = seed(database_url, REVIEWS)
        built, days = count_days(database_url, project_id)
        print(f"  day tallies: {days} days counted in {built:.2f} s", flush=True)
        rows = [(f"day tallies, counted once after seeding ({days} days)", f"{built:.2f} s", "")]
        load_before = os.getloadavg()
        with (
            casework_server(home) as (url, _),
            httpx.Client(base_url=url, timeout=120, headers={"x-api-key": key}) as client,
        ):
            report = client.get(f"/api/v1/projects/{project_id}/agreement").json()
            alpha = report["inter_reviewer"]["krippendorff_alpha"]
            print(f"  alpha {alpha['value']} {alpha['interval']} on {alpha['items']:,} reviews", flush=True)
            decisions = Decisions(client, project_id)
            paths = {
                name: f"/api/v1/projects/{project_id}/{name}" for name in ("agreement", "agreement/trend")
            }
            for name, path in paths.items():
                values, stale, oldest = live_timings(client, path, decisions)
                rows.append((f"{name}, while decisions arrive: p50", milliseconds(values, 0.5), ""))
                rows.append((f"{name}, while decisions arrive: p99", milliseconds(values, 0.99), "< 500 ms"))
                rows.append((f"{name}, while decisions arrive: answers stale", f"{stale}/{len(values)}", ""))
                rows.append((f"{name}, while decisions arrive: oldest as_of", f"{oldest:.1f} s", ""))
                print(
                    f"  {name}, while decisions arrive: p50 {milliseconds(values, 0.5)}, "
                    f"p99 {milliseconds(values, 0.99)}, stale {stale}/{len(values)}, oldest as_of {oldest:.1f} s",
                    flush=True,
                )
            # Last: the scopes these make would be refreshed too (the most recently asked for first).
            for how, fresh in (("asked again", False), ("a new scope", True)):
                for name, path in paths.items():
                    values = timings(client, path, {}, fresh=fresh)
                    rows.append((f"{name}, {how}: p50", milliseconds(values, 0.5), ""))
                    rows.append((f"{name}, {how}: p99", milliseconds(values, 0.99), "< 500 ms"))
                    print(
                        f"  {name}, {how}: p50 {milliseconds(values, 0.5)}, p99 {milliseconds(values, 0.99)}",
                        flush=True,
                    )
    load = os.getloadavg()
    table = measures_table(rows)
    print(table)
    if REVIEWS < FULL_SCALE:
        print("(a small run: bench/RESULTS.md is left as it is)")
        return
    write_section(
        "agreement",
        table + f"\n\n{REVIEWS:,} overlapped reviews with {DECISIONS_PER_REVIEW} decisions each "
        f"({REVIEWS * DECISIONS_PER_REVIEW:,} decisions, {len(REVIEWERS)} reviewers, every pair of them compared, "
        "each decision's time to the millisecond), each queued by a judge's verdict, over "
        f"{WEEKS} weeks, on SQLite; {REQUESTS} requests per line, one at a time. Krippendorff's alpha came out at "
        f"{alpha['value']} (95% {alpha['interval']}). The rows are written directly, so the project's day "
        f"tallies are then counted once, as the refresh after a project's decisions counts them (the first line: "
        'claim, count from the rows, keep; a live project pays this a day at a time). "While decisions arrive": '
        f"a decision posted through the API before each request, requests {PAUSE} s apart, so the background "
        "refresh (the day those decisions changed, then the stored report; at most one per project every 15 s) "
        'runs meanwhile; "answers stale" says how many answers had events after their `as_of`, "oldest as_of" the '
        'largest age of an answer\'s data. "Asked again": no decision posted between the requests. "A new scope": '
        "every request with its own `to`, so each one is computed on request, as the first request of a scope is: "
        "the kept tallies of its days added up, with its last part-day (empty here: every `to` is far ahead) and any "
        "day changed since the last refresh counted from the rows, then the statistics (bootstrap intervals "
        "included). Load "
        f"average (1 min) {load_before[0]:.2f} when the requests began and {load[0]:.2f} at the end: another "
        "session may share the 2 cores.",
    )


if __name__ == "__main__":
    main()
