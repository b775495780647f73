"""A `casework worker` killed (``kill -9``) in the middle of a webhook delivery loses no event: another worker
delivers it again, with the same ``webhook-id``, once the lease runs out. Real processes, both databases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from casework.db import migrate
from casework.db.engine import Database
from casework.db.models import Job
from casework.secrets import SecretBox, load_key
from casework.services import auth, projects
from casework.services.reviews import enqueue_review
from casework.services.webhooks import create_endpoint
from casework.services.workspaces import get_or_create_workspace
from tests.support import LiveServer, postgres_database, wait_for
from tests.webhook_receiver import WebhookReceiver

REVIEWS = 6


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hooks.db'}"
    else:
        with postgres_database() as url:
            yield url


def start_worker(url: str, home: Path) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")},
        "CASEWORK_DATABASE_URL": url,
        "CASEWORK_HOME": str(home),  # shared: the same secret key
        "CASEWORK_JOB_LEASE_SECONDS": "2",
        "CASEWORK_WORKER_POLL_SECONDS": "0.1",
        "CASEWORK_WEBHOOKS_ALLOW_PRIVATE": "true",
        "CASEWORK_WEBHOOK_TIMEOUT_SECONDS": "30",
        "CASEWORK_WEBHOOK_RETRY_SCHEDULE": "0.5,1,2",
    }
    log = home / f"worker-{len(list(home.glob('worker-*.log')))}.log"
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "casework", "worker"], env=env, stdout=output, stderr=subprocess.STDOUT
        )


def test_a_worker_killed_mid_delivery_loses_no_event(fresh_url: str, tmp_path: Path) -> None:
    receiver = WebhookReceiver(slow_seconds=20)
    database = Database.from_url(fresh_url)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        migrate.upgrade(database)
        box = SecretBox(load_key(None, tmp_path))
        receiver.plan = ["slow"]  # the first delivery hangs: its worker is killed while it waits
        with LiveServer(receiver.app) as server:
            with database.transaction() as session:
                workspace, _ = get_or_create_workspace(session, name="hooks")
                principal = auth.Principal("k", workspace.id, auth.Role.admin, "test")
                project, _ = projects.get_or_create_project(session, workspace_id=workspace.id, name="p")
                _, receiver.secret = create_endpoint(
                    session,
                    principal=principal,
                    box=box,
                    url=f"{server.base_url}/hook",
                    events=["review.created"],
                    allow_private=True,
                )
                for i in range(REVIEWS):
                    enqueue_review(
                        session,
                        principal=principal,
                        project_id=project.id,
                        evaluator_type="policy",
                        query=f"question {i}",
                        response="answer",
                        options=["ok", "not_ok"],
                    )
            first = start_worker(fresh_url, tmp_path)
            workers.append(first)
            wait_for(lambda: receiver.received, timeout=60, message="the first worker sent nothing")
            if database.dialect == "postgresql":  # two at once; SKIP LOCKED keeps their deliveries apart
                workers.append(start_worker(fresh_url, tmp_path))
            first.send_signal(signal.SIGKILL)
            first.wait()
            if database.dialect == "sqlite":
                workers.append(start_worker(fresh_url, tmp_path))

            def all_delivered() -> bool:
                return len({r.id for r in receiver.verified() if r.answered == 200}) == REVIEWS

            wait_for(all_delivered, timeout=90, message="not every event was delivered")
            receiver.release()  # the killed worker's request: its server need not wait out the 20 s
        hung = receiver.received[0]
        again = [r for r in receiver.received if r.id == hung.id]
        assert len(again) >= 2 and all(r.body == hung.body for r in again)
        assert all(r.verified for r in receiver.received)

        def jobs() -> list[Job]:
            with database.transaction(write=False) as session:
                return list(session.execute(select(Job).where(Job.kind == "webhook.deliver")).scalars())

        try:
            wait_for(lambda: {job.status for job in jobs()} == {"done"}, timeout=30)
        except AssertionError:
            logs = "\n".join(log.read_text() for log in tmp_path.glob("worker-*.log"))
            raise AssertionError(
                f"{[(j.status, j.attempts, j.last_error) for j in jobs()]}\n{logs}"
            ) from None
    finally:
        for process in workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
        database.dispose()
