"""OTLP ingestion end to end, against Arize Phoenix on the same spans; and the worker's evaluations/s.

Targets (2-core machine): 100,000 OpenInference spans (about 1 KB of text each, traces of 3 spans: chain,
retriever, LLM) sent with the stock OTLP/HTTP exporter, all queryable through the API, at 5,000 spans/s or more
on SQLite; at least 10 times Phoenix's rate on the same spans. Phoenix is installed by this benchmark into its
own virtual environment (bench/.phoenix-venv) and served on 127.0.0.1.

Time runs from the first export to the moment the last trace of every sender answers with all its spans
through the API (Casework: GET /api/v1/traces/{id}; Phoenix: GET /v1/projects/{name}/spans/otlpv1), and the
total is then checked in each server's database.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.results import casework_server, free_port, halueval_rows, measures_table, write_section

SPANS = int(os.environ.get("CASEWORK_BENCH_INGEST_SPANS", "100000")) // 3 * 3  # whole traces of 3
SENDERS = 2
BATCH = 512  # the BatchSpanProcessor's default export size
PROJECT = "ingest-bench"
EVALUATIONS = 2_000
JUDGE_DELAY = 0.2
WORKER_CONCURRENCY = int(os.environ.get("CASEWORK_BENCH_WORKER_CONCURRENCY", "32"))
PHOENIX_VENV = Path(__file__).resolve().parent / ".phoenix-venv"


def make_spans(first_trace: int, traces: int, project: str) -> list[Any]:
    """Finished spans, made with the OpenTelemetry SDK, as an instrumented app would make them."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    rows = halueval_rows()
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"openinference.project.name": project}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    for n in range(first_trace, first_trace + traces):
        row = rows[n % len(rows)]
        query = (row["user_query"] + " ")[:300]
        answer = (row["chatgpt_response"] + " ") * (1 + 700 // max(len(row["chatgpt_response"]), 1))
        answer = answer[:700]
        with tracer.start_as_current_span(
            "agent",
            attributes={"openinference.span.kind": "CHAIN", "input.value": query, "output.value": answer},
        ):
            with tracer.start_as_current_span(
                "retrieve",
                attributes={
                    "openinference.span.kind": "RETRIEVER",
                    "input.value": query,
                    "retrieval.documents.0.document.content": answer,
                },
            ):
                pass
            with tracer.start_as_current_span(
                "ChatCompletion",
                attributes={
                    "openinference.span.kind": "LLM",
                    "llm.model_name": "gpt-4o-mini",
                    "llm.input_messages.0.message.role": "user",
                    "llm.input_messages.0.message.content": query,
                    "llm.output_messages.0.message.role": "assistant",
                    "llm.output_messages.0.message.content": answer,
                    "llm.token_count.prompt": 80,
                    "llm.token_count.completion": 160,
                },
            ):
                pass
    return list(memory.get_finished_spans())


def send(args: tuple[str, dict[str, str], int, int, float, str]) -> tuple[str, int, float]:
    """One sender process: make its spans, wait for the common start, export them in batches of 512.

    The stock exporter retries a refused batch (503, 429) six times with backoff, then gives up; here a batch
    it gave up on is handed to it again (and counted), so a slow server is measured at its own pace instead
    of losing spans.
    """
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    endpoint, headers, first_trace, traces, start_at, project = args
    spans = make_spans(first_trace, traces, project)
    exporter = OTLPSpanExporter(endpoint=endpoint, headers=headers, timeout=120)
    failures = 0
    while time.time() < start_at:
        time.sleep(0.001)
    for i in range(0, len(spans), BATCH):
        while exporter.export(spans[i : i + BATCH]) is not SpanExportResult.SUCCESS:
            failures += 1
    exporter.shutdown()
    last = spans[-1].context.trace_id
    return format(last, "032x"), failures, time.time()


def run_senders(
    endpoint: str, headers: dict[str, str], project: str
) -> tuple[list[tuple[str, int, float]], float]:
    """Every sender's (last trace id, failed exports, end time), and the common start time."""
    traces = SPANS // 3
    share = traces // SENDERS
    start_at = time.time() + 15  # time for each sender to make its spans first
    jobs = [
        (endpoint, headers, k * share, share if k < SENDERS - 1 else traces - k * share, start_at, project)
        for k in range(SENDERS)
    ]
    with multiprocessing.get_context("spawn").Pool(SENDERS) as pool:
        return pool.map(send, jobs), start_at


def wait_until(check: Any, timeout: float = 3600, interval: float = 0.02) -> float:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return time.time()
        time.sleep(interval)
    raise RuntimeError("spans never became queryable")


def measure_casework(home: Path) -> dict[str, Any]:
    with casework_server(home) as (url, _process):
        key = (home / "admin-key").read_text().strip()
        headers = {"x-api-key": key}
        results, started = run_senders(f"{url}/v1/traces", headers, PROJECT)
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:

            def all_there() -> bool:
                for trace_id, _, _ in results:
                    reply = client.get(f"/api/v1/traces/{trace_id}")
                    if reply.status_code != 200 or reply.json()["span_count"] < 3:
                        return False
                return True

            finished = wait_until(all_there)
    with sqlite3.connect(home / "casework.db") as db:
        stored = db.execute("SELECT COUNT(*) FROM spans").fetchone()[0]
    return {
        "seconds": finished - started,
        "stored": stored,
        "failures": sum(r[1] for r in results),
        "sent_seconds": max(r[2] for r in results) - started,
    }


def phoenix_python() -> Path:
    python = PHOENIX_VENV / "bin" / "python"
    if not python.exists():
        print("installing arize-phoenix into bench/.phoenix-venv (once) ...", flush=True)
        if PHOENIX_VENV.is_symlink() or PHOENIX_VENV.is_file():  # a dangling link or a leftover
            PHOENIX_VENV.unlink()
        shutil.rmtree(PHOENIX_VENV, ignore_errors=True)  # a half-made venv
        subprocess.run([sys.executable, "-m", "venv", str(PHOENIX_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "arize-phoenix"], check=True)
    return python


def measure_phoenix() -> dict[str, Any]:
    python = phoenix_python()
    version = subprocess.run(
        [str(python), "-c", "import phoenix; print(phoenix.__version__)"], capture_output=True, text=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as work:
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_"))},
            "PHOENIX_WORKING_DIR": work,
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(port),
            "PHOENIX_GRPC_PORT": str(free_port()),
            "PHOENIX_TELEMETRY_ENABLED": "false",
        }
        log = open(Path(work) / "phoenix.log", "wb")  # noqa: SIM115  (closed below)
        process = subprocess.Popen(
            [str(PHOENIX_VENV / "bin" / "phoenix"), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: _answers(f"{url}/healthz"), timeout=180)
            results, started = run_senders(f"{url}/v1/traces", {}, PROJECT)
            with httpx.Client(base_url=url, timeout=30) as client:

                def all_there() -> bool:
                    for trace_id, _, _ in results:
                        reply = client.get(
                            f"/v1/projects/{PROJECT}/spans/otlpv1", params={"trace_id": trace_id, "limit": 10}
                        )
                        if reply.status_code != 200 or len(reply.json()["data"]) < 3:
                            return False
                    return True

                # Phoenix replies before it stores, and stores in its own order: wait for every span too, or
                # until nothing more arrives for a minute (it may drop spans under load).
                last_count, last_change = -1, time.time()
                while True:
                    stored = _count_spans(Path(work) / "phoenix.db")
                    if stored != last_count:
                        last_count, last_change = stored, time.time()
                    if stored >= SPANS and all_there():
                        break
                    if time.time() - last_change > 60:
                        break
                    time.sleep(0.5)
                finished = last_change
        finally:
            process.terminate()
            process.wait(timeout=60)
            log.close()
    return {
        "seconds": finished - started,
        "stored": stored,
        "failures": sum(r[1] for r in results),
        "sent_seconds": max(r[2] for r in results) - started,
        "version": version,
    }


def _count_spans(path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
            return int(db.execute("SELECT COUNT(*) FROM spans").fetchone()[0])
    except sqlite3.Error:
        return 0


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def measure_worker(home: Path) -> dict[str, Any]:
    """Evaluations/s of the in-process worker: LLM interactions whose judge answers in 200 ms."""
    judge_port = free_port()
    judge = subprocess.Popen([sys.executable, "-m", "bench.judge", str(judge_port), str(JUDGE_DELAY)])
    saved = {k: os.environ.get(k) for k in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    os.environ.update({"OPENAI_API_KEY": "bench", "OPENAI_BASE_URL": f"http://127.0.0.1:{judge_port}/v1"})
    try:
        settings = {"CASEWORK_WORKER_CONCURRENCY": str(WORKER_CONCURRENCY)}
        with casework_server(home, settings=settings) as (url, _process):
            key = (home / "admin-key").read_text().strip()
            with httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=60) as client:
                project = client.post("/api/v1/projects", json={"name": "worker-bench"}).json()
                run = client.post(
                    f"/api/v1/projects/{project['id']}/runs",
                    json={"name": "r", "evaluators": ["correctness"]},
                ).json()
                spans = []
                for i in range(EVALUATIONS):
                    spans.append(
                        {
                            "traceId": f"{i + 1:032x}",
                            "spanId": f"{i + 1:016x}",
                            "name": "llm",
                            "startTimeUnixNano": str(1_700_000_000_000_000_000 + i),
                            "endTimeUnixNano": str(1_700_000_000_100_000_000 + i),
                            "attributes": [
                                {"key": "openinference.span.kind", "value": {"stringValue": "LLM"}},
                                {"key": "input.value", "value": {"stringValue": f"Question {i}?"}},
                                {"key": "output.value", "value": {"stringValue": f"Answer {i}."}},
                            ],
                        }
                    )
                resource = {
                    "attributes": [
                        {"key": "casework.project_id", "value": {"stringValue": project["id"]}},
                        {"key": "casework.run_id", "value": {"stringValue": run["id"]}},
                    ]
                }
                started = time.time()
                for i in range(0, len(spans), BATCH):
                    body = {
                        "resourceSpans": [
                            {"resource": resource, "scopeSpans": [{"spans": spans[i : i + BATCH]}]}
                        ]
                    }
                    client.post(
                        "/v1/traces", content=json.dumps(body), headers={"content-type": "application/json"}
                    )

                def done() -> bool:
                    counts = client.get("/api/v1/jobs/counts", params={"project_id": project["id"]}).json()
                    return bool(counts["done"] + counts["failed"] == EVALUATIONS)

                # Every 0.2 s: counting 2,000 jobs 50 times a second took a tenth of the server's CPU.
                finished = wait_until(done, timeout=600, interval=0.2)
                failed = client.get("/api/v1/jobs/counts", params={"project_id": project["id"]}).json()[
                    "failed"
                ]
    finally:
        judge.terminate()
        judge.wait()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return {"seconds": finished - started, "failed": failed}


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        ours = measure_casework(Path(folder) / "casework")
        worker = measure_worker(Path(folder) / "worker")
    ours_rate = SPANS / ours["seconds"]
    print(f"casework: {SPANS} spans in {ours['seconds']:.1f} s = {ours_rate:,.0f} spans/s", flush=True)
    theirs = measure_phoenix()
    theirs_rate = theirs["stored"] / theirs["seconds"]
    print(f"phoenix: {SPANS} spans in {theirs['seconds']:.1f} s = {theirs_rate:,.0f} spans/s", flush=True)
    ratio = ours_rate / theirs_rate
    evaluations_rate = EVALUATIONS / worker["seconds"]
    rows = [
        (
            f"{SPANS:,} OpenInference spans (3 per trace, ~1 KB text each), stock OTLP/HTTP exporter, "
            f"{SENDERS} sender processes, until all queryable, SQLite",
            f"{ours_rate:,.0f} spans/s ({ours['seconds']:.1f} s; exporters done at {ours['sent_seconds']:.1f} s; "
            f"{ours['stored']:,} stored; {ours['failures']} exports given up and sent again)",
            ">= 5,000 spans/s",
        ),
        (
            f"the same spans into Arize Phoenix {theirs['version']} (phoenix serve, SQLite)",
            f"{theirs_rate:,.0f} spans/s ({theirs['seconds']:.1f} s; {theirs['stored']:,} of {SPANS:,} stored; "
            f"exporters done at {theirs['sent_seconds']:.1f} s; {theirs['failures']} exports given up and sent again)",
            "",
        ),
        ("Casework / Phoenix", f"{ratio:.1f}x", ">= 10x"),
        (
            f"worker evaluations/s: {EVALUATIONS:,} traced interactions, built-in correctness evaluator, judge "
            f"answering in {JUDGE_DELAY * 1000:.0f} ms, in-process worker ({WORKER_CONCURRENCY} at a time)",
            f"{evaluations_rate:,.0f} evaluations/s ({worker['failed']} failed)",
            "",
        ),
    ]
    write_section("ingest", measures_table(rows))
    print(measures_table(rows))


if __name__ == "__main__":
    main()
