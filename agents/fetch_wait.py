"""The Kafka consumers' fetch wait for the local broker, paced by activity, as a Service of the worker.

Tansu answers a fetch only when its wait expires, not when data arrives, and Faust hardcodes
fetch_max_wait_ms=1500 (faust/transport/drivers/aiokafka.py): each hop then costs up to 1.5 s. A 50 ms wait
took append-to-queryable p50 from 1.36 s to 0.33 s (benchmarks/tail_latency). But 20 fetches a second of
~28 partitions are most of what an idle stack costs: Tansu 8.5 % and the worker's consumer thread 3.2 % of a
core with nothing happening (benchmarks/idle). So the wait is short while anything moves and long once the
stack has been quiet for a while (`FetchPace`): the first line after a quiet spell waits at most one long
fetch on its first hop; every hop after it is short again.

Faust offers no setting for it, so while the worker runs, the consumer builds its fetcher from
`PacedFetcher`, which reads the wait from the pace for every fetch request and marks the pace active when
a fetch brought records. The class is put back when the service stops.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import aiokafka.consumer.consumer as aiokafka_consumer
from aiokafka.consumer.fetcher import Fetcher
from mode import Service

DEFAULT_MAX_WAIT_MS = 50
DEFAULT_IDLE_WAIT_MS = 1500
DEFAULT_IDLE_AFTER = 30.0


@dataclass
class FetchPace:
    """How long a fetch may wait at the broker: `active_ms` until the stack has been quiet for `idle_after`
    seconds, then `idle_ms`. Anything that moves (a fetch with records, a read asked for) calls `touch`.
    Never longer than what the consumer itself asked for. The idle wait is Faust's own 1.5 s: 1 s measured
    1.9-2.0 % of a core for the idle stack, 1.5 s 0.9-1.4 % (benchmarks/idle). (A second, 3 s step after 5
    quiet minutes saved only 0.2 % more, for a first line up to 3 s late: not worth it.)"""

    active_ms: int = DEFAULT_MAX_WAIT_MS
    idle_ms: int = DEFAULT_IDLE_WAIT_MS
    idle_after: float = DEFAULT_IDLE_AFTER
    last_activity: float = field(default_factory=time.monotonic)

    def touch(self, now: float | None = None) -> None:
        self.last_activity = time.monotonic() if now is None else now

    def is_idle(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return now - self.last_activity >= self.idle_after

    def wait_ms(self, requested: int, now: float | None = None) -> int:
        return min(requested, self.idle_ms if self.is_idle(now) else self.active_ms)


class PacedFetcher(Fetcher):  # type: ignore[misc]
    """aiokafka's Fetcher whose `_fetch_max_wait_ms` (read each time a fetch request is built) comes from a
    FetchPace, and which touches the pace when a fetch returned records."""

    pace: FetchPace = FetchPace()  # replaced per install by a subclass bound to the worker's pace

    @property  # type: ignore[override]
    def _fetch_max_wait_ms(self) -> int:
        return self.pace.wait_ms(self._requested_wait_ms)

    @_fetch_max_wait_ms.setter
    def _fetch_max_wait_ms(self, value: int) -> None:
        self._requested_wait_ms = int(value)

    @property  # type: ignore[override]
    def _fetcher_timeout(self) -> float:
        # how often the fetch loop wakes with nothing done (5 times a second by default): a safety net, since
        # consumption, assignment and resumes wake it anyway; a quiet stack wakes it once a long fetch
        if not self.pace.is_idle():
            return self._requested_timeout
        return max(self._requested_timeout, self.pace.wait_ms(self._requested_wait_ms) / 1000)

    @_fetcher_timeout.setter
    def _fetcher_timeout(self, value: float) -> None:
        self._requested_timeout = float(value)

    async def _proc_fetch_request(self, assignment: Any, node_id: int, request: Any) -> bool:
        has_records = bool(await super()._proc_fetch_request(assignment, node_id, request))
        if has_records:
            self.pace.touch()
        return has_records


def paced_fetcher(pace: FetchPace) -> type[Fetcher]:
    return type("PacedFetcher", (PacedFetcher,), {"pace": pace})


class FetchWaitCap(Service):
    """Started before the app's consumer is made (it is the app's first dependency), stopped after it."""

    def __init__(self, pace: FetchPace | None = None, **kwargs: Any) -> None:
        self.pace = pace or FetchPace()
        self._original: Any = None
        super().__init__(**kwargs)

    def install(self) -> None:
        if self._original is not None:
            return
        self._original = aiokafka_consumer.Fetcher
        aiokafka_consumer.Fetcher = paced_fetcher(self.pace)  # type: ignore[misc]

    def uninstall(self) -> None:
        if self._original is not None:
            aiokafka_consumer.Fetcher = self._original  # type: ignore[misc]
            self._original = None

    async def on_start(self) -> None:
        self.install()

    async def on_stop(self) -> None:
        self.uninstall()
