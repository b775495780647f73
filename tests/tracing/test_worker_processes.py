"""`casework worker` processes killed mid-job lose nothing and do nothing twice (``kill -9``, real processes).

On PostgreSQL two workers are seen holding different jobs at the same moment, then one is killed; on SQLite (one
writer) the killed worker's jobs are taken over by the next worker. Either way: one evaluation and at most one review per (interaction, evaluator).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from casework.db import migrate
from casework.db.engine import Database
from casework.db.models import Evaluation, Job, Review
from casework.definitions import EvaluatorDefinition
from casework.services import auth, projects
from casework.services.evaluators import register_evaluator
from casework.services.traces import ingest_spans
from casework.services.workspaces import get_or_create_workspace
from casework.tracing.otlp import SpanRecord
from tests.judge_server import JudgeServer
from tests.support import POLICY_EVALUATOR, postgres_database

INTERACTIONS = 12


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'workers.db'}"
    else:
        with postgres_database() as url:
            yield url


def queue_interactions(database: Database) -> str:
    with database.transaction() as session:
        workspace, _ = get_or_create_workspace(session, name="workers")
        key = auth.create_key(session, workspace_id=workspace.id, role=auth.Role.admin, label="test")
        principal = auth.Principal(key.api_key.id, workspace.id, auth.Role.admin, "test")
        project, _ = projects.get_or_create_project(session, workspace_id=workspace.id, name="p")
        fields = {k: v for k, v in POLICY_EVALUATOR.items() if k != "project_id"}
        register_evaluator(
            session,
            principal=principal,
            project_id=project.id,
            definition=EvaluatorDefinition(**{**fields, "options": tuple(fields["options"])}),
        )
        records = [
            SpanRecord(
                trace_id=f"{i:032x}",
                span_id=f"{i:016x}",
                parent_span_id=None,
                name="llm",
                start_ns=1_700_000_000_000_000_000 + i,
                end_ns=1_700_000_000_100_000_000 + i,
                status_code="OK",
                status_message=None,
                attributes={
                    "openinference.span.kind": "LLM",
                    "input.value": f"Question {i} about guaranteed returns?",
                    "output.value": "It is a popular product.",
                },
                resource={"casework.project_id": project.id},
            )
            for i in range(1, INTERACTIONS + 1)
        ]
        assert ingest_spans(session, principal=principal, records=records).jobs == INTERACTIONS
        return project.id


def start_worker(url: str, judge: JudgeServer, home: Path, concurrency: int = 4) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CASEWORK_DATABASE_URL": url,
        "CASEWORK_HOME": str(home),
        "CASEWORK_JOB_LEASE_SECONDS": "2",
        "CASEWORK_WORKER_CONCURRENCY": str(concurrency),
        "CASEWORK_WORKER_POLL_SECONDS": "0.1",
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": f"{judge.base_url}/v1",
    }
    log = home / f"worker-{time.monotonic_ns()}.log"
    with log.open("wb") as output:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "casework", "worker"], env=env, stdout=output, stderr=subprocess.STDOUT
        )
    logs[process.pid] = log
    return process


logs: dict[int, Path] = {}


def output_of(process: subprocess.Popen[bytes]) -> str:
    return logs[process.pid].read_text()


def running_jobs_of(database: Database, process: subprocess.Popen[bytes]) -> list[str]:
    with database.transaction(write=False) as session:
        return list(
            session.execute(
                select(Job.id).where(Job.status == "running", Job.leased_by.endswith(f":{process.pid}"))
            ).scalars()
        )


def test_a_worker_killed_mid_job_loses_nothing_and_duplicates_nothing(
    fresh_url: str, judge_server: JudgeServer, tmp_path: Path
) -> None:
    database = Database.from_url(fresh_url)
    try:
        migrate.upgrade(database)
        queue_interactions(database)
        # Every job is mid-judge until the workers are where the test wants them (the judge holds its
        # answers): however slowly the processes start on a loaded machine, no job can finish before then.
        judge_server.held = True
        judge_server.delay_seconds = 0.2
        postgres = database.dialect == "postgresql"
        # Two at a time, so on PostgreSQL the first still has jobs waiting when the second has started.
        first = start_worker(fresh_url, judge_server, tmp_path, concurrency=2)
        second = None
        try:
            deadline = time.monotonic() + 120
            while not (taken := running_jobs_of(database, first)):
                assert time.monotonic() < deadline, "the first worker never claimed a job"
                assert first.poll() is None, output_of(first)
                time.sleep(0.05)
            if postgres:  # two live workers share the queue: SKIP LOCKED keeps their jobs apart
                second = start_worker(fresh_url, judge_server, tmp_path)
                deadline = time.monotonic() + 120
                while True:
                    taken, others = running_jobs_of(database, first), running_jobs_of(database, second)
                    if taken and others:
                        break
                    assert time.monotonic() < deadline, "the two workers never held jobs at the same time"
                    assert first.poll() is None, output_of(first)
                    assert second.poll() is None, output_of(second)
                    time.sleep(0.05)
                assert not set(taken) & set(others), "two workers held the same job"
            taken = running_jobs_of(database, first)  # what it holds as it dies
            first.send_signal(signal.SIGKILL)
            first.wait()
            judge_server.held = False
            if second is None:
                second = start_worker(fresh_url, judge_server, tmp_path)

            def unfinished() -> int:
                with database.transaction(write=False) as session:
                    return session.execute(
                        select(func.count()).where(Job.status.in_(("queued", "running")))
                    ).scalar_one()

            deadline = time.monotonic() + 90
            while unfinished():
                assert time.monotonic() < deadline, "jobs were left unfinished"
                assert second.poll() is None, output_of(second)
                time.sleep(0.1)
        finally:
            for process in (first, second):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    process.wait(timeout=30)
        assert taken, "the first worker held no job when it was killed"
        with database.transaction(write=False) as session:
            jobs = list(session.execute(select(Job)).scalars())
            assert {job.status for job in jobs} == {"done"}
            evaluations = list(session.execute(select(Evaluation)).scalars())
            assert len(evaluations) == INTERACTIONS
            assert len({(e.span_id, e.evaluator_type) for e in evaluations}) == INTERACTIONS
            reviews = list(session.execute(select(Review)).scalars())
            assert (
                len(reviews) == len({r.span_id for r in reviews}) == INTERACTIONS
            )  # all ambiguous, once each
            retaken = [job for job in jobs if job.id in taken]
            # The killed worker's jobs were finished by the other, after their leases ran out.
            assert all(job.attempts >= 2 and not job.leased_by.endswith(f":{first.pid}") for job in retaken)
    finally:
        database.dispose()
