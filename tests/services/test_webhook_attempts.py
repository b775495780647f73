"""An endpoint's sender (casework.services.webhooks.due and settle): one job per endpoint reads its due
deliveries in log order, at most one per object, and records a batch in one transaction. Each delivery gets
its own outcome; a failure waits for its retry's time without holding up the others; the job ends, waits or
goes on as the deliveries left say; a lease lost to another worker records nothing; a new delivery brings a
waiting sender forward (both databases, each of this module's own: the test session's live server has a
worker on the shared one, which would send these tests' deliveries itself)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from casework.db import migrate, outbox
from casework.db.engine import Database
from casework.db.models import Event, Job, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from casework.db.types import utcnow
from casework.errors import ValidationFailed
from casework.events import EventType
from casework.secrets import SecretBox
from casework.services import auth, events, jobs
from casework.services import webhooks as service
from casework.services.workspaces import get_or_create_workspace
from tests.support import postgres_database, wait_for, wipe
from tests.worker.test_loop import run_maintenance

pytestmark = pytest.mark.storage

OK = service.AttemptResult(204, 3.0, "", None)
BROKEN = service.AttemptResult(500, 3.0, "oops", "the receiver answered 500")
GONE = service.AttemptResult(410, 3.0, "", "the receiver answered 410")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def private(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    def migrated(url: str) -> Iterator[Database]:
        database = Database.from_url(url)
        migrate.upgrade(database)
        yield database
        database.dispose()

    if request.param == "sqlite":
        yield from migrated(f"sqlite:///{Path(tmp_path_factory.mktemp('senders')) / 'senders.db'}")
    else:
        with postgres_database() as url:
            yield from migrated(url)


@pytest.fixture
def database(private: Database) -> Iterator[Database]:
    yield private
    wipe(private)


def emit(session: Session, workspace_id: str, reviews: list[str]) -> None:
    for review in reviews:
        events.emit(
            session,
            EventType.review_claimed,
            workspace_id=workspace_id,
            project_id=None,
            actor="test",
            object_type="review",
            object_id=review,
            data={"id": review},
        )


def deliver_new_events(database: Database) -> None:
    with database.transaction() as session:
        outbox.sequence(session)
    with database.transaction() as session:
        logged = session.execute(select(Event).order_by(Event.position)).scalars()
        service.create_deliveries(session, [e for e in logged if e.type == EventType.review_claimed.value])


def claim(database: Database, worker: str = "here") -> jobs.ClaimedJob:
    with database.transaction() as session:
        claimed = jobs.claim_jobs(
            session, worker=worker, kinds=[service.DELIVER], limit=100, lease_seconds=60, max_attempts={}
        )
    assert len(claimed) == 1  # one sender for the endpoint, whatever its deliveries
    return claimed[0]


def settle(database: Database, job: jobs.ClaimedJob, endpoint_id: str, sent: list, **options: object) -> str:
    with database.transaction() as session:
        return service.settle(
            session,
            claimed=job,
            endpoint_id=endpoint_id,
            sent=sent,
            retry_delay=lambda attempt: 60.0 * attempt,
            max_attempts=3,
            disable_after=2,
            **options,  # type: ignore[arg-type]
        )


def due(database: Database, endpoint_id: str, box: SecretBox) -> list[service.Outgoing]:
    with database.transaction(write=False) as session:
        return service.due(session, endpoint_id=endpoint_id, box=box)


def deliveries(database: Database) -> dict[str, WebhookDelivery]:
    with database.transaction(write=False) as session:
        return {d.id: d for d in session.execute(select(WebhookDelivery)).scalars()}


def job_row(database: Database, job_id: str) -> Job:
    with database.transaction(write=False) as session:
        return session.get_one(Job, job_id)


@pytest.fixture
def setup(database: Database) -> tuple[SecretBox, str, str, str]:
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
        endpoint.failed_in_a_row = 1  # a run of failures the first success ends
        return box, workspace.id, endpoint.id, secret


def test_a_sender_sends_each_object_in_order_and_retries_a_failure_later(
    database: Database, setup: tuple[SecretBox, str, str, str]
) -> None:
    box, workspace_id, endpoint_id, secret = setup
    with database.transaction() as session:
        emit(
            session, workspace_id, ["rev_a", "rev_a", "rev_b", "rev_c"]
        )  # rev_a's second waits for its first
    deliver_new_events(database)
    job = claim(database)
    assert job.payload == {"endpoint_id": endpoint_id}
    first = due(database, endpoint_id, box)
    rows = deliveries(database)
    key = {d: rows[d].ordering_key for d in rows}
    assert [key[m.delivery_id] for m in first] == ["rev_a", "rev_b", "rev_c"]
    assert all(m.secrets == [secret] for m in first)
    by_review = {key[m.delivery_id]: m.delivery_id for m in first}

    sent = [(by_review["rev_a"], OK), (by_review["rev_b"], BROKEN), (by_review["rev_c"], OK)]
    assert settle(database, job, endpoint_id, sent) == "more"  # rev_a's second is due now
    rows = deliveries(database)
    second_a = next(d for d in rows.values() if d.ordering_key == "rev_a" and d.id != by_review["rev_a"])
    assert rows[by_review["rev_a"]].status == "succeeded" and rows[by_review["rev_c"]].status == "succeeded"
    failed = rows[by_review["rev_b"]]
    assert failed.status == "pending" and failed.attempts == 1 and failed.next_attempt_at is not None
    assert failed.next_attempt_at > utcnow() + timedelta(seconds=50)  # retry_delay(1) = 60 s
    assert second_a.status == "pending"
    with database.transaction(write=False) as session:
        assert session.get_one(WebhookEndpoint, endpoint_id).failed_in_a_row == 0
        kept = sorted(session.execute(select(WebhookAttempt.delivery_id, WebhookAttempt.status_code)).all())
    assert kept == sorted([(by_review["rev_a"], 204), (by_review["rev_b"], 500), (by_review["rev_c"], 204)])

    # The failure does not hold the others up: only rev_a's second is due.
    assert [m.delivery_id for m in due(database, endpoint_id, box)] == [second_a.id]
    assert settle(database, job, endpoint_id, [(second_a.id, OK)]) == "later"
    waiting = job_row(database, job.id)
    assert waiting.status == "queued" and waiting.lease_token is None
    assert abs((waiting.available_at - failed.next_attempt_at).total_seconds()) < 1  # at the retry's time

    # A new event brings the waiting sender forward: one job still, due now.
    with database.transaction() as session:
        emit(session, workspace_id, ["rev_d"])
    deliver_new_events(database)
    with database.transaction(write=False) as session:
        senders = session.execute(select(Job).where(Job.kind == service.DELIVER)).scalars().all()
    assert [s.id for s in senders] == [job.id] and senders[0].available_at <= utcnow()
    job = claim(database)
    (message,) = due(database, endpoint_id, box)
    assert deliveries(database)[message.delivery_id].ordering_key == "rev_d"
    assert settle(database, job, endpoint_id, [(message.delivery_id, OK)]) == "later"

    # When rev_b's time comes, its last attempts fail: it fails for good, and the sender is over.
    for outcome in ("later", "done"):  # attempts 2 and 3 of 3
        with database.transaction() as session:
            session.execute(update(WebhookDelivery).values(next_attempt_at=None))
            session.execute(update(Job).where(Job.id == job.id).values(available_at=utcnow()))
        job = claim(database)
        assert settle(database, job, endpoint_id, [(by_review["rev_b"], BROKEN)]) == outcome
    rows = deliveries(database)
    assert rows[by_review["rev_b"]].status == "failed" and rows[by_review["rev_b"]].attempts == 3
    assert job_row(database, job.id).status == "done"
    with database.transaction(write=False) as session:
        endpoint = session.get_one(WebhookEndpoint, endpoint_id)
        assert endpoint.sender_job_id is None and endpoint.failed_in_a_row == 1 and endpoint.enabled


def test_a_lost_lease_records_nothing_and_410_fails_what_is_left(
    database: Database, setup: tuple[SecretBox, str, str, str]
) -> None:
    box, workspace_id, endpoint_id, _ = setup
    with database.transaction() as session:
        emit(session, workspace_id, ["rev_a", "rev_a", "rev_b"])
    deliver_new_events(database)
    job = claim(database)
    first, second = due(database, endpoint_id, box)
    # The lease ran out and another worker holds the job: this worker's results are not kept.
    with database.transaction() as session:
        session.execute(update(Job).where(Job.id == job.id).values(lease_token="someone-else"))
    assert settle(database, job, endpoint_id, [(first.delivery_id, OK)]) == "lost"
    assert {d.status for d in deliveries(database).values()} == {"pending", "waiting"}
    with database.transaction(write=False) as session:
        assert session.execute(select(WebhookAttempt)).first() is None
    with database.transaction() as session:
        session.execute(update(Job).where(Job.id == job.id).values(lease_token=job.token))
    # 410 Gone: the endpoint is disabled, and everything it had pending or waiting fails unsent.
    assert settle(database, job, endpoint_id, [(first.delivery_id, GONE)]) == "done"
    rows = deliveries(database)
    assert {d.status for d in rows.values()} == {"failed"}
    unsent = [d for d in rows.values() if d.id != first.delivery_id]
    assert len(unsent) == 2 and all(
        "not sent: the endpoint is disabled" in (d.last_error or "") for d in unsent
    )
    with database.transaction(write=False) as session:
        endpoint = session.get_one(WebhookEndpoint, endpoint_id)
        assert not endpoint.enabled and endpoint.sender_job_id is None
        assert session.execute(select(Event).where(Event.type == EventType.webhook_disabled.value)).first()
    assert second.delivery_id in rows


def test_a_sender_that_always_has_more_gives_its_slot_up(
    database: Database, setup: tuple[SecretBox, str, str, str]
) -> None:
    box, workspace_id, endpoint_id, _ = setup
    with database.transaction() as session:
        emit(session, workspace_id, ["rev_a", "rev_b"])
    deliver_new_events(database)
    job = claim(database)
    first, _ = due(database, endpoint_id, box)
    assert settle(database, job, endpoint_id, [(first.delivery_id, OK)], yield_now=True) == "later"
    again = job_row(database, job.id)
    assert again.status == "queued" and again.available_at <= utcnow() and again.attempts == 0
    assert claim(database, "another").id == job.id


@pytest.fixture(scope="module")
def postgresql() -> Iterator[Database]:
    with postgres_database() as url:
        database = Database.from_url(url)
        migrate.upgrade(database)
        yield database
        database.dispose()


def blocked_on_a_lock(database: Database) -> bool:
    with database.transaction(write=False) as session:
        return bool(
            session.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar()
        )


def new_deliveries_of(session: Session, review: str) -> None:
    logged = session.execute(select(Event).where(Event.object_id == review)).scalars()
    service.create_deliveries(session, list(logged))


@pytest.mark.parametrize("first", ["deliveries queued", "sender ending"])
def test_a_delivery_queued_while_its_sender_ends_is_sent(postgresql: Database, first: str) -> None:
    """PostgreSQL, many workers: queueing deliveries and ending the endpoint's sender both hold the endpoint's
    row. Whichever commits first, the other sees it: the sender goes on, or a new sender is queued. A delivery
    pending with no sender would wait for the endpoint's next event, however long that is."""
    database = postgresql
    box = SecretBox(Fernet.generate_key())
    try:
        with database.transaction() as session:
            workspace, _ = get_or_create_workspace(session, name="race")
            principal = auth.Principal("key_test", workspace.id, auth.Role.admin, "test")
            endpoint, _ = service.create_endpoint(
                session,
                principal=principal,
                box=box,
                url="http://127.0.0.1:9/h",
                events=["*"],
                allow_private=True,
            )
            endpoint_id, workspace_id = endpoint.id, workspace.id
            emit(session, workspace_id, ["rev_a"])
        deliver_new_events(database)
        job = claim(database)
        (sent,) = due(database, endpoint_id, box)
        with database.transaction() as session:
            emit(session, workspace_id, ["rev_b"])
        with database.transaction() as session:
            outbox.sequence(session)
        holder = database.session(write=True)
        with ThreadPoolExecutor(1) as pool:
            with holder.begin():
                if first == "deliveries queued":
                    new_deliveries_of(holder, "rev_b")
                    ending = pool.submit(settle, database, job, endpoint_id, [(sent.delivery_id, OK)])
                    wait_for(lambda: blocked_on_a_lock(database), message="the sender did not wait")
                else:
                    assert settle_in(holder, job, endpoint_id, [(sent.delivery_id, OK)]) == "done"
                    queueing = pool.submit(lambda: queue_in_own_transaction(database, "rev_b"))
                    wait_for(lambda: blocked_on_a_lock(database), message="the queueing did not wait")
            holder.close()
            if first == "deliveries queued":
                assert ending.result(timeout=30) == "more"  # it saw rev_b's delivery
            else:
                queueing.result(timeout=30)
        with database.transaction(write=False) as session:
            endpoint = session.get_one(WebhookEndpoint, endpoint_id)
            sender = session.get_one(Job, endpoint.sender_job_id) if endpoint.sender_job_id else None
        assert sender is not None and sender.status in ("queued", "running")
    finally:
        wipe(database)


def settle_in(session: Session, job: jobs.ClaimedJob, endpoint_id: str, sent: list) -> str:
    return service.settle(
        session,
        claimed=job,
        endpoint_id=endpoint_id,
        sent=sent,
        retry_delay=lambda attempt: 60.0,
        max_attempts=3,
        disable_after=2,
    )


def queue_in_own_transaction(database: Database, review: str) -> None:
    with database.transaction() as session:
        new_deliveries_of(session, review)


def test_maintenance_gives_stranded_deliveries_a_sender(
    database: Database, setup: tuple[SecretBox, str, str, str]
) -> None:
    """A sender that failed every attempt (its database was down) leaves deliveries pending: maintenance
    queues a new one, and leaves an endpoint with a live sender alone."""
    box, workspace_id, endpoint_id, _ = setup
    with database.transaction() as session:
        emit(session, workspace_id, ["rev_a"])
    deliver_new_events(database)
    with database.transaction() as session:
        assert service.wake_stranded_senders(session) == 0  # its sender is queued
    job = claim(database)
    with database.transaction() as session:
        assert jobs.fail_job(session, claimed=job, error="database down", retry_after=None) == "failed"
    run_maintenance(database, retention_days=0)  # as the scheduled maintenance job does it
    again = claim(database)
    assert again.id != job.id and again.payload == {"endpoint_id": endpoint_id}
    assert [m.event_id for m in due(database, endpoint_id, box)]


def test_a_batch_is_recorded_in_log_order_and_410_disables_once(
    database: Database, setup: tuple[SecretBox, str, str, str]
) -> None:
    """A success ends the run of failures before it, not the ones after it; a batch of 410s is one
    ``webhook.disabled``."""
    box, workspace_id, endpoint_id, _ = setup  # disable_after 2 (settle above)
    with database.transaction() as session:
        emit(session, workspace_id, ["rev_a", "rev_b", "rev_c"])
    deliver_new_events(database)
    job = claim(database)
    a, b, c = (m.delivery_id for m in due(database, endpoint_id, box))
    with database.transaction() as session:  # each on its last attempt; no failures in a row yet
        session.execute(update(WebhookDelivery).values(attempts=2))
        session.execute(update(WebhookEndpoint).values(failed_in_a_row=0))
    assert settle(database, job, endpoint_id, [(a, BROKEN), (b, OK), (c, BROKEN)]) == "done"
    with database.transaction(write=False) as session:
        endpoint = session.get_one(WebhookEndpoint, endpoint_id)
        assert (endpoint.enabled, endpoint.failed_in_a_row) == (True, 1)  # a's run ended by b; c's is 1

    with database.transaction() as session:
        emit(session, workspace_id, ["rev_d", "rev_e"])
    deliver_new_events(database)
    job = claim(database)
    d, e = (m.delivery_id for m in due(database, endpoint_id, box))
    assert settle(database, job, endpoint_id, [(d, GONE), (e, GONE)]) == "done"
    with database.transaction(write=False) as session:
        disabled = session.execute(select(Event).where(Event.type == EventType.webhook_disabled.value)).all()
    assert len(disabled) == 1


def test_a_redelivery_does_not_let_a_chain_go_two_at_a_time(
    database: Database, setup: tuple[SecretBox, str, str, str]
) -> None:
    box, workspace_id, endpoint_id, _ = setup
    with database.transaction() as session:
        emit(session, workspace_id, ["rev_a", "rev_a", "rev_a"])
    deliver_new_events(database)
    job = claim(database)
    (x,) = (m.delivery_id for m in due(database, endpoint_id, box))
    assert settle(database, job, endpoint_id, [(x, OK)]) == "more"
    (y,) = (m.delivery_id for m in due(database, endpoint_id, box))
    assert settle(database, job, endpoint_id, [(y, BROKEN)]) == "later"  # y retries later; z waits behind it
    with database.transaction() as session:
        principal = auth.Principal("key_test", workspace_id, auth.Role.admin, "test")
        service.redeliver(session, principal=principal, endpoint_id=endpoint_id, delivery_id=x)
    job = claim(database)
    assert [m.delivery_id for m in due(database, endpoint_id, box)] == [x]
    settle(database, job, endpoint_id, [(x, OK)])
    statuses = sorted(d.status for d in deliveries(database).values())
    assert statuses == ["pending", "succeeded", "waiting"]  # z still waits for y


def test_a_port_out_of_range_is_refused_when_the_endpoint_is_made() -> None:
    with pytest.raises(ValidationFailed, match="port"):
        service.check_url("http://hooks.example:99999/in", allow_private=False)
