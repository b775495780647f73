"""casework.Client against a real server, as an engineer would use it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import casework
from casework import errors
from tests.judge_server import JudgeServer, confident
from tests.support import POLICY_EVALUATOR, Tenant, free_port


@pytest.fixture
def client(tenant: Tenant) -> Iterator[casework.Client]:
    with casework.Client(api_key=tenant.keys["reviewer"], base_url=tenant.base_url) as client:
        yield client


def test_the_public_face() -> None:
    assert casework.__all__ == [
        "AsyncClient",
        "Client",
        "CustomEvaluator",
        "Evaluators",
        "Session",
        "__version__",
        "errors",
        "init",
    ]
    assert "correctness" in casework.Evaluators.BUILTIN


def test_reads_its_settings_from_the_environment(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEWORK_API_KEY", tenant.keys["viewer"])
    monkeypatch.setenv("CASEWORK_BASE_URL", tenant.base_url)
    with casework.Client() as client:
        assert client.workspace()["name"] == tenant.name


def test_the_review_loop(client: casework.Client) -> None:
    project = client.project("hitl-demo")
    assert client.project("hitl-demo") == project
    for i in range(3):
        client.enqueue_review(
            project["id"],
            evaluator_type="policy-adherence",
            query=f"case {i}",
            response="r",
            options=["compliant", "non_compliant"],
            priority=i,
        )
    pending = list(client.iter_reviews(project["id"], page_size=2))
    assert [r["query"] for r in pending] == ["case 2", "case 1", "case 0"]
    accepted = client.submit_feedback(
        pending[0]["id"],
        classification="non_compliant",
        reasoning="Because.",
        reviewer="[email protected]",
        tags=["why"],
    )
    assert accepted["status"] == "accepted"
    with pytest.raises(errors.ReviewAlreadyResolved) as raised:
        client.submit_feedback(pending[0]["id"], classification="compliant", reasoning="No.", reviewer="x")
    assert raised.value.details["resolution"]["classification"] == "non_compliant"
    with pytest.raises(errors.ValidationFailed) as invalid:
        client.submit_feedback(pending[1]["id"], classification="maybe", reasoning="?", reviewer="x")
    assert invalid.value.details["allowed"] == ["compliant", "non_compliant"]
    with pytest.raises(errors.ReviewNotFound):
        client.get_review("rev_nope")

    exported = list(client.export_reviews(project["id"]))
    assert [r["id"] for r in exported] == [r["id"] for r in pending[1:]]
    result = client.bulk_feedback(
        [
            {"review_id": r["id"], "classification": "compliant", "reasoning": "Fine.", "reviewer": "x"}
            for r in exported
        ]
    )
    assert (result["accepted"], result["rejected"]) == (2, 0)

    controls = list(client.iter_controls(project["id"], page_size=1))
    assert len(controls) == 3
    edited = client.update_control(accepted["control_id"], tags=["why", "edited"])
    assert edited["version"] == 2
    assert [v["version"] for v in client.control_history(accepted["control_id"])] == [2, 1]
    assert client.retire_control(accepted["control_id"])["status"] == "retired"
    assert len(list(client.iter_controls(project["id"]))) == 2


def test_evaluate_with_a_custom_evaluator(client: casework.Client, judge_server: JudgeServer) -> None:
    project = client.project("evaluations")
    policy = casework.Evaluators.custom(**{k: v for k, v in POLICY_EVALUATOR.items()})  # type: ignore[arg-type]
    judge_server.reply = confident("compliant", 0.9)
    [evaluation] = client.evaluate(
        project["id"], [policy], query="Can I close my account?", response="Yes, here is how."
    )
    assert (evaluation["evaluator_type"], evaluation["classification"]) == ("policy-adherence", "compliant")


def test_trust_settings_reach_the_server(client: casework.Client) -> None:
    project = client.project("trust-settings")
    severity = casework.Evaluators.custom(
        **{**POLICY_EVALUATOR, "name": "severity", "options": ["low", "medium", "high"]},  # type: ignore[arg-type]
        ambiguity_threshold="auto",
        target_agreement=0.9,
        memory_mode="suggest",
        memory_precision_target=0.99,
        spot_check_rate=0.1,
        reviewers_required=2,
        ordered=True,
    )
    sent = severity.to_request(project["id"])
    registered = client.register_evaluator(project["id"], severity)
    # "auto" is a mode on the server; every other setting comes back as it was sent
    assert sent.pop("ambiguity_threshold") == "auto" and registered["ambiguity_mode"] == "auto"
    assert {key: registered[key] for key in sent} == sent


def test_a_bad_definition_fails_before_any_request() -> None:
    with pytest.raises(errors.ValidationFailed, match="memories"):
        casework.Evaluators.custom(
            name="x",
            options=["a", "b"],
            evaluation_system_prompt="s {query}",
            evaluation_human_prompt="h {response}",
            reeval_system_prompt="s",
            reeval_human_prompt="h {query}",
        )


def test_a_wrong_key_or_a_missing_server_say_which(tenant: Tenant) -> None:
    with (
        casework.Client(api_key="cw_sk_wrong", base_url=tenant.base_url) as client,
        pytest.raises(errors.Unauthenticated),
    ):
        client.workspace()
    unreachable = f"http://127.0.0.1:{free_port()}"
    with (
        casework.Client(api_key="k", base_url=unreachable) as client,
        pytest.raises(errors.ServiceUnavailable, match="Cannot reach Casework"),
    ):
        client.workspace()


def test_init_says_which_is_wrong_the_key_or_the_server(tenant: Tenant) -> None:
    with pytest.raises(errors.Unauthenticated, match="rejected the API key"):
        casework.init("p", "r", api_key="cw_sk_wrong", base_url=tenant.base_url, set_global=False)
    with pytest.raises(errors.ServiceUnavailable, match="not reachable"):
        casework.init(
            "p", "r", api_key="cw_sk_x", base_url=f"http://127.0.0.1:{free_port()}", set_global=False
        )
    with pytest.raises(errors.PermissionDenied, match="CASEWORK_WORKSPACE_ID"):
        casework.init(
            "p",
            "r",
            api_key=tenant.keys["admin"],
            base_url=tenant.base_url,
            workspace_id="other",
            set_global=False,
        )


def test_init_attaches_evaluators_to_the_run(tenant: Tenant) -> None:
    policy = casework.Evaluators.custom(**{k: v for k, v in POLICY_EVALUATOR.items() if k != "project_id"})
    session = casework.init(
        "traced-app",
        "run-1",
        evaluators=["correctness", policy],
        api_key=tenant.keys["reviewer"],
        base_url=tenant.base_url,
        workspace_id=tenant.name,
        set_global=False,
    )
    try:
        run = session.client.run(session.project_id, "run-1")
        assert (run["id"], run["evaluators"]) == (session.run_id, ["correctness", "policy-adherence"])
        session.flush(timeout=10)  # nothing sent yet: returns at once
    finally:
        session.shutdown()


def test_the_async_client(tenant: Tenant) -> None:
    async def main() -> None:
        async with casework.AsyncClient(api_key=tenant.keys["reviewer"], base_url=tenant.base_url) as client:
            project = await client.project("async")
            review = await client.enqueue_review(
                project["id"], evaluator_type="e", query="q", response="r", options=["yes", "no"]
            )
            pending = [r async for r in client.iter_reviews(project["id"], page_size=1)]
            assert [r["id"] for r in pending] == [review["id"]]
            accepted = await client.submit_feedback(
                review["id"], classification="yes", reasoning="Why.", reviewer="me"
            )
            assert accepted["status"] == "accepted"
            assert [c["id"] async for c in client.iter_controls(project["id"])] == [accepted["control_id"]]
            exported = [r async for r in client.export_reviews(project["id"], status="resolved")]
            assert [r["id"] for r in exported] == [review["id"]]
            with pytest.raises(errors.ReviewNotFound):
                await client.get_review("rev_missing")

    with ThreadPoolExecutor(1) as pool:  # the browser tests' Playwright may own this thread's event loop
        pool.submit(lambda: asyncio.run(main())).result()


def test_golden_sets_from_python(tenant: Tenant, judge_server: JudgeServer) -> None:
    judge_server.reply = confident("compliant")
    with casework.Client(api_key=tenant.keys["admin"], base_url=tenant.base_url) as admin:
        project_id = admin.project("golden-sdk")["id"]
        admin.register_evaluator(project_id, casework.Evaluators.custom(**POLICY_EVALUATOR))
        golden = admin.create_golden_set(
            project_id, "policy", items=[{"query": "q", "response": "r", "expected": "compliant"}]
        )
        assert [s["id"] for s in admin.golden_sets(project_id)] == [golden["id"]]
        assert (
            admin.add_golden_version(
                golden["id"], items=[{"query": "q2", "response": "r", "expected": "non_compliant"}]
            )["version"]
            == 2
        )
        with pytest.raises(errors.GoldenSetExists):
            admin.create_golden_set(
                project_id, "policy", items=[{"query": "q", "response": "r", "expected": "compliant"}]
            )

        async def run_it() -> dict[str, Any]:
            async with casework.AsyncClient(api_key=tenant.keys["admin"], base_url=tenant.base_url) as client:
                run = await client.start_golden_run(golden["id"], ["policy-adherence"], memory=False)
                for _ in range(400):  # 20 s at most
                    if run["status"] == "completed":
                        break
                    await asyncio.sleep(0.05)
                    run = await client.golden_run(golden["id"], run["id"])
                return run

        with ThreadPoolExecutor(max_workers=1) as pool:
            run = pool.submit(lambda: asyncio.run(run_it())).result()
        assert run["metrics"][0]["accuracy"] == 0.5
