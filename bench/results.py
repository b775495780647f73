"""Shared helpers: percentiles, a server process to measure, and the RESULTS.md writer."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import httpx

RESULTS = Path(__file__).parent / "RESULTS.md"
HEADER = (
    "# Benchmark results\n\n"
    "Written by `make bench` (each benchmark replaces its own section). Figures depend on the machine: the\n"
    "targets are for the project's 2-core reference machine.\n"
)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def milliseconds(values: list[float], fraction: float) -> str:
    """A percentile of latencies in seconds, as milliseconds."""
    return f"{percentile(values, fraction) * 1000:.1f} ms"


def measures_table(rows: list[tuple[str, str, str]]) -> str:
    """The markdown table every benchmark writes: measure, result, target."""
    return "| measure | result | target |\n|---|---|---|\n" + "\n".join(
        f"| {a} | {b} | {c} |" for a, b, c in rows
    )


def machine() -> str:
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


# The commit a benchmark started on (bench/__main__.py notes it): a run takes minutes, and HEAD may move
# meanwhile (a merge during one was recorded as the code it measured).
_STARTED: dict[str, str] = {}


def note_start() -> None:
    _STARTED["commit"] = _current_commit()


def measured_commit() -> str:
    """The commit whose code was measured: its short hash, and whether the tree had changes on top of it."""
    return _STARTED.get("commit") or _current_commit()


def _current_commit() -> str:
    root = RESULTS.parent.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = [
        line for line in git("status", "--porcelain").splitlines() if not line.endswith("bench/RESULTS.md")
    ]
    return f"commit {commit}" + (" with uncommitted changes" if changed else "")


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section of RESULTS.md that belongs to benchmark ``name``, stamped with the time,
    the commit measured and the machine."""
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"<!-- {name} -->\n## {name}\n\n_{stamp}; {measured_commit()}; {machine()}_\n\n{body.strip()}\n"
        f"<!-- /{name} -->\n"
    )
    pattern = re.compile(rf"<!-- {re.escape(name)} -->.*?<!-- /{re.escape(name)} -->\n", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    RESULTS.write_text(text)
    print(f"wrote section {name!r} of {RESULTS}")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def casework_server(
    home: Path,
    *,
    database_url: str | None = None,
    port: int | None = None,
    workers: int = 1,
    settings: dict[str, str] | None = None,
    separate_worker: bool = False,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run ``casework serve`` as a user would; yield its URL and process once /readyz answers. With
    ``separate_worker``, the background work runs in a ``casework worker`` process of its own, as the README
    says to run it at scale, instead of in the server's."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    env.update(
        {
            "CASEWORK_HOME": str(home),
            "CASEWORK_PORT": str(port),
            "CASEWORK_LOG_LEVEL": "warning",
            "CASEWORK_WORKERS": str(workers),
        }
    )
    if database_url:
        env["CASEWORK_DATABASE_URL"] = database_url
    env.update(settings or {})
    if separate_worker:
        env["CASEWORK_EMBEDDED_WORKER"] = "false"
    process = subprocess.Popen(
        [sys.executable, "-m", "casework", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    background = None
    try:
        wait_ready(url, process)  # migrated: the worker may start
        if separate_worker:
            background = subprocess.Popen(
                [sys.executable, "-m", "casework", "worker"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        yield url, process
    finally:
        for running in (background, process):
            if running is not None:
                running.terminate()
                running.wait(timeout=30)


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> float:
    """Seconds until ``url``/readyz answers 200."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(0.005)
    raise RuntimeError("server did not become ready")


def rss_megabytes(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process and its child processes have used so far, from /proc (Linux)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    pids = [pid] + ([int(p) for p in children.read_text().split()] if children.exists() else [])
    total = 0
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # a child that has just exited
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


POSTGRES_ADMIN_URL = os.environ.get(
    "CASEWORK_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one benchmark run, dropped afterwards."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+psycopg")
    name = f"casework_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def halueval_rows() -> list[dict[str, str]]:
    """HaluEval general queries and ChatGPT answers with their human label, read from ../shared/data."""
    import json

    path = SHARED_DATA / "halueval-general" / "general_data.jsonl"
    if not path.exists():
        raise SystemExit(
            f"{path} is missing: the benchmarks read the public data in shared/data beside the repository"
        )
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
