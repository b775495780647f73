"""The SDK installs on its own, without the server's dependencies, and the seed tutorial's SDK calls work
with it against a server: what an application's environment gets from `pip install casework`."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support import POLICY_EVALUATOR, Tenant

SERVER_ONLY = ["fastapi", "sqlalchemy", "uvicorn", "psycopg", "alembic", "openai", "jinja2"]


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_the_sdk_installs_alone_and_runs_the_tutorials_calls(
    tmp_path: Path, repo_root: Path, tenant: Tenant
) -> None:
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the work tree
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo_root / name, source / name)
    shutil.copytree(
        repo_root / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__")
    )
    venv = tmp_path / "app-venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    # The installer that made the test environment (uv, else pip) installs into the new one, from the same
    # index: it resolves the distribution's own dependencies, as `pip install casework` does.
    if importlib.util.find_spec("uv"):
        run(sys.executable, "-m", "uv", "pip", "install", "--quiet", "--python", python, source)
    else:
        run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", source)

    missing = run(
        python,
        "-c",
        f"import importlib.util; print([m for m in {SERVER_ONLY!r} if importlib.util.find_spec(m)])",
    )
    assert missing.stdout.strip() == "[]"
    hint = subprocess.run([venv / "bin" / "casework", "serve"], capture_output=True, text=True, timeout=60)
    assert hint.returncode == 1 and "pip install 'casework[server]'" in hint.stderr

    prompts = {k: v for k, v in POLICY_EVALUATOR.items() if k.endswith("_prompt")}
    script = textwrap.dedent(
        f"""
        import os
        import httpx
        import casework
        from casework import Evaluators

        policy_evaluator = Evaluators.custom(
            name="policy-adherence", options=["compliant", "non_compliant"], **{prompts!r}
        )
        session = casework.init(
            project_name="hitl-demo",
            run_name="feedback-loop-demo",
            evaluators=["correctness", policy_evaluator],
        )
        headers = {{"x-api-key": os.environ["CASEWORK_API_KEY"], "Content-Type": "application/json"}}
        response = httpx.get(
            f"{{os.environ['CASEWORK_BASE_URL']}}/api/v1/hitl/reviews",
            headers=headers,
            params={{"project_id": session.project_id, "status": "pending"}},
        )
        print("project", session.project_id, "pending", len(response.json()["reviews"]))
        evaluators = httpx.get(
            f"{{os.environ['CASEWORK_BASE_URL']}}/api/v1/evaluators",
            headers=headers,
            params={{"project_id": session.project_id}},
        ).json()["evaluators"]
        print("evaluators", sorted(e["name"] for e in evaluators))
        session.shutdown()
        """
    )
    env = {
        "CASEWORK_API_KEY": tenant.keys["admin"],
        "CASEWORK_BASE_URL": tenant.base_url,
        "PATH": "/usr/bin:/bin",
    }
    out = run(python, "-c", script, env=env).stdout
    assert "pending 0" in out and "project prj_" in out
    assert "evaluators ['correctness', 'policy-adherence']" in out
