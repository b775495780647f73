"""Deliveries about one review go out in order, and none is left waiting for ever: a delivery queued while the
one ahead of it is finishing either sees it finished or is started by it (both databases)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from casework.db.engine import Database
from casework.db.models import Integration, IntegrationDelivery, Job
from casework.db.types import utcnow
from casework.secrets import SecretBox
from casework.services import auth
from casework.services import integration_deliveries as deliveries
from casework.services.integrations import create_integration
from casework.services.workspaces import get_or_create_workspace

pytestmark = pytest.mark.storage


def park_jobs(session: Session) -> None:
    """Out of reach of a worker that may be running in this test session: this test only reads them."""
    session.execute(update(Job).values(available_at=utcnow() + timedelta(days=1)))


def test_a_delivery_queued_while_the_one_ahead_finishes_is_not_left_waiting(database: Database) -> None:
    box = SecretBox(Fernet.generate_key())
    with database.transaction() as session:
        workspace, _ = get_or_create_workspace(session, name="ordering")
        principal = auth.Principal("key_test", workspace.id, auth.Role.admin, "test")
        integration = create_integration(
            session,
            principal=principal,
            box=box,
            kind="teams",
            config={"webhook_url": "http://127.0.0.1:9/webhookb2/x"},
            allow_private=True,
        )
        first = deliveries.add_delivery(
            session, integration, action="open", dedupe_key="a", review_id="rev_x"
        )
        park_jobs(session)
    added: list[str | None] = []

    def queue_second() -> None:
        with database.transaction() as other:
            target = other.get_one(Integration, integration.id)
            added.append(
                deliveries.add_delivery(other, target, action="resolve", dedupe_key="b", review_id="rev_x")
            )
            park_jobs(other)

    with database.transaction() as session:
        ahead = session.get_one(IntegrationDelivery, first)
        deliveries._settle(session, ahead, "succeeded", error=None)  # finishing, not yet committed
        thread = threading.Thread(target=queue_second)
        thread.start()
        thread.join(timeout=0.5)  # it waits for this transaction (the row lock; on SQLite, the write lock)
        assert thread.is_alive()
    thread.join(timeout=10)
    with database.transaction(write=False) as session:
        second = session.get_one(IntegrationDelivery, added[0])
        assert second.status == "pending"
        queued = session.execute(
            select(func.count()).where(Job.kind == deliveries.DELIVER, Job.payload.is_not(None))
        ).scalar_one()
        assert queued == 2  # the first's job and the second's
