"""The registry of background work: each kind of job, the lane it runs in, and how it is retried; and the
scheduled (periodic) kinds, of which every tick runs once however many workers there are.

A lane has its own number of slots, so that one kind of work never starves another: a webhook receiver that
answers slowly fills the ``deliver`` lane, never the ``evaluate`` lane.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from casework.services.jobs import ClaimedJob

MAX_BACKOFF_SECONDS = 300.0


class Retry(Exception):
    """The job did not succeed this time; it is tried again after ``after`` seconds (default: the kind's
    schedule), until its attempts run out."""

    def __init__(self, message: str, *, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


class GiveUp(Exception):
    """The job can never succeed (its evaluator is gone, its input is unusable): parked as failed at once."""


Handler = Callable[[ClaimedJob], Awaitable[None]]


@dataclass(frozen=True)
class JobKind:
    name: str
    run: Handler
    lane: str = "default"
    # Seconds to wait before each retry; its length + 1 is the number of attempts. None: 2, 4, 8 ... seconds
    # (at most MAX_BACKOFF_SECONDS) up to CASEWORK_JOB_MAX_ATTEMPTS attempts.
    retry_delays: tuple[float, ...] | None = None
    jitter: float = 0.0  # up to this share of each delay, added at random, so retries do not arrive together
    # True when ``run`` marks its job done itself, in the transaction that stores its result (so a job whose
    # lease was lost meanwhile stores nothing); otherwise the worker marks it done when ``run`` returns.
    finishes_itself: bool = False

    def max_attempts(self, default: int) -> int:
        return len(self.retry_delays) + 1 if self.retry_delays is not None else default

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if self.retry_delays is not None:
            base = self.retry_delays[min(attempt, len(self.retry_delays)) - 1]
        else:
            base = min(2.0**attempt, MAX_BACKOFF_SECONDS)
        return base + random.uniform(0, base * self.jitter) if self.jitter else base


@dataclass(frozen=True)
class Schedule:
    """Run job kind ``kind`` once every ``every_seconds``: each tick is a job with a unique key, so of all the
    workers that try to queue it, one does, and one worker runs it."""

    kind: str
    every_seconds: float


@dataclass
class Registry:
    lanes: dict[str, int]
    kinds: dict[str, JobKind] = field(default_factory=dict)
    schedules: list[Schedule] = field(default_factory=list)

    def add(self, *kinds: JobKind) -> Registry:
        for kind in kinds:
            if kind.lane not in self.lanes:
                raise ValueError(f"job kind {kind.name!r} runs in an unknown lane {kind.lane!r}")
            self.kinds[kind.name] = kind
        return self

    def schedule(self, *schedules: Schedule) -> Registry:
        for schedule in schedules:
            if schedule.kind not in self.kinds:
                raise ValueError(f"scheduled job kind {schedule.kind!r} is not registered")
            self.schedules.append(schedule)
        return self

    def kinds_in(self, lane: str) -> list[str]:
        return sorted(name for name, kind in self.kinds.items() if kind.lane == lane)

    def extend(self, kinds: Iterable[JobKind]) -> Registry:
        return self.add(*kinds)
