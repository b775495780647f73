"""Each integration kind has its set-up page in docs/integrations/, and the page names every key of its config."""

from __future__ import annotations

from pathlib import Path

from casework.integrations import kinds


def test_every_kind_has_a_page_that_documents_each_config_key(repo_root: Path) -> None:
    folder = repo_root / "docs" / "integrations"
    index = (folder / "README.md").read_text()
    missing = []
    for name, kind in kinds().items():
        page = folder / f"{name}.md"
        assert page.exists(), f"docs/integrations/{name}.md is missing"
        assert f"({name}.md)" in index
        text = page.read_text()
        missing += [f"{name}: {key}" for key in kind.config.model_fields if f"`{key}`" not in text]
    assert missing == []
