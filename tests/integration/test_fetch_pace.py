"""The paced fetch wait against the real broker: every fetch request the consumer sends carries the wait the
pace says, long when quiet, short from the fetch after one that brought records (agents/fetch_wait)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from agents.fetch_wait import FetchPace, FetchWaitCap
from stream.stack.servers import TansuBroker


def test_a_quiet_consumer_fetches_with_the_long_wait_and_records_make_the_next_fetches_short(
        tansu: TansuBroker) -> None:
    topic = f"pace-{uuid.uuid4().hex[:8]}"
    pace = FetchPace(active_ms=50, idle_ms=600, idle_after=1.0)
    sent: list[tuple[float, int]] = []  # (time, max_wait_time) of every fetch request

    async def scenario() -> tuple[list[int], list[int], list[bytes]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=tansu.bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(topic, 2, 1)])
        await admin.close()
        cap = FetchWaitCap(pace)
        await cap.start()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=tansu.bootstrap, fetch_max_wait_ms=1500,
                                    auto_offset_reset="earliest", group_id=None)
        await consumer.start()
        client_send = consumer._client.send

        async def recording_send(node_id: int, request: Any, **kw: Any) -> Any:
            if type(request).__name__.startswith("FetchRequest"):
                sent.append((time.monotonic(), request._max_wait_ms))
            return await client_send(node_id, request, **kw)

        consumer._client.send = recording_send  # type: ignore[method-assign]
        pace.touch(time.monotonic() - 10)  # quiet for 10 s
        await asyncio.sleep(2.0)
        quiet = [w for _, w in sent]
        producer = AIOKafkaProducer(bootstrap_servers=tansu.bootstrap)
        await producer.start()
        await producer.send_and_wait(topic, b"hello", partition=0)
        await producer.stop()
        got: list[bytes] = []
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                got += [r.value for r in records]
        arrived = time.monotonic()
        await asyncio.sleep(0.5)
        after = [w for t, w in sent if t > arrived]
        await consumer.stop()
        await cap.stop()
        return quiet, after, got

    quiet, after, got = asyncio.run(scenario())
    assert got == [b"hello"]
    assert quiet and set(quiet) == {600}, quiet  # nothing moved: every fetch waits long (fewer fetches)
    assert after and set(after) == {50}, after  # the record made the stack active: short waits again
