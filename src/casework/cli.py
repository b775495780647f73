"""The ``casework`` command: run the server, manage the database and API keys, show the settings.

Each command imports what it needs when it runs: ``casework --help`` loads no database driver, migration
tool or judge client.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import stat
import tempfile
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from casework.config import Settings
    from casework.db.engine import Database

app = typer.Typer(
    help="Casework: human-in-the-loop LLM evaluation. Run `casework serve` to start.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
golden_app = typer.Typer(
    help="Golden sets: import items, run evaluator versions against people's answers (talks to the server: "
    "CASEWORK_BASE_URL, CASEWORK_API_KEY).",
    no_args_is_help=True,
)
app.add_typer(golden_app, name="golden")

out = Console()
err = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class KeyRole(str, Enum):
    """The roles of casework.services.auth.Role, named here so that --help needs no database code."""

    admin = "admin"
    reviewer = "reviewer"
    viewer = "viewer"


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]{message}[/red]", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _settings(**overrides: Any) -> Settings:
    """The settings from the environment; an invalid one is one line naming it, before anything is done."""
    from pydantic import ValidationError

    from casework.config import Settings, settings_problem

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        _fail(settings_problem(exc), code=2)


def _sqlite_path(settings: Settings) -> Path | None:
    from sqlalchemy.engine import make_url

    url = make_url(settings.effective_database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database)
    return None


def _open_database(settings: Settings, *, create: bool = True) -> Database:
    """The database. ``create``: make the home folder and SQLite file if missing (serve, worker, db upgrade);
    otherwise a database that does not exist yet is an error, not a new empty one."""
    from casework.db import migrate
    from casework.db.engine import Database

    path = _sqlite_path(settings)
    if path is not None and not path.exists() and not create:
        _fail(
            f"There is no Casework database at {path} yet. Start the server there first (`casework serve`), or "
            "give this command the server's settings: the same CASEWORK_HOME or CASEWORK_DATABASE_URL."
        )
    if create:
        # The home holds the database and the admin key: only its owner may look inside (0700), and the
        # SQLite file is made 0600 before SQLite opens it (its -wal and -shm files take the same mode).
        _make_home_private(settings.home, database_file=path)
        if path is not None:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    database = Database.from_url(
        settings.effective_database_url,
        pool_size=settings.db_pool_size,
        statement_wait_seconds=settings.database_wait_bound,
    )
    _check_reachable(database, settings)
    if not create and migrate.current_revision(database) is None:
        database.dispose()
        _fail(
            "The database has no Casework tables: it is not the server's. Give this command the server's "
            "CASEWORK_HOME or CASEWORK_DATABASE_URL, or run `casework db upgrade` to set this one up."
        )
    return database


def _check_reachable(database: Database, settings: Settings) -> None:
    """One line, not a traceback, when the database cannot be opened (a PostgreSQL server that is down, a
    database that does not exist, a password refused)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with database.engine.connect():
            pass
    except SQLAlchemyError as exc:
        database.dispose()
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["unknown error"]
        where = make_url(settings.effective_database_url).render_as_string(hide_password=True)
        _fail(f"Cannot open the database {where}: {reason[0]}")


def _make_home_private(home: Path, *, database_file: Path | None) -> None:
    """Create the home 0700, or take group and other users' access away from an existing one (made by hand, by
    an older version, or as a volume) when it is plainly Casework's: ours (a root-owned /tmp is not, even to a
    server running as root) and holding nothing but Casework's files, or nothing yet. A folder with other
    files in it (a user's home directory, a shared folder) is not ours to lock others out of: we say so."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    status = home.stat()
    mode = stat.S_IMODE(status.st_mode)
    if not mode & 0o077:
        return
    from casework.secrets import KEY_FILE

    databases = {"casework.db"} | ({database_file.name} if database_file is not None else set())
    ours = {"admin-key", KEY_FILE} | {f"{name}{end}" for name in databases for end in _SQLITE_FILE_ENDS}
    if status.st_uid == os.geteuid() and {child.name for child in home.iterdir()} <= ours:
        os.chmod(home, mode & ~0o077)
        return
    err.print(
        f"Warning: CASEWORK_HOME {home} can be read by other users (mode {mode:04o}), and it is not Casework's "
        "alone, so it is left as it is. It holds the admin key and the database: `chmod 700` it, or point "
        "CASEWORK_HOME at a folder of its own.",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )


# SQLite's database file and the files it keeps beside it.
_SQLITE_FILE_ENDS = ("", "-wal", "-shm", "-journal")


def _write_secret_file(path: Path, secret: str) -> None:
    # Created with mode 0600 from the first byte: the key is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    os.chmod(path, 0o600)


def _check_port_free(host: str, port: int) -> None:
    """Fail in one line, before the banner and the migrations, when another process has the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no clash
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                _fail(
                    f"Port {port} on {host} is taken by another program: stop it, or choose another port with "
                    "CASEWORK_PORT or --port."
                )
            _fail(f"Cannot listen on {host}:{port}: {exc.strerror}.")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: CASEWORK_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: CASEWORK_PORT).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Server processes, one core each (default: CASEWORK_WORKERS, 1).")
    ] = None,
) -> None:
    """Apply migrations, create the first admin key and the demo on an empty database, and start the server."""
    overrides = {k: v for k, v in {"host": host, "port": port, "workers": workers}.items() if v is not None}
    settings = _settings(**overrides)
    _check_port_free(settings.host, settings.port)

    import uvicorn

    from casework import heap
    from casework.api.access_log import log_config
    from casework.app import create_app
    from casework.config import JudgeSettings
    from casework.db import migrate
    from casework.demo import DEMO_PROJECT, seed_demo
    from casework.services.bootstrap import bootstrap
    from casework.services.web_auth import create_login_link_token

    database = _open_database(settings)
    migrate.upgrade(database)
    with database.transaction() as session:
        created = bootstrap(session)
    judge = JudgeSettings.from_environment()
    out.print(f"\n[bold]Casework is starting at {settings.base_url}[/bold]", highlight=False)
    out.print(f"Judge: {judge.summary}.", highlight=False)
    if created is not None:
        _write_secret_file(settings.admin_key_path, created.secret)
        seed_demo(database, workspace_id=created.api_key.workspace_id)
        out.print("First start: created workspace 'default' and an admin API key (shown once):\n")
        out.print(f"    {created.secret}\n", highlight=False)
        out.print(f"It is saved in {settings.admin_key_path} (mode 0600).")
        with database.transaction() as session:
            token = create_login_link_token(session, api_key_id=created.api_key.id)
        out.print("Open the reviewer UI (this link signs you in once, within 24 hours):\n")
        out.print(f"    {settings.base_url}/login?token={token}\n", highlight=False, soft_wrap=True)
        out.print(
            f"A demo project, {DEMO_PROJECT!r}, has borderline cases waiting for review: decide one, and watch "
            "memory suggest your decision on its look-alikes (it decides alone only once past decisions show "
            "it is right often enough)."
        )
        out.print(
            f"Try: curl -H 'x-api-key: {created.secret}' {settings.base_url}/api/v1/projects\n",
            highlight=False,
            soft_wrap=True,  # one unbroken line, so it can be copied as a command
        )
    else:
        out.print(
            f"The first admin key was saved in {settings.admin_key_path} on first start; make another with "
            "`casework keys create --workspace default --role admin --name <you>`.\n"
        )
    if settings.workers == 1:
        app_instance = create_app(settings, database=database)
        heap.settle()
        uvicorn.run(
            app_instance,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            log_config=log_config(),
        )
        return
    database.dispose()
    # Each worker process builds its app from the environment; the metrics of all of them are kept in files
    # in a fresh folder, which /metrics adds up (prometheus_client's multiprocess mode).
    os.environ.update({f"CASEWORK_{k.upper()}": str(v) for k, v in overrides.items()})
    metrics_folder = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="casework-metrics-")
    try:
        uvicorn.run(
            "casework.app:app_from_environment",
            factory=True,
            workers=settings.workers,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            log_config=log_config(),
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

    from casework import heap
    from casework.db import migrate
    from casework.worker.setup import run_worker_process

    settings = _settings(**({"worker_concurrency": concurrency} if concurrency else {}))
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
    """Print a one-time link that signs a browser in to the web UI as an API key (valid 24 hours).

    The link starts with CASEWORK_PUBLIC_URL, or the server's CASEWORK_HOST and CASEWORK_PORT: give this
    command the same settings as the server."""
    from casework.errors import CaseworkError
    from casework.services.web_auth import create_login_link_token

    settings = _settings()
    database = _open_database(settings, create=False)
    try:
        with database.transaction() as session:
            token = create_login_link_token(session, key_label=key_label)
    except CaseworkError as error:
        _fail(error.message)
    finally:
        database.dispose()
    out.print(f"{settings.base_url}/login?token={token}", highlight=False, soft_wrap=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration not yet applied (safe to run from several machines at once on PostgreSQL)."""
    from casework.db import migrate

    database = _open_database(_settings())
    migrate.upgrade(database)
    out.print(f"Database is at migration {migrate.current_revision(database)} (head).")


@db_app.command("current")
def db_current() -> None:
    """Print the database's migration and whether it is the newest this version knows."""
    from casework.db import migrate
    from casework.db.engine import Database

    settings = _settings()
    path = _sqlite_path(settings)
    if path is not None and not path.exists():
        _fail(
            f"There is no Casework database at {path} yet: `casework serve` or `casework db upgrade` makes it."
        )
    database = Database.from_url(
        settings.effective_database_url, statement_wait_seconds=settings.database_wait_bound
    )
    current, head = migrate.current_revision(database), migrate.head_revision()
    state = "up to date" if current == head else f"behind: run `casework db upgrade` to reach {head}"
    out.print(f"{current or 'empty'} ({state})")


def _command_line_actor() -> str:
    """Who changed keys from a shell, for the audit trail: the account that ran the command."""
    import getpass

    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        user = f"uid {os.getuid()}"
    return f"{user} (command line)"


@keys_app.command("create")
def keys_create(
    workspace: Annotated[
        str, typer.Option(help="Workspace name; created if it does not exist yet.")
    ] = "default",
    role: Annotated[
        KeyRole, typer.Option(help="admin: everything; reviewer: read and review; viewer: read.")
    ] = KeyRole.reviewer,
    name: Annotated[
        str, typer.Option(help="Label: who or what holds this key, e.g. an e-mail address.")
    ] = "cli",
) -> None:
    """Create an API key. The secret is printed once, as the last line of standard output."""
    from casework.services import api_keys, auth
    from casework.services.workspaces import get_or_create_workspace

    database = _open_database(_settings(), create=False)
    with database.transaction() as session:
        ws, ws_created = get_or_create_workspace(session, name=workspace)
        created = api_keys.create_recorded_key(
            session, workspace_id=ws.id, role=auth.Role(role.value), label=name, actor=_command_line_actor()
        )
    if ws_created:
        err.print(f"Created workspace {workspace!r}.")
    err.print(f"Created {role.value} key {created.api_key.id} for {name!r} in workspace {workspace!r}:")
    typer.echo(created.secret)


@keys_app.command("list")
def keys_list(as_json: JsonOption = False) -> None:
    """List API keys (never their secrets): the full ids that `casework keys revoke` takes."""
    from casework.services import auth

    database = _open_database(_settings(), create=False)
    with database.transaction(write=False) as session:
        rows = auth.list_keys(session)
    if as_json:
        keys = [
            {
                "id": key.id,
                "workspace": workspace_name,
                "role": key.role,
                "label": key.label,
                "starts_with": key.key_prefix,
                "created_at": key.created_at.isoformat(),
                "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
            }
            for key, workspace_name in rows
        ]
        typer.echo(json.dumps({"keys": keys}, indent=2))
        return
    # Fits 80 columns: the id never wraps (it is what `keys revoke` takes), the label folds if it must.
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("id", no_wrap=True)
    table.add_column("role", no_wrap=True)
    table.add_column("label", overflow="fold")
    table.add_column("workspace", overflow="fold")
    table.add_column("created", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for key, workspace_name in rows:
        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        table.add_row(key.id, key.role, key.label, workspace_name, f"{key.created_at:%Y-%m-%d}", state)
    out.print(table, highlight=False)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id, as `casework keys list` shows it.")],
) -> None:
    """Revoke an API key: requests with it get 401 from then on."""
    from casework.errors import CaseworkError
    from casework.services import api_keys

    database = _open_database(_settings(), create=False)
    try:
        with database.transaction() as session:
            api_keys.revoke_recorded_key(session, key_id=key_id, actor=_command_line_actor())
    except CaseworkError as exc:
        _fail(exc.message)
    out.print(f"Revoked {key_id}.")


@app.command("settings")
def show_settings(as_json: JsonOption = False) -> None:
    """Print the effective settings, where each came from and what it does (secrets masked), and the judge."""
    from casework.config import JudgeSettings, describe_settings

    rows = describe_settings(_settings())
    judge = JudgeSettings.from_environment()
    if as_json:
        settings = [
            {"variable": name, "value": value, "source": source, "description": description}
            for name, value, source, description in rows
        ]
        judge_json = {
            "OPENAI_BASE_URL": judge.base_url,
            "OPENAI_BASE_URL_source": judge.base_url_source,
            "OPENAI_API_KEY": "set" if judge.api_key_set else "not set",
            "default_model": judge.default_model,
        }
        typer.echo(json.dumps({"settings": settings, "judge": judge_json}, indent=2))
        return
    # Name and value on one line (unbroken, to copy); where it came from and what it does below, indented:
    # readable at 80 columns.
    for name, value, source, description in rows:
        out.print(f"[bold]{name}[/bold] = {value}", highlight=False, soft_wrap=True)
        out.print(f"    ({source}) {description}", style="dim", highlight=False)
    out.print("\n[bold]The judge[/bold] (read by the openai client)")
    out.print(f"[bold]OPENAI_BASE_URL[/bold] = {judge.base_url}  [dim]({judge.base_url_source})[/dim]")
    out.print(f"[bold]OPENAI_API_KEY[/bold] = {'set' if judge.api_key_set else 'not set'}", highlight=False)
    out.print(
        f"[bold]default model[/bold] = {judge.default_model}  [dim](an evaluator's own model wins)[/dim]"
    )


# --- golden sets: client commands, over the REST API --------------------------------------------------------

# Exit codes of `casework golden run`: a threshold failed, or the run could not be made or read.
THRESHOLD_FAILED = 1
API_FAILED = 2


def _client() -> Any:
    from casework.errors import CaseworkError
    from casework.sdk.client import Client

    try:
        return Client()
    except CaseworkError as exc:
        _fail(
            f"{exc.message} (and CASEWORK_BASE_URL for a server other than http://127.0.0.1:8000)", API_FAILED
        )


def _project_id(client: Any, project: str) -> str:
    for found in client.projects():
        if project in (found["id"], found["name"]):
            return str(found["id"])
    _fail(f"No project {project!r} in this key's workspace.", API_FAILED)


def _golden_set(client: Any, golden_set: str, project: str | None) -> dict[str, Any]:
    if project is None:
        return {"id": golden_set}
    for found in client.golden_sets(_project_id(client, project)):
        if golden_set in (found["id"], found["name"]):
            return dict(found)
    _fail(f"No golden set {golden_set!r} in project {project!r}.", API_FAILED)


def _limits(values: list[str], operator: str) -> dict[str, dict[str, float]]:
    limits: dict[str, dict[str, float]] = {}
    for value in values:
        metric, _, number = value.partition("=")
        try:
            limits.setdefault(metric.strip(), {})[operator] = float(number)
        except ValueError:
            _fail(f"{value!r}: write METRIC=NUMBER, for example kappa=0.6.", API_FAILED)
    return limits


@golden_app.command("import")
def golden_import(
    project: Annotated[str, typer.Argument(help="The project's name or id.")],
    name: Annotated[str, typer.Argument(help="The golden set's name: made, or given its next version.")],
    file: Annotated[
        Path,
        typer.Argument(
            help='JSON Lines: {"query", "response", "expected", "context"?, "evaluator_type"?, "tags"?, '
            '"metadata"?}; or CSV (a .csv file) with a header row naming those columns.',
            exists=True,
            dir_okay=False,
        ),
    ],
    replace: Annotated[
        bool, typer.Option("--replace", help="Make the new version of these items only.")
    ] = False,
) -> None:
    """Import items from a JSONL or CSV file into a golden set (a new set, or its next version)."""
    from casework.errors import CaseworkError, GoldenSetExists

    items: list[dict[str, Any]] = []
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        _fail(f"{file}: not UTF-8 text (byte {exc.start}).", API_FAILED)
    if file.suffix.lower() == ".csv":
        from casework.api.schemas.golden_csv import items_from_csv

        try:
            items = [item.model_dump(exclude_none=True) for item in items_from_csv(text)]
        except CaseworkError as exc:
            _fail(f"{file}: {exc.message}", API_FAILED)
    for number, line in enumerate([] if items else text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            _fail(f"{file}:{number}: not JSON ({exc.msg}).", API_FAILED)
        if not isinstance(item, dict):
            _fail(f"{file}:{number}: each line must be a JSON object.", API_FAILED)
        items.append(item)
    with _client() as client:
        try:
            project_id = _project_id(client, project)
            try:
                made = client.create_golden_set(project_id, name, items=items)
            except GoldenSetExists:
                found = _golden_set(client, name, project_id)
                made = client.add_golden_version(
                    found["id"], items=items, mode="replace" if replace else "add"
                )
        except CaseworkError as exc:
            _fail(f"{exc.code}: {exc.message} {json.dumps(exc.details) if exc.details else ''}", API_FAILED)
    out.print(
        f"Golden set {made['name']} ({made['id']}): version {made['version']}, {made['item_count']} items.",
        highlight=False,
    )


@golden_app.command("run")
def golden_run(
    golden_set: Annotated[str, typer.Argument(help="The golden set's id, or its name with --project.")],
    evaluator: Annotated[
        list[str], typer.Option("--evaluator", "-e", help="NAME or NAME:VERSION; repeat for several.")
    ],
    project: Annotated[
        str | None, typer.Option(help="The project (name or id) of a set named by name.")
    ] = None,
    memory: Annotated[
        bool, typer.Option("--memory/--no-memory", help="Re-evaluate unsure verdicts with {memories}.")
    ] = True,
    version: Annotated[int | None, typer.Option(help="The set's version (default: the current one).")] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Run each --evaluator with this model instead of its own (nothing is saved)."),
    ] = None,
    fail_under: Annotated[
        list[str],
        typer.Option("--fail-under", help="METRIC=VALUE: fail when a metric is below, e.g. kappa=0.6."),
    ] = [],  # noqa: B006
    fail_over: Annotated[
        list[str],
        typer.Option(
            "--fail-over", help="METRIC=VALUE: fail when a metric is above, e.g. ambiguity_rate=0.2."
        ),
    ] = [],  # noqa: B006
    requests_per_second: Annotated[
        float | None,
        typer.Option(help="At most this many judge requests a second for the run (per worker process)."),
    ] = None,
    as_json: JsonOption = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the run.")] = 3600.0,
) -> None:
    """Run evaluator versions on a golden set, wait with a progress bar, and print the metrics. Exits 1 when a
    threshold (the set's, or --fail-under / --fail-over) fails, 2 when the run cannot be made or read."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from casework.errors import CaseworkError
    from casework.services.golden_metrics import check, validate_thresholds

    own = {**_limits(fail_under, ">=")}
    for metric, rule in _limits(fail_over, "<=").items():
        own.setdefault(metric, {}).update(rule)
    try:
        own = validate_thresholds(own)
    except CaseworkError as exc:
        _fail(exc.message, API_FAILED)
    with _client() as client:
        try:
            found = _golden_set(client, golden_set, project)
            wanted: list[Any] = [{"name": e, "model": model} for e in evaluator] if model else evaluator
            run = client.start_golden_run(
                found["id"], wanted, memory=memory, version=version, requests_per_second=requests_per_second
            )
            deadline = time.monotonic() + timeout
            with Progress(
                TextColumn("[bold]golden run[/bold]"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
                disable=as_json or not err.is_terminal,
            ) as progress:
                task = progress.add_task("run", total=run["total"])
                while run["status"] == "running":
                    if time.monotonic() > deadline:
                        _fail(f"The run {run['id']} did not finish in {timeout:g} s.", API_FAILED)
                    time.sleep(0.25)
                    run = client.golden_run(found["id"], run["id"])
                    progress.update(task, completed=run["done"])
        except CaseworkError as exc:
            _fail(f"{exc.code}: {exc.message}", API_FAILED)
    if run["status"] != "completed":
        _fail(f"The run {run['id']} failed: {run.get('error')}", API_FAILED)
    for metrics in run["metrics"]:
        metrics["cli_thresholds"] = check(own, metrics)
    passed = bool(run["passed"]) and all(c["passed"] for m in run["metrics"] for c in m["cli_thresholds"])
    if as_json:
        print(json.dumps({**run, "passed": passed}, indent=2))
    else:
        _print_run(run)
        out.print("[green]passed[/green]" if passed else "[red]failed[/red]: a threshold was not met")
    if not passed:
        raise typer.Exit(THRESHOLD_FAILED)


def _label(metrics: dict[str, Any]) -> str:
    """An evaluator of a run as people read it: name:version, a draft, or another model."""
    if metrics.get("draft"):
        return f"{metrics['name']} (draft)"
    label = f"{metrics['name']}:{metrics['version']}"
    return f"{label} @ {metrics['model']}" if metrics.get("model_override") else label


def _print_run(run: dict[str, Any]) -> None:
    def number(value: Any, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    table = Table(
        title=f"golden run {run['id']} (set version {run['version']}, memory {'on' if run['memory'] else 'off'})"
    )
    for column in (
        "evaluator",
        "items",
        "accuracy",
        "kappa",
        "ambiguity",
        "errors",
        "tokens",
        "cost $",
        "p50 ms",
        "p90 ms",
        "vs previous",
        "passed",
    ):
        table.add_column(column, justify="left" if column == "evaluator" else "right")
    for m in run["metrics"]:
        diff = m.get("diff")
        table.add_row(
            _label(m),
            str(m["items"]),
            number(m["accuracy"]),
            number(m["kappa"]),
            number(m["ambiguity_rate"]),
            str(m["errors"]),
            "-" if m["total_tokens"] is None else str(m["total_tokens"]),
            number(m.get("cost_usd"), 4),
            number(m["latency_p50_ms"], 0),
            number(m["latency_p90_ms"], 0),
            f"+{diff['better']} -{diff['worse']}" if diff else "-",
            "yes" if m["passed"] and all(c["passed"] for c in m["cli_thresholds"]) else "no",
        )
    out.print(table)
    for m in run["metrics"]:
        for c in m["thresholds"] + m["cli_thresholds"]:
            mark = "[green]ok[/green]" if c["passed"] else "[red]FAIL[/red]"
            out.print(
                f"  {mark} {_label(m)} {c['metric']} {c['operator']} {c['value']:g} (got {number(c['actual'])})",
                highlight=False,
            )
