"""Exponential backoff, the one way ccstream waits out a dependency that is down (Redis, Kafka, ClickHouse).

Callers keep their own loop (each knows what "failed" and "stop" mean); this owns the delays:

    backoff = Backoff(start=0.2, maximum=30.0)
    while True:
        try:
            return do()
        except Unavailable:
            await backoff.wait(stop)        # 0.2, 0.4, 0.8, … capped at 30 s; returns early once stop is set

`reset()` after a success starts the next outage from the shortest delay again.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class Backoff:
    start: float = 0.2
    maximum: float = 5.0
    factor: float = 2.0
    failures: int = field(default=0, init=False)  # failed attempts since the last reset

    @property
    def delay(self) -> float:
        """The wait before the next attempt (after `failures` failures so far)."""
        return min(self.start * self.factor ** max(0, self.failures), self.maximum)

    def next_delay(self) -> float:
        """Count one failure and return how long to wait before trying again."""
        d = self.delay
        self.failures += 1
        return d

    def reset(self) -> None:
        self.failures = 0

    async def wait(self, stop: asyncio.Event | None = None) -> float:
        """Count one failure and sleep its delay; a set `stop` ends the sleep at once. Returns the delay."""
        d = self.next_delay()
        if stop is None:
            await asyncio.sleep(d)
        else:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), d)
        return d
