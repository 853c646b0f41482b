"""agents/sink.py's retry loop: ClickHouseUnavailable waited out through stream/backoff.py, capped at
sink_retry_max_seconds; anything else propagates at once (no server: the insert is a plain function)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from agents.sink import insert_with_retry, positions
from stream.store.client import ClickHouseRejected, ClickHouseUnavailable


def runtime(cap: float) -> Any:
    return SimpleNamespace(settings=SimpleNamespace(sink_retry_max_seconds=cap),
                           stats=SimpleNamespace(insert_retries=0), store=None)


def failing(times: int, exc: Exception) -> tuple[list[int], Any]:
    calls: list[int] = []

    def fn() -> int:
        calls.append(1)
        if len(calls) <= times:
            raise exc
        return 42

    return calls, fn


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays the retry loop sleeps, without sleeping them."""
    seen: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float, *args: Any) -> None:
        seen.append(delay)
        await real_sleep(0)

    monkeypatch.setattr("stream.backoff.asyncio.sleep", sleep)
    return seen


def test_unavailable_is_waited_out_with_growing_delays_capped(waits: list[float]) -> None:
    rt = runtime(cap=1.0)
    calls, fn = failing(5, ClickHouseUnavailable("connection refused"))
    assert asyncio.run(insert_with_retry(rt, "3 chunks", fn)) == 42
    assert len(calls) == 6 and rt.stats.insert_retries == 5
    assert waits == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0])


def test_a_rejection_is_not_retried(waits: list[float]) -> None:
    rt = runtime(cap=1.0)
    calls, fn = failing(1, ClickHouseRejected("Code: 117"))
    with pytest.raises(ClickHouseRejected):
        asyncio.run(insert_with_retry(rt, "3 chunks", fn))
    assert len(calls) == 1 and rt.stats.insert_retries == 0 and waits == []


def test_each_outage_starts_from_the_shortest_delay(waits: list[float]) -> None:
    rt = runtime(cap=30.0)
    for _ in range(2):
        _, fn = failing(2, ClickHouseUnavailable("timed out"))
        assert asyncio.run(insert_with_retry(rt, "x", fn)) == 42
    assert waits == pytest.approx([0.2, 0.4, 0.2, 0.4])


def test_positions_are_each_events_partition_and_offset() -> None:
    events = [SimpleNamespace(message=SimpleNamespace(partition=p, offset=o)) for p, o in ((0, 5), (1, 2), (0, 6))]
    assert positions(events) == [(0, 5), (1, 2), (0, 6)]
