"""The ``casework`` command: run the server, manage the database and API keys, show the settings."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from casework import heap
from casework.config import Settings, describe_settings
from casework.db import migrate
from casework.db.engine import Database
from casework.demo import DEMO_PROJECT, seed_demo
from casework.errors import CaseworkError
from casework.services import auth
from casework.services.bootstrap import bootstrap
from casework.services.web_auth import create_login_link_token
from casework.services.workspaces import get_or_create_workspace

app = typer.Typer(
    help="Casework: human-in-the-loop LLM evaluation. Run `casework serve` to start.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")

out = Console()
err = Console(stderr=True)


def _open_database(settings: Settings) -> Database:
    settings.home.mkdir(parents=True, exist_ok=True)
    return Database.from_url(settings.effective_database_url, pool_size=settings.db_pool_size)


def _write_secret_file(path: Path, secret: str) -> None:
    # Created with mode 0600 from the first byte: the key is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    os.chmod(path, 0o600)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: CASEWORK_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: CASEWORK_PORT).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Server processes, one core each (default: CASEWORK_WORKERS, 1).")
    ] = None,
) -> None:
    """Apply migrations, create the first admin key and the demo on an empty database, and start the server."""
    import uvicorn

    from casework.api.app import create_app

    overrides = {k: v for k, v in {"host": host, "port": port, "workers": workers}.items() if v is not None}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    database = _open_database(settings)
    migrate.upgrade(database)
    with database.transaction() as session:
        created = bootstrap(session)
    if created is not None:
        _write_secret_file(settings.admin_key_path, created.secret)
        seed_demo(database, workspace_id=created.api_key.workspace_id)
        out.print(f"\n[bold]Casework is starting at {settings.base_url}[/bold]")
        out.print("First start: created workspace 'default' and an admin API key (shown once):\n")
        out.print(f"    {created.secret}\n", highlight=False)
        out.print(f"It is saved in {settings.admin_key_path} (mode 0600).")
        with database.transaction() as session:
            token = create_login_link_token(session, api_key_id=created.api_key.id)
        out.print("Open the reviewer UI (this link signs you in once, within 24 hours):\n")
        out.print(f"    {settings.base_url}/login?token={token}\n", highlight=False, soft_wrap=True)
        out.print(
            f"A demo project, {DEMO_PROJECT!r}, has borderline cases waiting for review: decide one, and watch "
            "its look-alikes get resolved by memory."
        )
        out.print(
            f"Try: curl -H 'x-api-key: {created.secret}' {settings.base_url}/api/v1/projects\n",
            highlight=False,
            soft_wrap=True,  # one unbroken line, so it can be copied as a command
        )
    else:
        out.print(f"\n[bold]Casework is starting at {settings.base_url}[/bold]")
        out.print(
            f"The first admin key was saved in {settings.admin_key_path} on first start; make another with "
            "`casework keys create --workspace default --role admin --name <you>`.\n"
        )
    if settings.workers == 1:
        app_instance = create_app(settings, database=database)
        heap.settle()
        uvicorn.run(app_instance, host=settings.host, port=settings.port, log_level=settings.log_level)
        return
    database.dispose()
    # Each worker process builds its app from the environment; the metrics of all of them are kept in files
    # in a fresh folder, which /metrics adds up (prometheus_client's multiprocess mode).
    os.environ.update({f"CASEWORK_{k.upper()}": str(v) for k, v in overrides.items()})
    metrics_folder = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="casework-metrics-")
    try:
        uvicorn.run(
            "casework.api.app:app_from_environment",
            factory=True,
            workers=settings.workers,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
        )
    finally:
        shutil.rmtree(metrics_folder, ignore_errors=True)


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs at once (default: CASEWORK_WORKER_CONCURRENCY, 32).")
    ] = None,
) -> None:
    """Run an evaluation worker alone (no API): evaluate traced interactions, run memory passes."""
    import asyncio

    from casework.evaluators.worker import run_worker_process

    settings = Settings(**({"worker_concurrency": concurrency} if concurrency else {}))  # type: ignore[arg-type]
    database = _open_database(settings)
    migrate.upgrade(database)
    heap.settle()
    try:
        asyncio.run(run_worker_process(settings, database, announce=out.print))
    finally:
        database.dispose()


@app.command("login-link")
def login_link(
    key_label: Annotated[
        str, typer.Option(help="The label of the API key to sign in as (see `casework keys list`).")
    ],
) -> None:
    """Print a one-time link that signs a browser in to the web UI as an API key (valid 24 hours)."""
    settings = Settings()
    database = _open_database(settings)
    migrate.upgrade(database)
    try:
        with database.transaction() as session:
            token = create_login_link_token(session, key_label=key_label)
    except CaseworkError as error:
        err.print(f"[red]{error.message}[/red]")
        raise typer.Exit(1) from error
    finally:
        database.dispose()
    out.print(f"{settings.base_url}/login?token={token}", highlight=False, soft_wrap=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration not yet applied (safe to run from several machines at once on PostgreSQL)."""
    settings = Settings()
    database = _open_database(settings)
    migrate.upgrade(database)
    out.print(f"Database is at migration {migrate.current_revision(database)} (head).")


@db_app.command("current")
def db_current() -> None:
    """Print the database's migration and whether it is the newest this version knows."""
    database = _open_database(Settings())
    current, head = migrate.current_revision(database), migrate.head_revision()
    state = "up to date" if current == head else f"behind: run `casework db upgrade` to reach {head}"
    out.print(f"{current or 'empty'} ({state})")


@keys_app.command("create")
def keys_create(
    workspace: Annotated[
        str, typer.Option(help="Workspace name; created if it does not exist yet.")
    ] = "default",
    role: Annotated[
        auth.Role, typer.Option(help="admin: everything; reviewer: read and review; viewer: read.")
    ] = (auth.Role.reviewer),
    name: Annotated[
        str, typer.Option(help="Label: who or what holds this key, e.g. an e-mail address.")
    ] = "cli",
) -> None:
    """Create an API key. The secret is printed once, as the last line of standard output."""
    database = _open_database(Settings())
    migrate.upgrade(database)
    with database.transaction() as session:
        ws, ws_created = get_or_create_workspace(session, name=workspace)
        created = auth.create_key(session, workspace_id=ws.id, role=role, label=name)
    if ws_created:
        err.print(f"Created workspace {workspace!r}.")
    err.print(f"Created {role.value} key {created.api_key.id} for {name!r} in workspace {workspace!r}:")
    typer.echo(created.secret)


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (never their secrets)."""
    database = _open_database(Settings())
    with database.transaction(write=False) as session:
        rows = auth.list_keys(session)
    table = Table("id", "workspace", "role", "label", "starts with", "created", "revoked")
    for key, workspace_name in rows:
        revoked = key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else ""
        table.add_row(
            key.id,
            workspace_name,
            key.role,
            key.label,
            key.key_prefix + "…",
            key.created_at.isoformat(timespec="seconds"),
            revoked,
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id, as `casework keys list` shows it.")],
) -> None:
    """Revoke an API key: requests with it get 401 from then on."""
    database = _open_database(Settings())
    try:
        with database.transaction() as session:
            auth.revoke_key(session, key_id=key_id)
    except CaseworkError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    out.print(f"Revoked {key_id}.")


@app.command("settings")
def show_settings() -> None:
    """Print the effective settings, where each came from, and what it does (secrets masked)."""
    table = Table("variable", "value", "source", "what it does")
    for row in describe_settings(Settings()):
        table.add_row(*row)
    out.print(table)
