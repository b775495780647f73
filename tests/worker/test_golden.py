"""A golden run's rate limit: its judge calls take evenly spaced turns, on a clock the test moves."""

from __future__ import annotations

import asyncio

from casework.worker.golden import Pace
from tests.support import run_async


class FakeTime:
    """A clock that moves only when told (or when a caller sleeps), and the sleeps asked for."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))


def test_turns_are_evenly_spaced_in_the_order_asked_and_idle_time_is_never_banked() -> None:
    time = FakeTime()
    pace = Pace(4, clock=time.clock, sleep=time.sleep)

    async def scenario() -> None:
        await asyncio.gather(*(pace() for _ in range(5)))  # five at once: the first goes now
        assert time.slept == [0.25, 0.5, 0.75, 1.0]
        time.now += 60  # a quiet minute: the next goes at once, and only one does
        time.slept.clear()
        await pace()
        await pace()
        assert time.slept == [0.25]

    run_async(scenario)
