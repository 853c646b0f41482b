"""The local broker's fetch wait: short while anything moves, long after a quiet spell (agents/fetch_wait)."""

from __future__ import annotations

import asyncio

import aiokafka
import aiokafka.consumer.consumer as aiokafka_consumer
from aiokafka.consumer.fetcher import Fetcher

from agents.fetch_wait import FetchPace, FetchWaitCap, PacedFetcher
from agents.runtime import Runtime, Topics
from stream.config import Settings


def test_the_wait_is_short_until_the_stack_has_been_quiet_then_long_until_something_moves() -> None:
    pace = FetchPace(active_ms=50, idle_ms=1000, idle_after=30.0, last_activity=100.0)
    assert pace.wait_ms(1500, now=100.0) == 50
    assert pace.wait_ms(1500, now=129.9) == 50
    assert pace.wait_ms(1500, now=130.0) == 1000  # quiet for idle_after seconds
    pace.touch(now=200.0)
    assert pace.wait_ms(1500, now=200.1) == 50
    assert pace.wait_ms(1500, now=400.0) == 1000


def test_the_wait_never_exceeds_what_the_consumer_asked_for() -> None:
    pace = FetchPace(active_ms=50, idle_ms=1000, idle_after=30.0, last_activity=0.0)
    assert pace.wait_ms(20, now=0.0) == 20
    assert pace.wait_ms(500, now=1e6) == 500


def test_the_runtime_paces_by_the_settings() -> None:
    rt = Runtime(Settings(fetch_wait_ms=40, fetch_idle_wait_ms=800, fetch_idle_after=12.0),
                 Topics(None, None, None))  # type: ignore[arg-type]
    assert (rt.pace.active_ms, rt.pace.idle_ms, rt.pace.idle_after) == (40, 800, 12.0)


def test_consumers_made_while_the_service_runs_build_paced_fetchers_and_the_class_is_put_back() -> None:
    pace = FetchPace(active_ms=50, idle_ms=1000, idle_after=30.0)

    async def scenario() -> tuple[type, type]:
        cap = FetchWaitCap(pace)
        await cap.start()
        during = aiokafka_consumer.Fetcher
        await cap.stop()
        return during, aiokafka_consumer.Fetcher

    during, after = asyncio.run(scenario())
    assert issubclass(during, PacedFetcher) and during.pace is pace
    assert after is Fetcher
    assert aiokafka.AIOKafkaConsumer is aiokafka_consumer.AIOKafkaConsumer  # the consumer class is untouched
