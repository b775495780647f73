from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from casework.db.engine import Database
from casework.db.search import controls_with_words
from tests.support import Tenant, enqueue, make_project, table_counts


@pytest.fixture
def project_id(admin: httpx.Client) -> str:
    return make_project(admin)


def decide(client: httpx.Client, project_id: str, **feedback: Any) -> str:
    review = enqueue(client, project_id, query=feedback.pop("query", "Is this account's return guaranteed?"))
    body = {
        "classification": "non_compliant",
        "reasoning": "No product has guaranteed returns.",
        "reviewer": "[email protected]",
        "tags": [],
        **feedback,
    }
    response = client.post(f"/api/v1/hitl/reviews/{review['id']}/feedback", json=body)
    assert response.status_code == 201, response.text
    control_id: str = response.json()["control_id"]
    return control_id


def test_authored_control_has_no_review(admin: httpx.Client, project_id: str) -> None:
    response = admin.post(
        "/api/v1/controls",
        json={
            "project_id": project_id,
            "evaluator_type": "policy-adherence",
            "classification": "non_compliant",
            "reasoning": "Any promise of guaranteed returns is non-compliant.",
            "reviewer": "[email protected]",
            "tags": ["Guaranteed-Returns"],
        },
    )
    assert response.status_code == 201, response.text
    control = response.json()
    assert control["id"].startswith("ctl_")
    assert (control["review_id"], control["query"], control["status"], control["version"]) == (
        None,
        None,
        "active",
        1,
    )
    assert control["tags"] == ["guaranteed-returns"]
    assert control["created_at"] == control["updated_at"]


def test_filters_and_text_search(admin: httpx.Client, project_id: str) -> None:
    a = decide(
        admin,
        project_id,
        tags=["suitability"],
        reviewer="[email protected]",
        query="My broker promised guaranteed returns",
    )
    b = decide(
        admin,
        project_id,
        classification="compliant",
        reasoning="Correct referral to the fraud team.",
        query="Someone took money from my card",
    )
    admin.delete(f"/api/v1/controls/{b}")

    def ids(**params: Any) -> list[str]:
        response = admin.get("/api/v1/controls", params={"project_id": project_id, **params})
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["controls"]]

    assert ids() == [a]
    assert ids(status="retired") == [b]
    assert ids(status="all") == [b, a]
    assert ids(tag="suitability") == [a]
    assert ids(reviewer="[email protected]") == [a]
    assert ids(evaluator_type="other") == []
    assert ids(status="all", q="broker GUARANTEED") == [a]
    assert ids(status="all", q="fraud") == [b]
    assert ids(status="all", q="fraud broker") == []


def test_text_search_takes_wildcards_literally(admin: httpx.Client, project_id: str) -> None:
    plain = decide(admin, project_id, query="Is my balance a_b guaranteed?")
    marked = decide(admin, project_id, query="Is a 100% return on a_b guaranteed?")

    def ids(q: str) -> list[str]:
        response = admin.get("/api/v1/controls", params={"project_id": project_id, "q": q})
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["controls"]]

    assert ids("%") == [marked]  # not every control
    assert ids("100%") == [marked]
    assert ids("a_b") == [marked, plain]
    assert ids("a_") == [marked, plain]
    assert ids("_") == [marked, plain]
    assert ids("a%b") == []  # "%" is not "anything": no control has "a%b"
    assert ids("a__") == []  # nor is "_" "any character": no control has "a__"


def test_pagination_newest_first(admin: httpx.Client, project_id: str) -> None:
    made = [decide(admin, project_id, query=f"case {i}") for i in range(5)]
    seen: list[str] = []
    params: dict[str, Any] = {"project_id": project_id, "limit": 2}
    while True:
        page = admin.get("/api/v1/controls", params=params).json()
        seen += [c["id"] for c in page["controls"]]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == list(reversed(made))


def test_edit_keeps_every_version_and_delete_retires(admin: httpx.Client, project_id: str) -> None:
    control_id = decide(admin, project_id)
    edited = admin.patch(
        f"/api/v1/controls/{control_id}",
        json={"reasoning": "Updated policy: see rule 4.2.", "tags": ["policy-4-2"]},
    )
    assert edited.status_code == 200, edited.text
    assert (edited.json()["version"], edited.json()["reasoning"]) == (2, "Updated policy: see rule 4.2.")
    unchanged = admin.patch(f"/api/v1/controls/{control_id}", json={"tags": ["policy-4-2"]})
    assert unchanged.json()["version"] == 2
    retired = admin.delete(f"/api/v1/controls/{control_id}")
    assert (retired.status_code, retired.json()["status"], retired.json()["version"]) == (200, "retired", 3)
    assert admin.get(f"/api/v1/controls/{control_id}").json()["status"] == "retired"

    history = admin.get(f"/api/v1/controls/{control_id}/history").json()
    assert [v["version"] for v in history["versions"]] == [3, 2, 1]
    assert history["versions"][2]["reasoning"] == "No product has guaranteed returns."
    assert history["versions"][0]["status"] == "retired"
    assert all("admin@" in v["changed_by"] for v in history["versions"])

    reactivated = admin.patch(f"/api/v1/controls/{control_id}", json={"status": "active"})
    assert (reactivated.json()["status"], reactivated.json()["version"]) == ("active", 4)


def test_bad_edits_change_nothing(
    admin: httpx.Client,
    project_id: str,
    database: Database,
    tenant: Tenant,
    other_tenant: Tenant,
    settled: Callable[[], None],
) -> None:
    control_id = decide(admin, project_id)
    settled()  # the new control's memory pass is done
    before = table_counts(database)
    for body in ({"reasoning": ""}, {"status": "deleted"}, {"tags": ["BAD TAG"]}, {"review_id": "x"}):
        response = admin.patch(f"/api/v1/controls/{control_id}", json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error"), body
    assert (
        admin.patch("/api/v1/controls/ctl_nope", json={"reasoning": "x"}).json()["error"]["code"]
        == "control_not_found"
    )
    with tenant.client("viewer") as viewer:
        assert viewer.patch(f"/api/v1/controls/{control_id}", json={"reasoning": "x"}).status_code == 403
        assert viewer.delete(f"/api/v1/controls/{control_id}").status_code == 403
    with other_tenant.client() as intruder:
        for response in (
            intruder.get(f"/api/v1/controls/{control_id}"),
            intruder.patch(f"/api/v1/controls/{control_id}", json={"reasoning": "x"}),
            intruder.delete(f"/api/v1/controls/{control_id}"),
            intruder.get(f"/api/v1/controls/{control_id}/history"),
        ):
            assert (response.status_code, response.json()["error"]["code"]) == (404, "control_not_found")
        assert intruder.get("/api/v1/controls", params={"project_id": project_id}).status_code == 404
    assert table_counts(database) == before


def test_audit_trail_records_who_what_before_and_after(
    admin: httpx.Client, project_id: str, tenant: Tenant
) -> None:
    control_id = decide(admin, project_id)
    admin.patch(f"/api/v1/controls/{control_id}", json={"classification": "compliant"})
    events = admin.get("/api/v1/audit", params={"project_id": project_id}).json()["events"]
    assert [e["action"] for e in events] == [
        "control.updated",
        "review.resolved",
        "control.created",
        "review.created",
    ]
    update = events[0]
    assert (update["before"]["classification"], update["after"]["classification"]) == (
        "non_compliant",
        "compliant",
    )
    assert update["actor"].startswith(f"admin@{tenant.name}")
    only = admin.get("/api/v1/audit", params={"project_id": project_id, "object_id": control_id}).json()[
        "events"
    ]
    assert [e["action"] for e in only] == ["control.updated", "control.created"]
    page = admin.get("/api/v1/audit", params={"project_id": project_id, "limit": 3}).json()
    rest = admin.get("/api/v1/audit", params={"project_id": project_id, "cursor": page["next_cursor"]}).json()
    assert [e["id"] for e in page["events"] + rest["events"]] == [e["id"] for e in events]


def test_search_words_and_cursors_are_bounded(admin: httpx.Client, project_id: str) -> None:
    """SQLite refuses a LIKE pattern over 50,000 bytes: q is bounded at the edge, on both databases."""
    for params in (
        {"q": "a" * 50_001},
        {"q": "a" * 1001},
        {"cursor": "WyIyMDIwLTAxLTAxIix7fV0"},  # ["2020-01-01",{}]
        {"created_after": "0001-01-01T00:00:00+14:00"},
    ):
        response = admin.get("/api/v1/controls", params={"project_id": project_id, **params})
        assert response.status_code == 422, (params, response.text)
        assert response.json()["error"]["code"] in ("validation_error", "invalid_cursor")
    assert (
        admin.get("/api/v1/controls", params={"project_id": project_id, "q": "a " * 500}).status_code == 200
    )


def distinct_words(characters: int, prefix: str) -> str:
    """About ``characters`` of words that are all different ("qaaab qaaac ..."), the worst case for an index."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    words, length, n = [], 0, 0
    while length < characters:
        word, rest = prefix, n
        for _ in range(4):
            word, rest = word + letters[rest % 26], rest // 26
        words.append(word)
        length += len(word) + 1
        n += 1
    return " ".join(words)


def test_a_review_with_a_megabyte_of_distinct_words_can_be_resolved(
    admin: httpx.Client, project_id: str, database: Database
) -> None:
    """PostgreSQL cannot index more than 1 MB of words per control: a review accepted must still be resolvable."""
    review = enqueue(
        admin, project_id, query=distinct_words(450_000, "q"), response=distinct_words(450_000, "r")
    )
    feedback = admin.post(
        f"/api/v1/hitl/reviews/{review['id']}/feedback",
        json={"classification": "compliant", "reasoning": "Long, but fine.", "reviewer": "ana@bank.example"},
    )
    assert feedback.status_code == 201, feedback.text[:300]
    written = admin.post(
        "/api/v1/controls",
        json={"project_id": project_id, "evaluator_type": "policy-adherence", "classification": "compliant",
              "reasoning": "A policy note.", "reviewer": "ana@bank.example", "query": distinct_words(900_000, "z")},
    )  # fmt: skip
    assert written.status_code == 201, written.text[:300]
    # Both are still candidates for evaluation memory, by words near the start of their text.
    with database.transaction(write=False) as session:
        found = controls_with_words(
            session, project_id=project_id, evaluator_type="policy-adherence", words=["qaaaa", "zaaaa"]
        )

    assert set(found) == {feedback.json()["control_id"], written.json()["id"]}
    search = admin.get(
        "/api/v1/controls/search",
        params={
            "project_id": project_id,
            "evaluator_type": "policy-adherence",
            "query": distinct_words(9_000, "q"),
        },
    )
    assert search.status_code == 200, search.text[:300]
