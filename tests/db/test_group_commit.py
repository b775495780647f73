"""Group commit: works that share a transaction still succeed or fail alone."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from anyio import CapacityLimiter
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.db.engine import Database
from casework.db.group_commit import GroupCommit
from casework.db.models import Workspace
from casework.db.types import utcnow
from casework.errors import Conflict

pytestmark = pytest.mark.storage


def add_workspace(session: Session, *, name: str) -> str:
    if name.startswith("bad"):
        raise Conflict(f"{name} is refused")
    session.add(Workspace(id=f"ws_{name}", name=name, created_at=utcnow()))
    session.flush()
    return name


def test_one_failing_work_leaves_the_others_written(database: Database) -> None:
    async def main() -> list[object]:
        limiter = CapacityLimiter(2)
        group = GroupCommit(database, lambda: limiter)
        works = [group.write(add_workspace, name=name) for name in ("gc-a", "bad-b", "gc-c", "gc-d")]
        return await asyncio.gather(*works, return_exceptions=True)

    # In a thread of its own: the browser tests' Playwright may own this thread's event loop.
    with ThreadPoolExecutor(1) as pool:
        results = pool.submit(lambda: asyncio.run(main())).result()
    assert results[0] == "gc-a" and results[2] == "gc-c" and results[3] == "gc-d"
    assert isinstance(results[1], Conflict)
    with database.transaction(write=False) as session:
        names = set(session.execute(select(Workspace.name).where(Workspace.name.like("gc-%"))).scalars())
    assert names == {"gc-a", "gc-c", "gc-d"}


def add_workspaces(session: Session, names: list[str]) -> list[str]:
    return [add_workspace(session, name=name) for name in names]
