"""The README's Python client code runs as printed, on a project whose queue holds what it must leave alone."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

import casework
from tests.support import Tenant, enqueue


def test_the_readmes_client_loop_decides_only_what_it_should(
    repo_root: Path, tenant: Tenant, admin: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (repo_root / "README.md").read_text(), re.S)
    code = next(block for block in blocks if "casework.Client()" in block)
    project_id = admin.post("/api/v1/projects", json={"name": "hitl-demo"}).json()["id"]
    # First in the queue: another evaluator's review (other options) without a confidence, then the case.
    other = enqueue(
        admin, project_id, evaluator_type="tone", options=["warm", "cold"], confidence=None, priority=9
    )
    case = enqueue(admin, project_id, query="My broker promised guaranteed returns. True?", priority=5)
    monkeypatch.setenv("CASEWORK_API_KEY", tenant.keys["reviewer"])
    monkeypatch.setenv("CASEWORK_BASE_URL", tenant.base_url)
    namespace = {"casework": casework}
    exec(compile(code, "README.md", "exec"), namespace)
    namespace["client"].close()
    assert (
        admin.get(f"/api/v1/hitl/reviews/{case['id']}").json()["resolution"]["classification"]
        == "non_compliant"
    )
    assert admin.get(f"/api/v1/hitl/reviews/{other['id']}").json()["status"] == "pending"
