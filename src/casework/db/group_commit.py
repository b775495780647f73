"""Group commit: many callers' small write transactions, committed together.

Each evaluation ends in one small write; on SQLite each commit waits for the disk (synchronous=FULL), so one
commit per evaluation capped evaluations at the disk's commits per second (bench/memory.py: the write lock and
fsync were a third of the server's time). Here writes that arrive while one batch is committing wait for the
next batch and share its commit. Each caller's work still succeeds or fails alone: a batch in which any work
fails is rolled back and its works are redone one transaction each. Callers hear back only once the commit
that holds their work is durable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from anyio import CapacityLimiter, to_thread

from casework.db.engine import Database

T = TypeVar("T")


class GroupCommit:
    def __init__(
        self, database: Database, limiter: Callable[[], CapacityLimiter | None], *, max_batch: int = 100
    ) -> None:
        self.database = database
        self.limiter = limiter
        self.max_batch = max_batch
        self._waiting: list[tuple[Callable[..., Any], dict[str, Any], asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def write(self, function: Callable[..., T], /, **kwargs: Any) -> T:
        """``function(session, **kwargs)`` in the next group's transaction; its result once committed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((function, kwargs, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
            try:
                outcomes = await to_thread.run_sync(self._commit, batch, limiter=self.limiter())
            except BaseException as exc:  # the commit itself failed: nobody in the batch was written
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, _, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():  # its caller gave up waiting
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def _commit(self, batch: list[tuple[Callable[..., Any], dict[str, Any], Any]]) -> list[tuple[bool, Any]]:
        if len(batch) > 1:
            try:
                with self.database.transaction(write=True) as session:
                    return [(True, function(session, **kwargs)) for function, kwargs, _ in batch]
            except Exception:
                pass  # a work failed and the batch rolled back: redo each work in a transaction of its own
        return [self._alone(function, kwargs) for function, kwargs, _ in batch]

    def _alone(self, function: Callable[..., Any], kwargs: dict[str, Any]) -> tuple[bool, Any]:
        try:
            with self.database.transaction(write=True) as session:
                return True, function(session, **kwargs)
        except Exception as exc:
            return False, exc
