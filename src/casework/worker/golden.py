"""The job kind of golden-set runs: each job judges one chunk of a run's items with the evaluation runner the
server uses (same judge, same memory), at most CASEWORK_GOLDEN_CONCURRENCY verdicts at once per worker process
and, when the run sets ``requests_per_second``, at most that many judge requests a second per worker process,
and stores them with its own completion; the chunk that completes the run measures it. A job that fails on its
last attempt fails its run."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from casework.db.models import Evaluator
from casework.definitions import Verdict
from casework.services.evaluations import EvaluationDraft
from casework.services.golden_metrics import load_scikit_learn
from casework.services.golden_runs import JOB_KIND, WorkItem, fail_run, store_results, work_of
from casework.services.jobs import ClaimedJob
from casework.worker.kinds import GiveUp, JobKind
from casework.worker.runner import EvaluationRunner

LANE = "golden"
PACED_RUNS = 100  # the runs a worker process keeps a pace for (the oldest is forgotten first)
logger = logging.getLogger("casework.golden")


class Pace:
    """At most ``per_second`` turns a second, evenly spaced (no burst): each caller waits for its turn, in the
    order they asked. Safe across the tasks of one event loop (nothing is awaited between reading the next
    turn and taking it)."""

    def __init__(
        self,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    async def __call__(self) -> None:
        now = self._clock()
        turn = now if self._next is None else max(now, self._next)
        self._next = turn + self.interval
        if turn > now:
            await self._sleep(turn - now)


def _tokens(verdicts: list[Verdict], field: str) -> int | None:
    """The judge calls' tokens as their replies' ``usage`` gave them; None when a reply had no usage (a verdict
    made without a model, such as the precedent evaluator's, made no call: 0)."""
    total = 0
    for verdict in verdicts:
        if verdict.model is None:
            continue
        value = getattr(verdict, field)
        if value is None:
            return None
        total += value
    return total


def golden_kinds(runner: EvaluationRunner, *, concurrency: int, max_attempts: int) -> list[JobKind]:
    gate: asyncio.Semaphore | None = None
    paces: OrderedDict[str, Pace] = OrderedDict()  # per run: its chunks share one pace

    def pace_of(run_id: str, per_second: Any) -> Pace | None:
        if not per_second:
            return None
        if run_id not in paces:
            paces[run_id] = Pace(float(per_second))
            while len(paces) > PACED_RUNS:
                paces.popitem(last=False)
        return paces[run_id]

    async def verdict(
        item: WorkItem, evaluator: Evaluator, memory: bool, pace: Pace | None
    ) -> dict[str, Any]:
        nonlocal gate
        gate = gate or asyncio.Semaphore(concurrency)  # made on the worker's own event loop
        async with gate:
            started = time.perf_counter()
            try:
                draft = await runner.run_one(
                    evaluator, item.interaction, memory=memory, exclude=item.exclude, pace=pace
                )
            except Exception as exc:  # counted as an error of this item: a run never hangs on one of them
                logger.exception("golden run: item %s failed", item.item_id)
                draft = EvaluationDraft(evaluator=evaluator, interaction=item.interaction)
                draft.error = f"{exc.__class__.__name__}: {exc}"
            latency_ms = (time.perf_counter() - started) * 1000
        verdicts = [v for v in (draft.first, draft.final if draft.reevaluated else None) if v is not None]
        final = draft.final
        return {
            "item_id": item.item_id,
            "evaluator_id": evaluator.id,
            "expected": item.expected,
            "classification": final.classification if final is not None else None,
            "confidence": final.confidence if final is not None else None,
            "ambiguous": bool(draft.ambiguous) and draft.error is None,
            "reevaluated": draft.reevaluated,
            "latency_ms": round(latency_ms, 1),
            "prompt_tokens": _tokens(verdicts, "prompt_tokens"),
            "completion_tokens": _tokens(verdicts, "completion_tokens"),
            "error": draft.error,
            # What routing reads (casework.services.golden_runs.routed), not stored.
            "control_ids": list(draft.memory_scores),
            "subject": draft.spot_check_subject,
        }

    loaded: asyncio.Task[None] | None = None

    async def run(job: ClaimedJob) -> None:
        try:
            await judge_chunk(job)
        except Exception as exc:
            if job.attempts < max_attempts:
                raise  # the worker tries it again
            # The last attempt: the run can never complete, so it ends failed with the error (the worker
            # parks the job as failed too; if it cannot, the lease runs out and the job is parked then).
            error = f"{type(exc).__name__}: {exc}"
            logger.exception("golden run %s: a job failed on its last attempt", job.payload.get("run_id"))
            await runner.db(fail_run, write=True, run_id=str(job.payload["run_id"]), error=error)
            raise GiveUp(error) from exc

    async def judge_chunk(job: ClaimedJob) -> None:
        nonlocal loaded
        loaded = loaded or asyncio.get_running_loop().create_task(asyncio.to_thread(load_scikit_learn))
        run_id = str(job.payload["run_id"])
        work = await runner.db(work_of, write=False, run_id=run_id, item_ids=list(job.payload["item_ids"]))
        pace = pace_of(run_id, job.payload.get("requests_per_second"))
        results: list[dict[str, Any]] = []
        if work is not None:
            results = list(
                await asyncio.gather(
                    *(
                        verdict(item, evaluator, work.memory, pace)
                        for item in work.items
                        for evaluator in item.evaluators
                    )
                )
            )
        await loaded  # the run may complete with this job: its metrics need scikit-learn
        if await runner.db(store_results, write=True, claimed=job, run_id=run_id, results=results):
            paces.pop(run_id, None)

    return [JobKind(JOB_KIND, run, lane=LANE, finishes_itself=True)]
