"""With CASEWORK_EMBEDDINGS_MODEL, memory ranks by embedding similarity combined with word overlap."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from casework.app import create_app
from casework.config import Settings
from casework.db.engine import Database
from casework.evaluators.judge import LLMJudge, judge_client
from tests.judge_server import JudgeServer
from tests.support import LiveServer, Tenant, make_project

CONTROL = {
    "evaluator_type": "policy-adherence",
    "classification": "non_compliant",
    "reviewer": "[email protected]",
    "reasoning": "Never let a customer believe an advisor's claim of guaranteed returns.",
    "query": "My financial advisor told me this fund has guaranteed returns.",
    "response": "That fund is very popular with our customers.",
}
# Shares one rare word ("returns") with the control; the toy model maps broker, promised, gains to the
# control's advisor, guaranteed, returns.
LOOK_ALIKE = {
    "query": "The broker promised returns on my savings, fixed gains every year.",
    "response": "Sounds good.",
}


@pytest.fixture
def embedding_server(
    settings: Settings, database: Database, judge_server: JudgeServer
) -> Iterator[LiveServer]:
    client = judge_client(
        api_key="test-key", base_url=f"{judge_server.base_url}/v1", max_retries=0, timeout=10
    )
    app = create_app(
        settings.model_copy(update={"embeddings_model": "toy-embedding"}),
        database=database,
        judge=LLMJudge(client),
    )
    with LiveServer(app) as server:
        yield server


def search(base_url: str, key: str, project_id: str) -> dict[str, object]:
    response = httpx.get(
        f"{base_url}/api/v1/controls/search",
        headers={"x-api-key": key},
        params={"project_id": project_id, "evaluator_type": "policy-adherence", **LOOK_ALIKE},
    )
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


def test_embeddings_find_what_words_alone_miss(
    tenant: Tenant, admin: httpx.Client, embedding_server: LiveServer, judge_server: JudgeServer
) -> None:
    project_id = make_project(admin)
    admin.post("/api/v1/controls", json={"project_id": project_id, **CONTROL}).raise_for_status()

    by_words = search(tenant.base_url, tenant.keys["admin"], project_id)
    assert by_words["controls"] == [], "word overlap alone is under the floor"

    with_embeddings = search(embedding_server.base_url, tenant.keys["admin"], project_id)
    [found] = with_embeddings["controls"]  # type: ignore[misc]
    assert found["control"]["classification"] == "non_compliant"
    assert found["score"] >= 0.15
    assert [len(r["input"]) for r in judge_server.embedding_requests] == [2], (
        "the interaction and the control"
    )
    assert judge_server.embedding_requests[0]["model"] == "toy-embedding"

    search(embedding_server.base_url, tenant.keys["admin"], project_id)
    assert [len(r["input"]) for r in judge_server.embedding_requests] == [2, 1], (
        "the control's vector is kept"
    )


def test_an_embeddings_outage_falls_back_to_words(
    tenant: Tenant, admin: httpx.Client, settings: Settings, database: Database
) -> None:
    project_id = make_project(admin)
    admin.post("/api/v1/controls", json={"project_id": project_id, **CONTROL}).raise_for_status()
    dead = judge_client(api_key="k", base_url="http://127.0.0.1:9/v1", max_retries=0, timeout=2)
    app = create_app(
        settings.model_copy(update={"embeddings_model": "toy"}), database=database, judge=LLMJudge(dead)
    )
    with LiveServer(app) as server:
        params = {
            "project_id": project_id,
            "evaluator_type": "policy-adherence",
            **{k: str(v) for k, v in CONTROL.items() if k in ("query", "response")},
        }
        result = httpx.get(
            f"{server.base_url}/api/v1/controls/search",
            headers={"x-api-key": tenant.keys["admin"]},
            params=params,
        ).json()
    assert len(result["controls"]) == 1, "the exact interaction is still found by its words"
