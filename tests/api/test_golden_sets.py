"""Golden sets: built from people's decisions or given items, versioned (an old version never changes), with
acceptance thresholds validated on save."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import POLICY_EVALUATOR, enqueue, make_project

pytestmark = pytest.mark.storage


def item(n: int, expected: str = "compliant", **fields: Any) -> dict[str, Any]:
    return {"query": f"question {n}", "response": f"answer {n}", "expected": expected, **fields}


def create(client: httpx.Client, project_id: str, **body: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/golden-sets", json={"project_id": project_id, "name": "regression", **body}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def all_items(client: httpx.Client, set_id: str, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = client.get(
            f"/api/v1/golden-sets/{set_id}/items",
            params={**params, "limit": 2, **({"cursor": cursor} if cursor else {})},
        )
        assert page.status_code == 200, page.text
        found += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return found


def decide(client: httpx.Client, review_id: str, classification: str, tags: list[str] | None = None) -> str:
    """Resolve as a person; returns the control the decision made."""
    response = client.post(
        f"/api/v1/hitl/reviews/{review_id}/feedback",
        json={
            "classification": classification,
            "reasoning": "Because.",
            "reviewer": "ana@bank.example",
            "tags": tags or [],
        },
    )
    assert response.status_code == 201, response.text
    control_id: str = response.json()["control_id"]
    return control_id


def test_adding_or_rebuilding_makes_a_new_version_and_old_ones_never_change(admin: httpx.Client) -> None:
    project_id = make_project(admin)
    golden = create(admin, project_id, items=[item(1), item(2), item(3, "non_compliant")])
    assert (golden["version"], golden["item_count"]) == (1, 3)

    added = admin.post(f"/api/v1/golden-sets/{golden['id']}/versions", json={"items": [item(4), item(5)]})
    assert added.status_code == 201, added.text
    assert (added.json()["version"], added.json()["item_count"]) == (2, 5)
    rebuilt = admin.post(
        f"/api/v1/golden-sets/{golden['id']}/versions", json={"items": [item(6)], "mode": "replace"}
    ).json()
    assert (rebuilt["version"], rebuilt["item_count"]) == (3, 1)

    queries = {v: [i["query"] for i in all_items(admin, golden["id"], version=v)] for v in (1, 2, 3)}
    assert queries == {
        1: ["question 1", "question 2", "question 3"],
        2: ["question 1", "question 2", "question 3", "question 4", "question 5"],
        3: ["question 6"],
    }
    assert [i["query"] for i in all_items(admin, golden["id"])] == ["question 6"]  # the current version

    shown = admin.get(f"/api/v1/golden-sets/{golden['id']}").json()
    assert [(v["version"], v["item_count"], v["source"]["mode"]) for v in shown["versions"]] == [
        (1, 3, "add"),
        (2, 5, "add"),
        (3, 1, "replace"),
    ]
    listed = admin.get("/api/v1/golden-sets", params={"project_id": project_id}).json()["golden_sets"]
    assert [(s["name"], s["version"], s["item_count"]) for s in listed] == [("regression", 3, 1)]

    missing = admin.get(f"/api/v1/golden-sets/{golden['id']}/items", params={"version": 4})
    assert missing.status_code == 422 and missing.json()["error"]["details"]["latest"] == 3


def test_a_set_from_reviews_keeps_people_s_decisions_and_links_to_their_source(admin: httpx.Client) -> None:
    project_id = make_project(admin)
    first = enqueue(admin, project_id, query="Is this fund guaranteed?")
    second = enqueue(admin, project_id, query="Can I raise my limit?")
    enqueue(admin, project_id, query="Still pending")
    enqueue(admin, project_id, evaluator_type="tone", options=["ok", "rude"], query="Other evaluator")
    controls = {
        first["id"]: decide(admin, first["id"], "non_compliant", tags=["guarantees"]),
        second["id"]: decide(admin, second["id"], "compliant"),
    }

    golden = create(
        admin, project_id, from_reviews={"evaluator_type": "policy-adherence", "decided_by": "people"}
    )
    items = all_items(admin, golden["id"])
    assert {(i["query"], i["expected"], i["source_review_id"]) for i in items} == {
        ("Is this fund guaranteed?", "non_compliant", first["id"]),
        ("Can I raise my limit?", "compliant", second["id"]),
    }
    for found in items:
        assert found["source_control_id"] == controls[found["source_review_id"]]
        assert found["evaluator_type"] == "policy-adherence"

    tagged = admin.post(
        "/api/v1/golden-sets",
        json={"project_id": project_id, "name": "guarantees", "from_reviews": {"tags": ["guarantees"]}},
    ).json()
    assert tagged["item_count"] == 1

    # Adding from the same reviews again adds nothing twice; the version still moves on.
    again = admin.post(
        f"/api/v1/golden-sets/{golden['id']}/versions",
        json={"from_reviews": {"evaluator_type": "policy-adherence"}},
    ).json()
    assert (again["version"], again["item_count"]) == (2, 2)


def test_a_set_from_reviews_where_agreement_was_reached_keeps_only_reviewers_who_agreed(
    admin: httpx.Client,
) -> None:
    project_id = make_project(admin)
    evaluator = admin.post("/api/v1/evaluators", json={**POLICY_EVALUATOR, "project_id": project_id}).json()
    alone = enqueue(admin, project_id, query="One reviewer decided this")
    decide(admin, alone["id"], "compliant")
    admin.patch(f"/api/v1/evaluators/{evaluator['id']}", json={"reviewers_required": 2}).raise_for_status()
    agreed, split = (enqueue(admin, project_id, query=q) for q in ("Both agreed on this", "They disagreed"))

    def submit(review_id: str, reviewer: str, classification: str, **extra: Any) -> None:
        reply = admin.post(
            f"/api/v1/hitl/reviews/{review_id}/feedback",
            json={"classification": classification, "reasoning": "Read it.", "reviewer": reviewer, **extra},
        )
        assert reply.status_code == 201, reply.text

    submit(agreed["id"], "ana", "non_compliant")
    submit(agreed["id"], "ben", "non_compliant")
    submit(split["id"], "ana", "compliant")
    submit(split["id"], "ben", "non_compliant")
    submit(split["id"], "lead", "non_compliant", adjudicate=True)

    everyone = create(admin, project_id, from_reviews={})
    assert everyone["item_count"] == 3
    reached = admin.post(
        "/api/v1/golden-sets",
        json={"project_id": project_id, "name": "agreed", "from_reviews": {"agreement": "reached"}},
    )
    assert reached.status_code == 201, reached.text
    [only] = all_items(admin, reached.json()["id"])
    assert (only["source_review_id"], only["expected"]) == (agreed["id"], "non_compliant")
    assert reached.json()["versions"][0]["source"]["from_reviews"]["agreement"] == "reached"

    unknown = admin.post(
        "/api/v1/golden-sets",
        json={"project_id": project_id, "name": "x", "from_reviews": {"agreement": "mostly"}},
    )
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "validation_error"


def test_thresholds_are_validated_on_save_and_names_are_unique(admin: httpx.Client) -> None:
    project_id = make_project(admin)
    for thresholds, problem in [
        ({"precision": {">=": 0.5}}, "metric"),
        ({"kappa": {"=>": 0.6}}, "operator"),
        ({"kappa": {">=": 2}}, "kappa"),
        ({"ambiguity_rate": {"<=": 1.5}}, "share"),
    ]:
        response = admin.post(
            "/api/v1/golden-sets",
            json={"project_id": project_id, "name": "x", "items": [item(1)], "thresholds": thresholds},
        )
        assert response.status_code == 422, (thresholds, response.text)
        assert response.json()["error"]["code"] == "validation_error"
        assert problem in response.json()["error"]["message"] + str(response.json()["error"]["details"])

    golden = create(admin, project_id, items=[item(1)], thresholds={"kappa": {">=": 0.6}})
    assert golden["thresholds"] == {"kappa": {">=": 0.6}}
    changed = admin.patch(
        f"/api/v1/golden-sets/{golden['id']}",
        json={"thresholds": {"accuracy": {">=": 0.9}, "ambiguity_rate": {"<=": 0.2}}},
    )
    assert changed.status_code == 200 and changed.json()["thresholds"] == {
        "accuracy": {">=": 0.9},
        "ambiguity_rate": {"<=": 0.2},
    }
    assert (
        admin.patch(
            f"/api/v1/golden-sets/{golden['id']}", json={"thresholds": {"nope": {">=": 1}}}
        ).status_code
        == 422
    )

    duplicate = admin.post(
        "/api/v1/golden-sets", json={"project_id": project_id, "name": "regression", "items": [item(2)]}
    )
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "golden_set_exists"
    empty = admin.post("/api/v1/golden-sets", json={"project_id": project_id, "name": "empty"})
    assert empty.status_code == 422


def test_a_set_belongs_to_its_workspace(admin: httpx.Client, other_tenant: Any) -> None:
    project_id = make_project(admin)
    golden = create(admin, project_id, items=[item(1)])
    with other_tenant.client("admin") as stranger:
        assert (
            stranger.get(f"/api/v1/golden-sets/{golden['id']}").json()["error"]["code"]
            == "golden_set_not_found"
        )
        assert (
            stranger.post(f"/api/v1/golden-sets/{golden['id']}/runs", json={"evaluators": ["x"]}).status_code
            == 404
        )
    with admin.__class__(base_url=str(admin.base_url), headers={"x-api-key": "nope"}) as anonymous:
        assert anonymous.get(f"/api/v1/golden-sets/{golden['id']}").status_code == 401


def control(client: httpx.Client, project_id: str, n: int | None, classification: str, **fields: Any) -> str:
    body: dict[str, Any] = {
        "project_id": project_id,
        "evaluator_type": "policy-adherence",
        "classification": classification,
        "reasoning": "Because.",
        "reviewer": "ana@bank.example",
        **fields,
    }
    if n is not None:
        body.update(query=f"control question {n}", response=f"control answer {n}", context=f"context {n}")
    response = client.post("/api/v1/controls", json=body)
    assert response.status_code == 201, response.text
    control_id: str = response.json()["id"]
    return control_id


def test_a_set_from_controls_takes_their_interaction_and_answer_and_links_to_them(
    admin: httpx.Client,
) -> None:
    project_id = make_project(admin)
    active = control(admin, project_id, 1, "non_compliant", tags=["guarantees"])
    plain = control(admin, project_id, 2, "compliant")
    retired = control(admin, project_id, 3, "compliant", tags=["guarantees"])
    assert admin.delete(f"/api/v1/controls/{retired}").status_code == 200
    control(admin, project_id, None, "non_compliant")  # a policy note: no interaction to judge
    control(admin, project_id, 4, "ok", evaluator_type="tone")

    golden = create(admin, project_id, from_controls={"evaluator_type": "policy-adherence"})
    items = all_items(admin, golden["id"])
    assert [
        (i["query"], i["response"], i["context"], i["expected"], i["source_control_id"]) for i in items
    ] == [
        ("control question 1", "control answer 1", "context 1", "non_compliant", active),
        ("control question 2", "control answer 2", "context 2", "compliant", plain),
    ]
    assert all(i["evaluator_type"] == "policy-adherence" for i in items)
    shown = admin.get(f"/api/v1/golden-sets/{golden['id']}").json()
    assert shown["versions"][0]["source"]["from_controls"] == {
        "evaluator_type": "policy-adherence",
        "tags": [],
        "include_retired": False,
    }

    # The next version: with retired ones and by tag; a control already in the set is not added twice.
    again = admin.post(
        f"/api/v1/golden-sets/{golden['id']}/versions",
        json={
            "from_controls": {
                "evaluator_type": "policy-adherence",
                "tags": ["guarantees"],
                "include_retired": True,
            }
        },
    )
    assert again.status_code == 201, again.text
    assert (again.json()["version"], again.json()["item_count"]) == (2, 3)
    assert [i["source_control_id"] for i in all_items(admin, golden["id"])] == [active, plain, retired]
    assert len(all_items(admin, golden["id"], version=1)) == 2  # the old version never changes

    missing = admin.post(
        "/api/v1/golden-sets",
        json={"project_id": project_id, "name": "bad", "from_controls": {"tags": ["x"]}},
    )
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "validation_error"


def test_from_reviews_and_from_controls_together_add_a_decision_once(admin: httpx.Client) -> None:
    project_id = make_project(admin)
    review = enqueue(admin, project_id, query="Is this fund guaranteed?")
    made = decide(admin, review["id"], "non_compliant")
    golden = create(
        admin,
        project_id,
        from_reviews={"evaluator_type": "policy-adherence"},
        from_controls={"evaluator_type": "policy-adherence"},
    )
    [only] = all_items(admin, golden["id"])
    assert (only["source_review_id"], only["source_control_id"]) == (review["id"], made)


GOOD_CSV = (
    "query,response,context,expected,evaluator_type,tags,metadata\n"
    'question 1,answer 1,,compliant,,"guarantees, funds","{""source"": ""audit""}"\n'
    '"question 2, with a comma","answer 2\nover two lines",ctx,non_compliant,policy-adherence,,\n'
    "\n"
    "question 3,answer 3,,compliant,,,\n"
)


def post_csv(client: httpx.Client, set_id: str, text: str, **params: Any) -> httpx.Response:
    return client.post(
        f"/api/v1/golden-sets/{set_id}/versions/csv",
        content=text.encode(),
        headers={"content-type": "text/csv"},
        params=params,
    )


def test_a_csv_body_makes_the_next_version(admin: httpx.Client) -> None:
    project_id = make_project(admin)
    golden = create(admin, project_id, items=[item(0)])
    response = post_csv(admin, golden["id"], GOOD_CSV)
    assert response.status_code == 201, response.text
    assert (response.json()["version"], response.json()["item_count"]) == (2, 4)
    found = all_items(admin, golden["id"])[1:]
    assert [(i["query"], i["response"], i["context"], i["expected"], i["evaluator_type"]) for i in found] == [
        ("question 1", "answer 1", None, "compliant", None),
        ("question 2, with a comma", "answer 2\nover two lines", "ctx", "non_compliant", "policy-adherence"),
        ("question 3", "answer 3", None, "compliant", None),
    ]
    assert (found[0]["tags"], found[0]["metadata"]) == (["guarantees", "funds"], {"source": "audit"})
    assert (found[2]["tags"], found[2]["metadata"]) == ([], None)

    rebuilt = post_csv(admin, golden["id"], "expected,query,response\ncompliant,q,r\n", mode="replace")
    assert (rebuilt.json()["version"], rebuilt.json()["item_count"]) == (3, 1)


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("query,response\nq,r\n", 1, "expected"),
        ("query,response,expected,colour\nq,r,c,blue\n", 1, "colour"),
        ("query,response,expected\nq,r,compliant\nq2,,\n", 3, "expected"),
        ("query,response,expected\nq,r,compliant\nq2,r2\n", 3, None),
        ('query,response,expected,tags\n"multi\nline",r,compliant,Not A Slug!\n', 2, "tags"),
        ("query,response,expected,metadata\nq,r,compliant,{not json\n", 2, "metadata"),
        ("query,response,expected,metadata\nq,r,compliant,[1]\n", 2, "metadata"),
        ("query,response,expected\n", 2, None),
    ],
)
def test_a_bad_csv_row_is_a_422_naming_its_line_and_column_and_nothing_is_written(
    admin: httpx.Client, text: str, line: int, column: str | None
) -> None:
    project_id = make_project(admin)
    golden = create(admin, project_id, items=[item(0)])
    response = post_csv(admin, golden["id"], text)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"] == {"line": line, "column": column}
    assert f"line {line}" in error["message"]
    shown = admin.get(f"/api/v1/golden-sets/{golden['id']}").json()
    assert (shown["version"], shown["item_count"]) == (1, 1)
