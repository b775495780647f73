"""The reviewer UI at volume: every page's time with 1,000,000 reviews and 1,000,000 spans in the database.

Target (2-core machine): every page under 200 ms, server side, on SQLite, with 1,000,000 reviews in one
project (half of them pending: the worst case for the queue's counts) and, in the same project, 1,000,000
spans in 250,000 traces (a root and three LLM calls each; sessions of five traces; one trace in ten with an
error) and an evaluation of each trace's first LLM call (250,000). Measured from a client on the same
machine, one request at a time after a warm-up, so each figure is the server's time plus loopback HTTP.

``python -m bench ui`` runs it at full volume (about ten minutes, most of it seeding);
``CASEWORK_BENCH_UI_SCALE=0.1`` runs a tenth of it.
"""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

from bench.results import casework_server, measures_table, milliseconds, write_section
from bench.review_queue import seed
from casework.db.dialect import fast_insert
from casework.db.engine import Database
from casework.db.models import Evaluation, Evaluator, JudgeCall, Span, Trace
from casework.ids import new_id
from casework.services.web_auth import create_login_link_token

SCALE = float(os.environ.get("CASEWORK_BENCH_UI_SCALE", "1"))
REVIEWS = int(1_000_000 * SCALE)
SPANS = int(1_000_000 * SCALE)
REQUESTS = 40
SPANS_PER_TRACE = 4
TRACES_PER_SESSION = 5


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


def _llm_attributes(turn: int, question: str, answer: str, session_id: str) -> dict[str, Any]:
    return {
        "openinference.span.kind": "LLM",
        "session.id": session_id,
        "llm.model_name": "gpt-4o-mini",
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": f"{question} (turn {turn})",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": answer,
        "llm.token_count.prompt": 120,
        "llm.token_count.completion": 40,
    }


def seed_traces(database_url: str, project_id: str, spans: int) -> dict[str, str]:
    """``spans`` spans in traces of four, an evaluation (with its judge calls) of each trace's first LLM span.
    Returns a trace id, a session id and an evaluation id to open."""
    database = Database.from_url(database_url)
    rng = random.Random(11)
    with database.transaction() as session:
        evaluator = Evaluator(
            id=new_id("evr"),
            project_id=project_id,
            name="policy-adherence",
            version=1,
            kind="llm",
            options=["compliant", "non_compliant"],
            evaluation_system_prompt="You are a compliance auditor. Options: {evaluation_options}",
            evaluation_human_prompt="Customer message: {query}\nAgent response: {response}",
            reeval_system_prompt="You are a senior auditor. Options: {evaluation_options}",
            reeval_human_prompt="{query}\n{response}\n{memories}",
            ambiguity_threshold=0.6,
            reeval="ambiguous",
            created_by="bench",
        )
        session.add(evaluator)
        evaluator_id = evaluator.id
    traces = spans // SPANS_PER_TRACE
    start = datetime.now(timezone.utc) - timedelta(days=30)
    step = timedelta(days=30) / max(traces, 1)
    span_rows: list[dict[str, Any]] = []
    trace_rows: list[dict[str, Any]] = []
    evaluation_rows: list[dict[str, Any]] = []
    call_rows: list[dict[str, Any]] = []
    picked: dict[str, str] = {}

    def flush() -> None:
        with database.transaction() as session:
            fast_insert(session, Span.__table__, span_rows)
            fast_insert(session, Trace.__table__, trace_rows)
            fast_insert(session, Evaluation.__table__, evaluation_rows)
            fast_insert(session, JudgeCall.__table__, call_rows)
        for rows in (span_rows, trace_rows, evaluation_rows, call_rows):
            rows.clear()

    for t in range(traces):
        trace_id = f"{rng.getrandbits(128):032x}"
        session_id = f"session-{t // TRACES_PER_SESSION}"
        began = start + step * t
        error = t % 10 == 0
        durations = [rng.uniform(150, 900) * (4 if rng.random() < 0.05 else 1) for _ in range(3)]
        total = sum(durations) + 20
        root = f"{rng.getrandbits(64):016x}"
        rows = [
            {
                "id": new_id("spn"), "project_id": project_id, "run_id": None, "trace_id": trace_id,
                "span_id": root, "parent_span_id": None, "name": "agent", "kind": "CHAIN",
                "start_time": began, "end_time": began + timedelta(milliseconds=total), "duration_ms": total,
                "status_code": "ERROR" if error else "OK", "status_message": "timeout" if error else None,
                "session_id": session_id, "model": None, "prompt_tokens": None, "completion_tokens": None,
                "attributes": {"openinference.span.kind": "CHAIN", "session.id": session_id}, "events": [],
                "created_at": began,
            }
        ]  # fmt: skip
        offset = 10.0
        for turn, duration in enumerate(durations):
            span_start = began + timedelta(milliseconds=offset)
            rows.append(
                {
                    "id": new_id("spn"), "project_id": project_id, "run_id": None, "trace_id": trace_id,
                    "span_id": f"{rng.getrandbits(64):016x}", "parent_span_id": root, "name": "ChatCompletion",
                    "kind": "LLM", "start_time": span_start,
                    "end_time": span_start + timedelta(milliseconds=duration), "duration_ms": duration,
                    "status_code": "OK", "status_message": None, "session_id": session_id,
                    "model": "gpt-4o-mini", "prompt_tokens": 120, "completion_tokens": 40,
                    "attributes": _llm_attributes(
                        turn, "Can I get a higher credit limit?", "I can look into that for you.", session_id
                    ),
                    "events": [], "created_at": span_start,
                }
            )  # fmt: skip
            offset += duration
        span_rows.extend(rows)
        trace_rows.append(
            {
                "project_id": project_id, "trace_id": trace_id, "run_id": None, "session_id": session_id,
                "root_name": "agent", "start_time": began, "end_time": began + timedelta(milliseconds=total),
                "span_count": SPANS_PER_TRACE, "interaction_count": 3, "error_count": int(error),
            }
        )  # fmt: skip
        ambiguous = rng.random() < 0.3
        evaluation_id = new_id("evn")
        evaluation_rows.append(
            {
                "id": evaluation_id, "project_id": project_id, "run_id": None, "evaluator_id": evaluator_id,
                "evaluator_type": "policy-adherence", "evaluator_version": 1,
                "query": "Can I get a higher credit limit? (turn 0)", "response": "I can look into that for you.",
                "context": None, "trace_id": trace_id, "span_id": rows[1]["span_id"], "status": "completed",
                "classification": "ambiguous" if ambiguous else "compliant",
                "confidence": 0.3 if ambiguous else 0.9, "explanation": "Borderline." if ambiguous else "Fine.",
                "ambiguous": ambiguous, "reevaluated": ambiguous, "initial_classification": "ambiguous",
                "initial_confidence": 0.3, "initial_explanation": "Borderline.", "memory_control_ids": [],
                "review_id": None, "job_id": None, "model": "gpt-4o-mini", "prompt_tokens": 240,
                "completion_tokens": 60, "latency_ms": 420.0, "error": None, "created_at": began,
            }
        )  # fmt: skip
        call_rows.append(
            {
                "evaluation_id": evaluation_id, "step": "evaluation", "model": "gpt-4o-mini",
                "messages": [{"role": "system", "content": "You are a compliance auditor."},
                             {"role": "user", "content": "Customer message: Can I get a higher credit limit?"}],
                "answer": '{"classification": "ambiguous", "confidence": 0.3, "explanation": "Borderline."}',
                "created_at": began,
            }
        )  # fmt: skip
        if t == traces // 2:
            picked = {"trace": trace_id, "session": session_id, "evaluation": evaluation_id}
        if len(span_rows) >= 20_000:
            flush()
            print(f"\r  seeded {(t + 1) * SPANS_PER_TRACE:,} spans", end="", flush=True)
    flush()
    print()
    with database.engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
    database.dispose()
    return picked


def commit() -> str:
    found = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
    ).stdout.strip()
    return found or "unknown (not a git checkout)"


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        with casework_server(home) as (_url, _):
            pass  # first start: migrations, workspace default, admin key, the demo
        database_url = f"sqlite:///{home / 'casework.db'}"
        print(f"seeding {REVIEWS:,} reviews")
        project_id = seed(database_url, REVIEWS)
        print(f"seeding {SPANS:,} spans")
        picked = seed_traces(database_url, project_id, SPANS)
        with (
            casework_server(home) as (url, _),
            httpx.Client(base_url=url, timeout=60, headers={"accept": "text/html"}) as client,
        ):
            sign_in(client, database_url)
            queue = client.get(f"/projects/{project_id}/queue")
            review_path = queue.text.split('href="/reviews/', 1)[1].split('"', 1)[0]
            traces = client.get(f"/projects/{project_id}/traces")
            older = traces.text.split('href="?', 1)[1].split('"', 1)[0].replace("&amp;", "&")
            project = f"/projects/{project_id}"
            pages = {
                "projects (/)": "/",
                "queue": f"{project}/queue",
                "queue, filtered by evaluator": f"{project}/queue?evaluator=hallucination",
                "queue, searched": f"{project}/queue?q=capital",
                "review": f"/reviews/{review_path}",
                "controls": f"{project}/controls",
                "overview": f"{project}/overview",
                "traces": f"{project}/traces",
                "traces, next page": f"{project}/traces?{older}",
                "traces with errors": f"{project}/traces?errors=1",
                "traces slower than 3 s": f"{project}/traces?min_ms=3000",
                "trace": f"{project}/traces/{picked['trace']}",
                "session": f"{project}/sessions/{picked['session']}",
                "evaluations": f"{project}/evaluations",
                "evaluations, ambiguous": f"{project}/evaluations?ambiguous=yes",
                "evaluation": f"/evaluations/{picked['evaluation']}",
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
        table + f"\n\n{REVIEWS:,} reviews in one project, half pending; {SPANS:,} spans in "
        f"{SPANS // SPANS_PER_TRACE:,} traces and {SPANS // SPANS_PER_TRACE:,} evaluations in the same project; "
        f"{REQUESTS} requests per page, one at a time. Commit measured: {commit()}.",
    )


if __name__ == "__main__":
    main()
