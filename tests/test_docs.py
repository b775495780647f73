"""The docs stay true: every setting, CLI command and error code is documented in docs/reference.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from casework.cli import app
from casework.config import ENV_PREFIX, Settings
from casework.errors import all_error_classes


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
