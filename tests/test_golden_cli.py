"""`casework golden import` and `casework golden run` against a live server: the run's thresholds decide the
exit code, so a CI pipeline can gate on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from casework.cli import API_FAILED, THRESHOLD_FAILED, app
from casework.db.engine import Database
from casework.db.models import Job
from tests.judge_server import JudgeServer, human_message
from tests.support import POLICY_EVALUATOR, Tenant, make_project

pytestmark = pytest.mark.storage

ANSWERS = ["compliant", "compliant", "non_compliant", "non_compliant"]


def judge_says(verdicts: list[str]) -> Any:
    def reply(body: dict[str, Any]) -> dict[str, Any]:
        case = int(human_message(body).split("case-")[1].split(" ")[0])
        return {"classification": verdicts[case], "confidence": 0.95, "explanation": "planned"}

    return reply


@pytest.fixture
def cli(tenant: Tenant, base_url: str) -> Any:
    runner = CliRunner()
    environment = {"CASEWORK_BASE_URL": base_url, "CASEWORK_API_KEY": tenant.keys["admin"], "COLUMNS": "200"}
    return lambda *args: runner.invoke(app, list(args), env=environment)


@pytest.fixture
def imported(admin: httpx.Client, cli: Any, tmp_path: Path) -> str:
    project_id = make_project(admin, "cli-golden")
    assert (
        admin.post("/api/v1/evaluators", json={"project_id": project_id, **POLICY_EVALUATOR}).status_code
        == 201
    )
    lines = [
        json.dumps({"query": f"case-{i} question", "response": f"answer {i}", "expected": answer})
        for i, answer in enumerate(ANSWERS)
    ]
    path = tmp_path / "golden.jsonl"
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    result = cli("golden", "import", "cli-golden", "policy", str(path))
    assert result.exit_code == 0, result.output
    assert "version 1, 4 items" in result.output
    again = cli("golden", "import", "cli-golden", "policy", str(path), "--replace")
    assert again.exit_code == 0 and "version 2, 4 items" in again.output, again.output
    return project_id


def test_a_run_that_meets_its_thresholds_exits_zero_and_one_that_does_not_exits_one(
    cli: Any, imported: str, judge_server: JudgeServer, database: Database
) -> None:
    judge_server.reply = judge_says(ANSWERS)
    result = cli(
        "golden",
        "run",
        "policy",
        "--project",
        "cli-golden",
        "--evaluator",
        "policy-adherence",
        "--no-memory",
        "--fail-under",
        "kappa=0.6",
        "--fail-over",
        "ambiguity_rate=0.2",
        "--requests-per-second",
        "100",
    )
    assert result.exit_code == 0, result.output
    assert "policy-adherence:1" in result.output and "passed" in result.output
    with database.transaction(write=False) as session:
        [payload] = session.execute(select(Job.payload).where(Job.kind == "golden.run")).scalars()
    assert payload["requests_per_second"] == 100  # the run's jobs carry its rate limit to the worker

    # One item wrong of four: accuracy 0.75; kappa = (3/4 - 1/2) / (1 - 1/2) = 0.5, under 0.6.
    judge_server.reply = judge_says(["compliant", "compliant", "non_compliant", "compliant"])
    failed = cli(
        "golden",
        "run",
        "policy",
        "--project",
        "cli-golden",
        "-e",
        "policy-adherence",
        "--no-memory",
        "--fail-under",
        "kappa=0.6",
        "--json",
    )
    assert failed.exit_code == THRESHOLD_FAILED, failed.output
    report = json.loads(failed.output)
    [metrics] = report["metrics"]
    assert (metrics["accuracy"], metrics["kappa"]) == (0.75, 0.5)
    assert metrics["cli_thresholds"] == [
        {"metric": "kappa", "operator": ">=", "value": 0.6, "actual": 0.5, "passed": False}
    ]
    assert report["passed"] is False and metrics["diff"]["worse"] == 1


def test_the_set_s_own_thresholds_fail_the_command_too(
    admin: httpx.Client, cli: Any, imported: str, judge_server: JudgeServer
) -> None:
    [golden] = admin.get("/api/v1/golden-sets", params={"project_id": imported}).json()["golden_sets"]
    assert (
        admin.patch(
            f"/api/v1/golden-sets/{golden['id']}", json={"thresholds": {"accuracy": {">=": 0.9}}}
        ).status_code
        == 200
    )
    judge_server.reply = judge_says(["compliant", "compliant", "non_compliant", "compliant"])
    result = cli("golden", "run", golden["id"], "-e", "policy-adherence", "--no-memory")
    assert result.exit_code == THRESHOLD_FAILED, result.output
    assert "FAIL" in result.output and "accuracy >= 0.9" in result.output


def test_mistakes_exit_two_with_one_clear_line(cli: Any, imported: str) -> None:
    unknown = cli("golden", "run", "policy", "--project", "cli-golden", "-e", "nobody")
    assert unknown.exit_code == API_FAILED and "evaluator_not_found" in unknown.output
    bad = cli(
        "golden",
        "run",
        "policy",
        "--project",
        "cli-golden",
        "-e",
        "policy-adherence",
        "--fail-under",
        "kappa",
    )
    assert bad.exit_code == API_FAILED
    metric = cli(
        "golden",
        "run",
        "policy",
        "--project",
        "cli-golden",
        "-e",
        "policy-adherence",
        "--fail-under",
        "precision=0.9",
    )
    assert metric.exit_code == API_FAILED and "precision" in metric.output


def test_import_reads_csv_and_names_the_line_and_column_of_a_bad_row(
    admin: httpx.Client, cli: Any, tmp_path: Path
) -> None:
    project_id = make_project(admin, "cli-csv")
    good = tmp_path / "golden.csv"
    good.write_text(
        "query,response,expected,tags\ncase-0 question,answer 0,compliant,a;b\ncase-1 question,answer 1,"
        "non_compliant,\n",
        encoding="utf-8",
    )
    result = cli("golden", "import", "cli-csv", "from-csv", str(good))
    assert result.exit_code == 0, result.output
    assert "version 1, 2 items" in result.output

    bad = tmp_path / "bad.csv"
    bad.write_text("query,response,expected\nq,r,compliant\nq2,r2,\n", encoding="utf-8")
    failed = cli("golden", "import", "cli-csv", "from-csv", str(bad))
    assert failed.exit_code == API_FAILED
    assert "line 3" in failed.output and "'expected'" in failed.output
    [golden] = admin.get("/api/v1/golden-sets", params={"project_id": project_id}).json()["golden_sets"]
    assert (golden["version"], golden["item_count"]) == (1, 2)


def test_a_run_that_fails_exits_two_with_its_error(
    cli: Any, imported: str, judge_server: JudgeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from casework.services import golden_runs

    def broken(_outcomes: Any) -> Any:
        raise RuntimeError("the metrics broke")

    monkeypatch.setattr(golden_runs, "measure", broken)
    judge_server.reply = judge_says(ANSWERS)
    result = cli(
        "golden", "run", "policy", "--project", "cli-golden", "-e", "policy-adherence", "--no-memory"
    )
    assert result.exit_code == API_FAILED, result.output
    assert "failed" in result.output and "the metrics broke" in result.output


def test_model_runs_each_evaluator_with_another_model(
    cli: Any, imported: str, judge_server: JudgeServer
) -> None:
    judge_server.reply = judge_says(ANSWERS)
    result = cli(
        "golden",
        "run",
        "policy",
        "--project",
        "cli-golden",
        "-e",
        "policy-adherence",
        "--no-memory",
        "--model",
        "other-model",
        "--json",
    )
    assert result.exit_code == 0, result.output
    [metrics] = json.loads(result.output)["metrics"]
    assert (metrics["model"], metrics["model_override"], metrics["accuracy"]) == ("other-model", True, 1.0)
    assert {body["model"] for body in judge_server.requests} == {"other-model"}
