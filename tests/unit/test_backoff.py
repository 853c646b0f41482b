"""stream.backoff: the delays between attempts, and a stop that ends a wait at once."""

from __future__ import annotations

import asyncio
import time

from stream.backoff import Backoff


def test_delays_double_up_to_the_cap_and_reset_starts_over() -> None:
    b = Backoff(start=0.2, maximum=1.0)
    assert [b.next_delay() for _ in range(6)] == [0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert b.failures == 6
    b.reset()
    assert b.delay == 0.2 and b.next_delay() == 0.2


def test_wait_sleeps_the_delay_and_a_set_stop_ends_it_early() -> None:
    async def scenario() -> tuple[float, float]:
        b = Backoff(start=0.05, maximum=10.0)
        t0 = time.monotonic()
        await b.wait()
        slept = time.monotonic() - t0
        stop = asyncio.Event()
        b2 = Backoff(start=5.0, maximum=10.0)
        asyncio.get_running_loop().call_later(0.05, stop.set)
        t1 = time.monotonic()
        await b2.wait(stop)
        return slept, time.monotonic() - t1

    slept, stopped = asyncio.run(scenario())
    assert slept >= 0.05
    assert stopped < 2.0, "a set stop ends a 5 s wait at once"
