"""The ``casework`` command, run as a user runs it: a real process, real environment variables."""

from __future__ import annotations

import inspect
import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from casework.cli import KeyRole, app
from casework.db.engine import Database
from casework.db.models import Event
from casework.services.auth import Role
from tests.support import POSTGRES_ADMIN_URL, serving, wait_for


def casework(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "casework", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_a_server_that_does_not_start_is_reported_before_pytest_gives_up(pytestconfig: pytest.Config) -> None:
    """``serving``'s failure shows what the server printed; pytest-timeout's would not. So a start that fails
    (the wait, then the stop that follows) must end well before the test's timeout (pyproject.toml) does."""
    timeout = float(pytestconfig.getini("timeout"))
    stopping = 30 + 10  # serving's wait for the process to end, then for its output
    assert inspect.signature(serving).parameters["ready_within"].default + stopping < timeout


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
        token = link.split("token=", 1)[1]
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
    assert "Judge: no judge model: OPENAI_API_KEY is not set" in text
    assert "GET /login?token=… HTTP/1.1" in text  # the access log names the request, not its secret
    assert token not in text

    with serving(env) as (url, output):
        assert httpx.get(f"{url}/api/v1/projects", headers={"x-api-key": key}).status_code == 200
    text = "\n".join(output)
    assert key not in text
    assert "casework keys create" in text
    assert key_file.read_text().strip() == key


def test_keys_create_list_revoke(env: dict[str, str], base_url: str, database: Database) -> None:
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
    key_id = next(line.split()[0] for line in listed.stdout.splitlines() if "ana@acme.test" in line)
    assert key_id.startswith("key_")

    assert casework("keys", "revoke", key_id, env=env).returncode == 0
    assert httpx.get(f"{base_url}/api/v1/projects", headers=headers).status_code == 401
    # Both are in the workspace's audit trail, said to come from the command line, without the secret.
    with database.transaction(write=False) as session:
        events = session.execute(select(Event).where(Event.object_id == key_id).order_by(Event.seq)).scalars()
        recorded = [(e.type, e.actor, e.project_id, json.dumps(e.data)) for e in events]
    assert [r[0] for r in recorded] == ["api_key.created", "api_key.revoked"]
    assert all(r[1].endswith("(command line)") and r[2] is None and secret not in r[3] for r in recorded)
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
    lines = result.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("CASEWORK_HOST "))
    assert lines[at] == "CASEWORK_HOST = 127.0.0.1"
    assert lines[at + 1].strip().startswith("(default)")


def test_every_command_has_help() -> None:
    """In this process (each command's --help exits before any work): the other tests start real processes."""
    runner = CliRunner()
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
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert "Usage" in result.output


def assert_the_demo_shows_the_loop(url: str, key: str) -> None:
    """The demo project has borderline cases waiting; deciding one gives its look-alikes memory's suggestion
    (memory has no evidence yet, so it suggests rather than decides)."""
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

        def suggested() -> list[dict[str, Any]]:
            return [r for r in pending() if r["suggestion"]]

        deadline = time.monotonic() + 60
        while len(suggested()) < 4:
            assert time.monotonic() < deadline, f"look-alikes have no suggestion: {len(suggested())} of 4"
            time.sleep(0.1)
        found = suggested()
        assert len(pending()) == 29 and len(found) == 4
        assert all("guaranteed returns" in str(r["query"]) for r in found)
        assert {r["suggestion"]["classification"] for r in found} == {"non_compliant"}


def test_several_workers_serve_together_and_metrics_add_up(env: dict[str, str]) -> None:
    with serving({**env, "CASEWORK_WORKERS": "2"}) as (url, _output):
        key = (Path(env["CASEWORK_HOME"]) / "admin-key").read_text().strip()
        with httpx.Client(base_url=url, headers={"x-api-key": key}) as client:
            for _ in range(20):  # new connections each time: both workers get some
                assert httpx.get(f"{url}/api/v1/projects", headers={"x-api-key": key}).status_code == 200

            def counted() -> float:
                # A request is counted once its answer has gone out: the last one may be counted a moment after
                # the client has it.
                return next(
                    float(row.split()[-1])
                    for row in client.get("/metrics").text.splitlines()
                    if row.startswith(
                        'casework_http_requests_total{method="GET",route="/api/v1/projects",status="200"}'
                    )
                )

            wait_for(lambda: counted() >= 20, message="the two workers' requests were not all counted")
            assert counted() == 20.0


def test_the_data_folder_and_database_are_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    assert casework("db", "upgrade", env={**env, "CASEWORK_HOME": str(home)}).returncode == 0
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "casework.db").stat().st_mode) == 0o600


def test_an_existing_data_folder_is_made_private_when_it_is_casework_s_own(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    env["CASEWORK_HOME"] = str(home)
    for _first_start_or_later in range(2):  # empty, then holding the database made by the first start
        os.chmod(home, 0o755)
        started = casework("db", "upgrade", env=env)
        assert started.returncode == 0, started.stderr
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
    # A folder that holds other files too (a home directory, a shared folder) is not ours to change.
    (home / "notes.txt").write_text("someone else's")
    os.chmod(home, 0o755)
    started = casework("db", "upgrade", env=env)
    assert started.returncode == 0, started.stderr
    assert stat.S_IMODE(home.stat().st_mode) == 0o755
    assert f"{home} can be read by other users" in " ".join(started.stderr.split())


def test_keys_list_and_settings_fit_80_columns_and_speak_json(env: dict[str, str]) -> None:
    env = {
        **env,
        "COLUMNS": "80",
        "OPENAI_API_KEY": "sk-secret-judge",
        "OPENAI_BASE_URL": "http://judge.test/v1",
    }
    created = casework(
        "keys", "create", "--role", "viewer", "--name", "a-rather-long-label@bank.example", env=env
    )
    key_id = created.stderr.split(" key ", 1)[1].split()[0]
    listed = casework("keys", "list", env=env).stdout
    assert max(len(line) for line in listed.splitlines()) <= 80
    assert any(line.split()[0] == key_id for line in listed.splitlines())  # whole, as `keys revoke` takes it
    keys = json.loads(casework("keys", "list", "--json", env=env).stdout)["keys"]
    assert {"id": key_id, "role": "viewer", "revoked_at": None}.items() <= next(
        k for k in keys if k["id"] == key_id
    ).items()

    shown = casework("settings", env=env).stdout
    long_values = ("CASEWORK_HOME", "CASEWORK_DATABASE_URL", "CASEWORK_SECRET_KEY")  # paths stay whole
    assert all(len(line) <= 80 for line in shown.splitlines() if not line.startswith(long_values))
    assert "OPENAI_BASE_URL = http://judge.test/v1" in shown
    assert "OPENAI_API_KEY = set" in shown and "sk-secret-judge" not in shown
    assert "default model = gpt-4o-mini" in shown
    document = json.loads(casework("settings", "--json", env=env).stdout)
    assert {s["variable"] for s in document["settings"]} >= {"CASEWORK_PORT", "CASEWORK_PUBLIC_URL"}
    assert document["judge"]["OPENAI_API_KEY"] == "set"


def test_an_invalid_setting_is_one_clear_line_before_anything_is_written(tmp_path: Path) -> None:
    home = tmp_path / "home"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    for variable, value, expected in [
        ("CASEWORK_PORT", "abc", "CASEWORK_PORT=abc is not valid"),
        ("CASEWORK_LOG_LEVEL", "verbose", "'debug', 'info', 'warning' or 'error'"),
        ("CASEWORK_PUBLIC_URL", "casework.example", "http:// or https://"),
    ]:
        result = casework("serve", env={**clean, "CASEWORK_HOME": str(home), variable: value})
        assert result.returncode == 2
        assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    assert (
        "a whole number from 0 to 65535"
        in casework("settings", env={**clean, "CASEWORK_PORT": "99999"}).stderr
    )
    assert not home.exists()


def test_commands_do_not_make_a_new_database_where_there_is_none(tmp_path: Path) -> None:
    home = tmp_path / "elsewhere"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")} | {
        "CASEWORK_HOME": str(home)
    }
    for command in (
        ["keys", "create", "--name", "x"],
        ["keys", "list"],
        ["login-link", "--key-label", "admin"],
    ):
        result = casework(*command, env=env)
        assert result.returncode == 1
        assert f"no Casework database at {home / 'casework.db'}" in result.stderr.replace("\n", " ")
        assert "CASEWORK_HOME" in result.stderr
    assert not (home / "casework.db").exists()


def test_a_postgresql_database_that_does_not_exist_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    missing = make_url(POSTGRES_ADMIN_URL).set(database="casework_no_such_database").render_as_string(False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")} | {
        "CASEWORK_HOME": str(tmp_path / "home"),
        "CASEWORK_DATABASE_URL": missing,
    }
    result = casework("keys", "list", env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 3, result.stderr
    assert "Cannot open the database" in result.stderr and "does not exist" in result.stderr


def test_links_use_the_public_url_or_an_address_a_browser_can_open(env: dict[str, str]) -> None:
    casework("keys", "create", "--name", "ana", env=env)
    public = casework(
        "login-link", "--key-label", "ana", env={**env, "CASEWORK_PUBLIC_URL": "https://cw.example/"}
    )
    assert public.stdout.startswith("https://cw.example/login?token=")
    wildcard = casework("login-link", "--key-label", "ana", env={**env, "CASEWORK_HOST": "0.0.0.0"})
    assert wildcard.stdout.startswith(f"http://127.0.0.1:{env['CASEWORK_PORT']}/login?token=")


def test_a_taken_port_fails_in_one_line_before_the_banner(env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(env["CASEWORK_PORT"])))
        taken.listen()
        result = casework("serve", env=env)
    assert result.returncode == 1
    assert f"Port {env['CASEWORK_PORT']} on 127.0.0.1 is taken" in result.stderr
    assert "Casework is starting" not in result.stdout


def test_help_loads_no_server_machinery() -> None:
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, casework.cli; print(sorted(m for m in ('openai', 'alembic', "
            "'fastapi', 'uvicorn', 'sqlalchemy', 'psycopg') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert loaded.stdout.strip() == "[]", loaded.stderr


def test_the_cli_roles_are_the_key_roles() -> None:
    assert [r.value for r in KeyRole] == [r.value for r in Role]
