"""The embedded broker let go by a recycle of the stack (stream/stack/recycle.py), on the real Tansu.

* `consumer_lag` counts, per partition of the consumed topics, what the worker's group has not committed;
* a real `ccstream up` whose broker passes a (tiny) limit once the corpus is in recycles the stack: every
  object lands exactly once before and after, the new broker holds nothing of the old, and a line appended
  after the recycle arrives.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
import uuid
from pathlib import Path

import pytest

from stream.config import Settings
from stream.stack.recycle import consumer_lag, rss_mb
from stream.stack.servers import TansuBroker
from tests.integration.corpus import count_objects
from tests.integration.upstack import UpStack

pytestmark = pytest.mark.integration


async def _produce_and_commit(bootstrap: str, s: Settings, sends: dict[int, int], commits: dict[int, int]) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if s.topic_raw_events not in await admin.list_topics():
            await admin.create_topics([NewTopic(s.topic_raw_events, 2, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for partition, n in sends.items():
            for i in range(n):
                await producer.send_and_wait(s.topic_raw_events, f"m{i}".encode(), partition=partition)
    finally:
        await producer.stop()
    if commits:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=s.app_id, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = {TopicPartition(s.topic_raw_events, p): o for p, o in commits.items()}
            consumer.assign(list(tps))
            await consumer.commit(tps)
        finally:
            await consumer.stop()


def test_consumer_lag_counts_what_the_group_has_not_committed(tansu: TansuBroker) -> None:
    tag = uuid.uuid4().hex[:8]
    s = Settings(topic_prefix=f"lag{tag}", app_id=f"lag{tag}")
    assert consumer_lag(s, tansu.bootstrap) == 0  # no consumed topic exists yet: nothing to lose
    # fed: 5 messages to partition 0, 3 to partition 1; the group commits 3 on partition 0 and nothing on 1
    asyncio.run(_produce_and_commit(tansu.bootstrap, s, {0: 5, 1: 3}, {0: 3}))
    assert consumer_lag(s, tansu.bootstrap) == 2 + 3
    asyncio.run(_produce_and_commit(tansu.bootstrap, s, {}, {0: 5, 1: 3}))
    assert consumer_lag(s, tansu.bootstrap) == 0
    asyncio.run(_produce_and_commit(tansu.bootstrap, s, {1: 1}, {}))
    assert consumer_lag(s, tansu.bootstrap) == 1


async def _produce_one_batch(bootstrap: str, topic: str, n: int) -> list[int]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=100, compression_type="zstd")
    await producer.start()
    try:
        futures = [await producer.send(topic, f"b{i}".encode(), partition=0) for i in range(n)]
        return [(await f).offset for f in futures]
    finally:
        await producer.stop()


def test_consumer_lag_sees_the_rest_of_a_batch_past_tansus_latest_offset(tansu: TansuBroker) -> None:
    # Tansu answers ListOffsets(latest) with the last batch's base offset + 1: a group committed there has
    # not read the batch's other records
    tag = uuid.uuid4().hex[:8]
    s = Settings(topic_prefix=f"lagb{tag}", app_id=f"lagb{tag}")
    asyncio.run(_produce_and_commit(tansu.bootstrap, s, {1: 1}, {1: 1}))  # creates the topic; partition 1 done
    # fed: one batch of 5 records on partition 0, and the group commits offset 1 (what Tansu calls the end)
    offsets = asyncio.run(_produce_one_batch(tansu.bootstrap, s.topic_raw_events, 5))
    assert offsets == [0, 1, 2, 3, 4]
    asyncio.run(_produce_and_commit(tansu.bootstrap, s, {}, {0: 1}))
    assert consumer_lag(s, tansu.bootstrap) == 4  # offsets 1..4 are not committed
    asyncio.run(_produce_and_commit(tansu.bootstrap, s, {}, {0: 5}))
    assert consumer_lag(s, tansu.bootstrap) == 0


def test_consumer_lag_is_unknown_when_the_broker_does_not_answer() -> None:
    from stream.stack.servers import free_port

    assert consumer_lag(Settings(), f"127.0.0.1:{free_port()}", timeout=3.0) is None


def test_up_recycles_a_full_broker_once_everything_is_in_clickhouse(tmp_path: Path, corpus: Path) -> None:
    # fed: three copies of the corpus (132 MB; the broker grows ~6 MB a copy, zstd chunks, and ~3 MB with
    # no data at all, its own topics and Faust's), and a limit of 12 MB of growth
    stack = UpStack(tmp_path, {"CCSTREAM_BROKER_RECYCLE_MB": "12", "CCSTREAM_BROKER_RECYCLE_CHECK_SECONDS": "2"})
    for k in range(3):
        for folder in corpus.iterdir():
            shutil.copytree(folder, stack.projects / f"{folder.name}-copy{k}")
    per_file = {str(p): count_objects(p) for p in stack.projects.rglob("*.jsonl")}
    total = sum(per_file.values())
    stack.start()

    def tansu_pid() -> int | None:
        try:
            return int(stack.worker_info()["children"]["tansu"])
        except (OSError, ValueError, KeyError):  # between two stacks
            return None

    try:
        first = tansu_pid()
        stack.wait_for(lambda: "restarting the stack to let them go" in stack.log_path.read_text(), 300,
                       "the recycle")
        stack.wait_for(lambda: tansu_pid() not in (None, first), 120, "a new broker")
        stack.wait_for(lambda: stack._answers(), 120, "the new worker")
        second = tansu_pid()
        assert second is not None
        line = next(x for x in stack.log_path.read_text().splitlines() if "to let them go" in x)
        grown = float(re.search(r"grown by ([\d,.]+) MB", line).group(1).replace(",", ""))  # type: ignore[union-attr]
        held = float(re.search(r"to ([\d,.]+) MB", line).group(1).replace(",", ""))  # type: ignore[union-attr]
        assert grown >= 12
        assert rss_mb(second) < held - 10, "the new broker should hold nothing of the old one's messages"

        # after the recycle: one more line in a session of its own
        session = str(uuid.uuid4())
        path = stack.projects / "-tmp-after-recycle" / f"{session}.jsonl"
        path.parent.mkdir(parents=True)
        obj = {"type": "user", "uuid": str(uuid.uuid4()), "parentUuid": None, "sessionId": session,
               "timestamp": "2026-12-04T10:00:00.000Z", "cwd": "/tmp/after", "version": "2.1.42",
               "message": {"role": "user", "content": "after the recycle"}}
        path.write_bytes(json.dumps(obj).encode() + b"\n")
        per_file[str(path)] = 1
        want = total + 1
        stack.wait_for(lambda: int(stack.scalar("SELECT count() AS n FROM claude_raw_traces")) >= want, 180,
                       f"{want} rows")
        time.sleep(3)  # a repeat would show up now
        got = {r["file_path"]: int(r["n"]) for r in stack.query(
            "SELECT file_path, count() AS n FROM claude_raw_traces GROUP BY file_path")}
        assert got == per_file  # not FINAL: a row sent twice would count twice
        assert stack.scalar("SELECT count() AS n FROM dead_letters FINAL") == 0
    finally:
        assert stack.stop() == 0
