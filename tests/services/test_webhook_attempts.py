"""Deliveries sent at once are read and recorded in one batch (casework.services.webhooks.outgoing and
record_attempts): each still gets its own outcome, a lease lost to another worker is not recorded, a success
ends its endpoint's run of failures, and the next delivery about the same object is let go (both databases)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from casework.db import outbox
from casework.db.engine import Database
from casework.db.models import Event, Job, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from casework.db.types import utcnow
from casework.events import EventType
from casework.secrets import SecretBox
from casework.services import auth, events, jobs
from casework.services import webhooks as service
from casework.services.workspaces import get_or_create_workspace

pytestmark = pytest.mark.storage

OK = service.AttemptResult(204, 3.0, "", None)
BROKEN = service.AttemptResult(500, 3.0, "oops", "the receiver answered 500")


def claim(session: Session, worker: str) -> list[jobs.ClaimedJob]:
    return jobs.claim_jobs(
        session, worker=worker, kinds=[service.DELIVER], limit=100, lease_seconds=60, max_attempts={}
    )


def test_a_batch_of_attempts_settles_each_delivery_on_its_own(database: Database) -> None:
    box = SecretBox(Fernet.generate_key())
    with database.transaction() as session:
        workspace, _ = get_or_create_workspace(session, name="batched")
        principal = auth.Principal("key_test", workspace.id, auth.Role.admin, "test")
        endpoint, secret = service.create_endpoint(
            session,
            principal=principal,
            box=box,
            url="http://127.0.0.1:9/hook",
            events=["*"],
            allow_private=True,
        )
        endpoint.failed_in_a_row = 2  # a run of failures the first success ends
        for review in ("rev_a", "rev_a", "rev_b", "rev_c", "rev_d"):  # rev_a's second waits for its first
            events.emit(
                session,
                EventType.review_claimed,
                workspace_id=workspace.id,
                project_id=None,
                actor="test",
                object_type="review",
                object_id=review,
                data={"id": review},
            )
        endpoint_id = endpoint.id
    with database.transaction() as session:
        outbox.sequence(session)
    with database.transaction() as session:
        logged = list(
            session.execute(
                select(Event).where(Event.type == EventType.review_claimed.value).order_by(Event.position)
            ).scalars()
        )
        assert service.create_deliveries(session, logged) == 5
    with database.transaction() as session:
        claimed = {c.payload["delivery_id"]: c for c in claim(session, "here")}
    with database.transaction(write=False) as session:
        deliveries = {d.id: d for d in session.execute(select(WebhookDelivery)).scalars()}
        keys = {d.id: d.ordering_key for d in deliveries.values()}
        messages = service.outgoing(session, delivery_ids=[*claimed, "dlv_gone"], box=box)
    assert len(claimed) == 4 and messages["dlv_gone"] is None
    assert all(m is not None and m.secrets == [secret] for d, m in messages.items() if d != "dlv_gone")
    by_review = {keys[d]: d for d in claimed}
    # rev_c's job was taken over by another worker (its lease ran out here): this one's result is not kept.
    with database.transaction() as session:
        session.execute(
            update(Job).where(Job.id == claimed[by_review["rev_c"]].id).values(lease_token="someone-else")
        )
    attempts = [
        service.Attempt(claimed[by_review["rev_a"]], by_review["rev_a"], OK, False),
        service.Attempt(claimed[by_review["rev_b"]], by_review["rev_b"], BROKEN, False),
        service.Attempt(claimed[by_review["rev_c"]], by_review["rev_c"], OK, False),
        service.Attempt(claimed[by_review["rev_d"]], by_review["rev_d"], OK, False),
    ]
    with database.transaction() as session:
        outcomes = service.record_attempts(session, attempts=attempts, disable_after=5)
    assert outcomes == ["succeeded", "retry", "lost", "succeeded"]
    with database.transaction(write=False) as session:
        after = {d.id: d for d in session.execute(select(WebhookDelivery)).scalars()}
        kept = session.execute(select(WebhookAttempt.delivery_id, WebhookAttempt.status_code)).all()
        job_status = {c.payload["delivery_id"]: session.get_one(Job, c.id).status for c in claimed.values()}
        assert session.get_one(WebhookEndpoint, endpoint_id).failed_in_a_row == 0
        waiting_for_a = [
            d for d in after.values() if d.ordering_key == "rev_a" and d.id != by_review["rev_a"]
        ]
        next_jobs = session.execute(select(Job.payload).where(Job.status == "queued")).scalars().all()
    assert after[by_review["rev_a"]].status == "succeeded" and after[by_review["rev_a"]].attempts == 1
    assert (
        after[by_review["rev_d"]].status == "succeeded" and after[by_review["rev_d"]].last_status_code == 204
    )
    assert after[by_review["rev_c"]].status == "pending" and after[by_review["rev_c"]].attempts == 0
    assert after[by_review["rev_b"]].status == "pending" and after[by_review["rev_b"]].attempts == 1
    assert sorted(kept) == sorted(
        [(by_review["rev_a"], 204), (by_review["rev_b"], 500), (by_review["rev_d"], 204)]
    )
    assert job_status[by_review["rev_a"]] == "done" and job_status[by_review["rev_c"]] == "running"
    # rev_a's second event goes now, and only it: its job is queued.
    assert [d.status for d in waiting_for_a] == ["pending"]
    assert {"delivery_id": waiting_for_a[0].id} in next_jobs
    with database.transaction() as session:  # out of reach of a live server's worker in this test session
        session.execute(update(Job).values(available_at=utcnow() + timedelta(days=1)))
