"""The tutorial, steps 3 to 8, as a user runs it: ``examples/tutorial.py`` against ``casework serve``, with
OpenInference tracing the app's OpenAI calls. A local OpenAI-compatible server answers both the app (a bank
agent) and the judge."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.judge_server import JudgeServer, human_message, system_message
from tests.support import serving


def tutorial_judge(body: dict[str, Any]) -> dict[str, Any]:
    system, human = system_message(body), human_message(body)
    if "senior compliance auditor" in system:  # the re-evaluation, with {memories}
        if "Classification: non_compliant" in human and "guaranteed" in human.lower():
            return {
                "classification": "non_compliant",
                "confidence": 0.92,
                "explanation": "As the expert ruled.",
            }
        return {"classification": "ambiguous", "confidence": 0.35, "explanation": "Still borderline."}
    if "compliance auditor" in system:
        if "transfer" in human:
            return {"classification": "compliant", "confidence": 0.9, "explanation": "Sent to a branch."}
        return {"classification": "ambiguous", "confidence": 0.42, "explanation": "Borderline."}
    if "incorrect" in system + human:
        return {"classification": "correct", "confidence": 0.9, "explanation": "Accurate."}
    return {"classification": "ambiguous", "confidence": 0.3, "explanation": "Unsure."}


def test_the_tutorial_runs_as_written(
    env: dict[str, str], judge_server: JudgeServer, repo_root: Path
) -> None:
    judge_server.reply = tutorial_judge
    env = {**env, "OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": f"{judge_server.base_url}/v1"}
    with serving(env) as (url, _output):
        key = (Path(env["CASEWORK_HOME"]) / "admin-key").read_text().strip()
        with httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=30) as client:
            # Another evaluator's review, without a confidence, waits first in the queue: the tutorial must
            # leave it alone.
            project_id = client.post("/api/v1/projects", json={"name": "hitl-demo"}).json()["id"]
            client.post(
                "/api/v1/hitl/reviews",
                json={
                    "project_id": project_id,
                    "evaluator_type": "tone",
                    "options": ["warm", "cold"],
                    "query": "Hello?",
                    "response": "What.",
                    "priority": 10,
                },
            ).raise_for_status()

        def tutorial() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, str(repo_root / "examples" / "tutorial.py")],
                env={**env, "CASEWORK_API_KEY": key, "CASEWORK_BASE_URL": url},
                capture_output=True,
                text=True,
                timeout=180,
            )

        result = tutorial()
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout
        assert "Pending reviews: 2" in out
        assert out.count("Feedback submitted: accepted") == 2
        assert "Pending reviews after feedback: 0" in out
        assert "Total controls: 2" in out

        with httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=30) as client:
            project = next(
                p for p in client.get("/api/v1/projects").json()["projects"] if p["name"] == "hitl-demo"
            )
            controls = client.get("/api/v1/controls", params={"project_id": project["id"]}).json()["controls"]
            guaranteed = next(c for c in controls if "guaranteed-returns" in c["tags"])
            assert "guaranteed returns" in guaranteed["query"]  # the expert's decision is on the right case
            evaluations = client.get(
                "/api/v1/evaluations",
                params={"project_id": project["id"], "evaluator_type": "policy-adherence"},
            ).json()["evaluations"]
            broker = next(e for e in evaluations if "broker" in e["query"])
            assert (broker["classification"], broker["ambiguous"], broker["reevaluated"]) == (
                "non_compliant",
                False,
                True,
            )
            assert guaranteed["id"] in broker["memory_control_ids"]
            assert broker["trace_id"] and broker["run_id"]
            traces = client.get("/api/v1/traces", params={"project_id": project["id"]}).json()["traces"]
            assert len(traces) == 4  # one per chat call, traced by OpenInference
        again = tutorial()  # on the state the first run left, it still runs to the end
        assert again.returncode == 0, again.stdout + again.stderr
    # The judge saw the expert's reasoning in {memories}, exactly as the tutorial shows it.
    reeval = next(
        human_message(r)
        for r in judge_server.requests
        if "My broker promised me" in human_message(r) and "senior compliance auditor" in system_message(r)
    )
    assert "Reviewer: compliance@bank.example | Classification: non_compliant\n" in reeval
    assert "  \"The customer referenced 'guaranteed returns' from their financial" in reeval
    # The app's own calls went to the same OpenAI-compatible server, untouched.
    assert len(judge_server.chat_requests) == 8
