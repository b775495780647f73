"""bench/README.md's table has a row for every benchmark that ``python -m bench`` runs."""

from __future__ import annotations

import re
from pathlib import Path

import bench.__main__ as runner


def test_every_benchmark_has_a_row_in_the_readme(repo_root: Path) -> None:
    readme = (repo_root / "bench" / "README.md").read_text()
    rows = set(re.findall(r"^\| `(\w+)\.py` \|", readme, re.M))
    assert sorted(set(runner.BENCHMARKS) - rows) == []
