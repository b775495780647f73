"""The ``casework`` command, run as a user runs it: a real process, real environment variables."""

from __future__ import annotations

import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import serving


def casework(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "casework", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_first_start_prints_and_stores_the_admin_key_once(env: dict[str, str]) -> None:
    key_file = Path(env["CASEWORK_HOME"]) / "admin-key"
    with serving(env) as (url, output):
        key = key_file.read_text().strip()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        workspace = httpx.get(f"{url}/api/v1/workspaces/current", headers={"x-api-key": key}).json()
        assert workspace["name"] == "default"
        assert_the_demo_shows_the_loop(url, key)
        # A browser signs in with a link from `casework login-link`, once.
        link = casework("login-link", "--key-label", "admin", env=env).stdout.strip()
        assert link.startswith(f"{url}/login?token=")
        with httpx.Client() as browser:
            assert browser.get(link).status_code == 303
            assert "bank-support-demo" in browser.get(f"{url}/", headers={"accept": "text/html"}).text
        assert httpx.get(link).status_code == 401
    text = "\n".join(output)
    assert key in text
    assert url in text
    assert str(key_file) in text
    assert f"{url}/login?token=" in text  # the first start's sign-in link

    with serving(env) as (url, output):
        assert httpx.get(f"{url}/api/v1/projects", headers={"x-api-key": key}).status_code == 200
    text = "\n".join(output)
    assert key not in text
    assert "casework keys create" in text
    assert key_file.read_text().strip() == key


def test_keys_create_list_revoke(env: dict[str, str], base_url: str) -> None:
    created = casework(
        "keys", "create", "--workspace", "acme", "--role", "viewer", "--name", "ana@acme.test", env=env
    )
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("cw_sk_")
    headers = {"x-api-key": secret}
    assert httpx.get(f"{base_url}/api/v1/workspaces/current", headers=headers).json()["name"] == "acme"
    assert httpx.post(f"{base_url}/api/v1/projects", headers=headers, json={"name": "x"}).status_code == 403

    listed = casework("keys", "list", env=env)
    assert "ana@acme.test" in listed.stdout
    assert secret not in listed.stdout
    key_id = next(line.split()[1] for line in listed.stdout.splitlines() if "ana@acme.test" in line)
    assert key_id.startswith("key_")

    assert casework("keys", "revoke", key_id, env=env).returncode == 0
    assert httpx.get(f"{base_url}/api/v1/projects", headers=headers).status_code == 401
    missing = casework("keys", "revoke", "key_nope", env=env)
    assert missing.returncode == 1
    assert "key_nope" in missing.stderr


def test_db_commands(env: dict[str, str]) -> None:
    assert "head" in casework("db", "upgrade", env=env).stdout
    assert "up to date" in casework("db", "current", env=env).stdout


def test_settings_shows_sources_and_masks_secrets(env: dict[str, str]) -> None:
    env = {**env, "CASEWORK_DATABASE_URL": "postgresql://casework:hunter2@db.internal:5432/casework"}
    result = casework("settings", env=env)
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout
    assert "CASEWORK_DATABASE_URL" in result.stdout
    assert "environment" in result.stdout
    host_line = next(line for line in result.stdout.splitlines() if "CASEWORK_HOST" in line)
    assert "127.0.0.1" in host_line
    assert "default" in host_line


def test_every_command_has_help(env: dict[str, str]) -> None:
    for command in (
        ["serve"],
        ["db", "upgrade"],
        ["db", "current"],
        ["keys", "create"],
        ["keys", "list"],
        ["keys", "revoke"],
        ["settings"],
        ["worker"],
        ["login-link"],
    ):
        result = casework(*command, "--help", env=env)
        assert result.returncode == 0
        assert "Usage" in result.stdout


def assert_the_demo_shows_the_loop(url: str, key: str) -> None:
    """The demo project has borderline cases waiting; deciding one settles its look-alikes by memory."""
    with httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=30) as client:
        projects = client.get("/api/v1/projects").json()["projects"]
        project_id = next(p["id"] for p in projects if p["name"] == "bank-support-demo")

        def pending() -> list[dict[str, object]]:
            reviews: list[dict[str, object]] = client.get(
                "/api/v1/hitl/reviews", params={"project_id": project_id, "limit": 500}
            ).json()["reviews"]
            return reviews

        before = pending()
        assert len(before) == 30
        chosen = next(r for r in before if "guaranteed returns" in str(r["query"]))
        client.post(
            f"/api/v1/hitl/reviews/{chosen['id']}/feedback",
            json={
                "classification": "non_compliant",
                "reviewer": "compliance@bank.example",
                "reasoning": "No investment has guaranteed returns; the agent must correct the customer at once.",
            },
        ).raise_for_status()
        deadline = time.monotonic() + 20
        while len(pending()) > 25:
            assert time.monotonic() < deadline, f"look-alikes not settled: {len(pending())} pending"
            time.sleep(0.1)
        settled = client.get(
            "/api/v1/hitl/reviews", params={"project_id": project_id, "status": "resolved"}
        ).json()
        by_memory = [r for r in settled["reviews"] if r["resolution"]["resolved_by"] == "memory"]
        assert len(by_memory) == 4
        assert all("guaranteed returns" in str(r["query"]) for r in by_memory)


def test_several_workers_serve_together_and_metrics_add_up(env: dict[str, str]) -> None:
    with serving({**env, "CASEWORK_WORKERS": "2"}) as (url, _output):
        key = (Path(env["CASEWORK_HOME"]) / "admin-key").read_text().strip()
        with httpx.Client(base_url=url, headers={"x-api-key": key}) as client:
            for _ in range(20):  # new connections each time: both workers get some
                assert httpx.get(f"{url}/api/v1/projects", headers={"x-api-key": key}).status_code == 200
            text = client.get("/metrics").text
    line = next(
        row
        for row in text.splitlines()
        if row.startswith('casework_http_requests_total{method="GET",route="/api/v1/projects",status="200"}')
    )
    assert float(line.split()[-1]) == 20.0
