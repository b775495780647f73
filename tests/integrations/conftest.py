"""Each tool's fake, served over real HTTP for the whole session and emptied after each test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from casework.db.engine import Database
from casework.db.models import IntegrationLink
from casework.services import sla_sweep
from tests.fakes.azure_devops import FakeAzureDevOps
from tests.fakes.jira import FakeJira
from tests.fakes.servicenow import FakeServiceNow
from tests.fakes.slack import FakeSlack
from tests.fakes.teams import FakeTeams
from tests.fakes.zendesk import FakeZendesk
from tests.support import LiveServer, wait_for


def _serve(fake: Any) -> Iterator[Any]:
    with LiveServer(fake.app) as server:
        fake.base_url = server.base_url
        yield fake


@pytest.fixture(scope="session")
def _slack_server() -> Iterator[FakeSlack]:
    yield from _serve(FakeSlack())


@pytest.fixture
def slack(_slack_server: FakeSlack) -> Iterator[FakeSlack]:
    yield _slack_server
    _slack_server.reset()


@pytest.fixture(scope="session")
def _teams_server() -> Iterator[FakeTeams]:
    yield from _serve(FakeTeams())


@pytest.fixture
def teams(_teams_server: FakeTeams) -> Iterator[FakeTeams]:
    yield _teams_server
    _teams_server.reset()


@pytest.fixture(scope="session")
def _jira_server() -> Iterator[FakeJira]:
    yield from _serve(FakeJira())


@pytest.fixture
def jira(_jira_server: FakeJira) -> Iterator[FakeJira]:
    yield _jira_server
    _jira_server.reset()


@pytest.fixture(scope="session")
def _azure_devops_server() -> Iterator[FakeAzureDevOps]:
    yield from _serve(FakeAzureDevOps())


@pytest.fixture
def azure_devops(_azure_devops_server: FakeAzureDevOps) -> Iterator[FakeAzureDevOps]:
    yield _azure_devops_server
    _azure_devops_server.reset()


@pytest.fixture(scope="session")
def _servicenow_server() -> Iterator[FakeServiceNow]:
    yield from _serve(FakeServiceNow())


@pytest.fixture
def servicenow(_servicenow_server: FakeServiceNow) -> Iterator[FakeServiceNow]:
    yield _servicenow_server
    _servicenow_server.reset()


@pytest.fixture(scope="session")
def _zendesk_server() -> Iterator[FakeZendesk]:
    yield from _serve(FakeZendesk())


@pytest.fixture
def zendesk(_zendesk_server: FakeZendesk) -> Iterator[FakeZendesk]:
    yield _zendesk_server
    _zendesk_server.reset()


def register(client: httpx.Client, kind: str, config: dict[str, Any], **fields: Any) -> dict[str, Any]:
    response = client.post("/api/v1/integrations", json={"kind": kind, "config": config, **fields})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def wait_linked(database: Database, review_id: str) -> None:
    """Until Casework has stored where the review lives in the tool (the delivery's own transaction, a moment
    after the tool answered): decisions from the tool are matched through it."""

    def linked() -> bool:
        with database.transaction(write=False) as session:
            found = session.execute(
                select(IntegrationLink.review_id).where(IntegrationLink.review_id == review_id)
            )
            return found.first() is not None

    wait_for(linked, message=f"review {review_id} was never linked to the tool")


def inbound_url(base_url: str, integration: dict[str, Any]) -> str:
    return f"{base_url}/api/v1/integrations/{integration['id']}/inbound"


def pause_when_waiting(client: httpx.Client, project_id: str) -> None:
    """The project's SLA policy pauses the clock of a review waiting on a ticket."""
    client.put(
        f"/api/v1/projects/{project_id}/sla", json={"target_hours": 10, "pause_when_waiting": True}
    ).raise_for_status()


def paused_after_sweep(client: httpx.Client, database: Database, review_id: str) -> bool:
    """Whether the review's SLA clock is paused once the sweep has paused and resumed clocks."""
    with database.transaction() as session:
        sla_sweep.pause_and_resume(session)
    return client.get(f"/api/v1/hitl/reviews/{review_id}").json()["paused_at"] is not None
