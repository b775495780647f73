"""The docs stay true: every setting, CLI command, error code and endpoint is documented in docs/reference.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from casework.app import create_app
from casework.cli import app
from casework.config import ENV_PREFIX, Settings
from casework.errors import all_error_classes
from casework.evaluators.judge import LLMJudge


def reference(repo_root: Path) -> str:
    return (repo_root / "docs" / "reference.md").read_text()


def cli_commands(command: Any, prefix: str = "casework") -> list[str]:
    # Typer's groups have `commands` but are not click.Group subclasses.
    if hasattr(command, "commands"):
        found = []
        for name, sub in command.commands.items():
            found.extend(cli_commands(sub, f"{prefix} {name}"))
        return found
    return [prefix]


def test_every_setting_is_documented(repo_root: Path) -> None:
    text = reference(repo_root)
    missing = [
        f"{ENV_PREFIX}{name.upper()}"
        for name in Settings.model_fields
        if f"{ENV_PREFIX}{name.upper()}" not in text
    ]
    assert missing == []


def test_every_cli_command_is_documented(repo_root: Path) -> None:
    text = reference(repo_root)
    commands = cli_commands(typer.main.get_command(app))
    assert "casework serve" in commands
    assert [c for c in commands if f"`{c}" not in text] == []


def test_every_error_code_is_documented(repo_root: Path) -> None:
    text = reference(repo_root)
    codes = {cls.code for cls in all_error_classes()} | {"database_unreachable", "database_not_migrated"}
    assert sorted(code for code in codes if f"`{code}`" not in text) == []


def test_readme_names_the_two_commands(repo_root: Path) -> None:
    readme = (repo_root / "README.md").read_text()
    assert "make serve" in readme
    assert "make test" in readme


def test_every_endpoint_is_documented_and_every_documented_one_exists(
    repo_root: Path, tmp_path: Path
) -> None:
    """docs/reference.md's endpoint tables and the OpenAPI document name the same operations."""
    documented = {
        (method, re.sub(r"\{[^}]*\}", "{}", path.split("?")[0]))
        for method, path in re.findall(
            r"^\| `(GET|POST|PATCH|PUT|DELETE) ([^ `]+)`", reference(repo_root), re.M
        )
    }
    app = create_app(
        Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'unused.db'}"), judge=LLMJudge(None)
    )
    served = {
        (method.upper(), re.sub(r"\{[^}]*\}", "{}", path))
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    assert sorted(served - documented) == []
    assert sorted(documented - served) == []
