"""Letting go of what the embedded broker holds: a recycle of the stack once everything is in ClickHouse.

Tansu's memory engine keeps every message it was sent, so an always-on `up` grows with history (~200 MB for
1 GB of transcripts, docs/benchmarks.md). It offers no way to drop what was consumed: no retention, and
DeleteRecords panics in its memory engine ("not yet implemented", tansu 0.6.0 dynostore.rs). Deleting a topic
under the worker would lose rows (Faust drops messages below a partition's read offset, and a recreated topic
numbers from 0). So once the broker's RSS has grown `broker_recycle_mb` past what it held when the stack
became ready (~15-18 MB: its own topics and Faust's, which a fresh broker holds too, so a recycle never
leads to another) and the worker's consumer group has
committed every message of every topic it consumes (ClickHouse then holds all the broker holds), `up` restarts
the stack the way it restarts after a crash: the worker takes its file cursors from ClickHouse, the bridge
delivers its replay window again (consumers drop repeats by event id), hooks spool while Redis restarts.
Nothing is lost or repeated; that path is the one the crash tests prove.

`should_recycle` is the decision, pure; `consumer_lag`, `rss_mb` and `drain_worker` are the I/O; `Recycler`
asks them at most every `broker_recycle_check_seconds`, and the lag only when the broker is over the limit.
A backfill keeps the group behind for as long as it runs, so over the limit `up` first asks the worker to
stop history reads (`drain_worker`): the group catches up in seconds, and the next stack's first scan reads
on from the cursors in ClickHouse.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from stream.config import Settings
from stream.stack.servers import rss_kb


def should_recycle(grown_mb: float, limit_mb: int, lag: int | None) -> bool:
    """Recycle only once grown past the limit and only with nothing uncommitted (an unknown lag is not zero)."""
    return limit_mb > 0 and grown_mb >= limit_mb and lag == 0


def consumed_topics(settings: Settings) -> dict[str, list[str]]:
    """Every topic each consumer group of the stack reads, by group: one worker's, or the sink's and the
    edge's of a split `up` (the changelogs are read only at recovery, from offsets kept beside the tables,
    and are rebuilt on a fresh broker)."""
    sink = [settings.topic_sessions, settings.topic_raw_events, settings.topic_raw_live, settings.topic_dead_letters,
            settings.topic_otel]
    if not settings.up_split:
        return {settings.app_id: [*sink, settings.topic_tail_requests, settings.topic_tail_live]}
    edge = settings.with_overrides(app_id=settings.edge_app_id)
    return {settings.app_id: sink, edge.app_id: [settings.topic_sessions, edge.topic_tail_requests,
                                                  edge.topic_tail_live, settings.topic_raw_inserted]}


def rss_mb(pid: int) -> float:
    return rss_kb(pid) / 1024


async def _lag(bootstrap: str, group: str, topics: Iterable[str]) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    # the embedded broker only: plain TCP on loopback
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=200)
    await admin.start()
    try:
        await consumer.start()
        try:
            existing = await consumer.topics()
            tps = [TopicPartition(t, p) for t in topics if t in existing
                   for p in sorted(consumer.partitions_for_topic(t) or ())]
            if not tps:
                return 0
            ends = await consumer.end_offsets(tps)
            committed = await admin.list_consumer_group_offsets(group, partitions=tps)
            done = {tp: (m.offset if (m := committed.get(tp)) is not None and m.offset >= 0 else 0) for tp in tps}
            lag = sum(max(0, ends[tp] - done[tp]) for tp in tps)
            # Tansu 0.6.0 answers the latest offset as the last batch's base + 1, so a partition that looks
            # drained may still hold the rest of its last batch: read from the committed offset to see
            # (bounded: only that batch can lie beyond it)
            unsure = [tp for tp in tps if 0 < ends[tp] <= done[tp]] if lag == 0 else []
            if unsure:
                consumer.assign(unsure)
                for tp in unsure:
                    consumer.seek(tp, done[tp])
                for _ in range(3):
                    got = await consumer.getmany(*unsure, timeout_ms=300)
                    lag += sum(1 for tp, msgs in got.items() for m in msgs if m.offset >= done[tp])
                    if lag:
                        break
        finally:
            await consumer.stop()
    finally:
        await admin.close()
    return lag


def consumer_lag(settings: Settings, bootstrap: str, timeout: float = 15.0) -> int | None:
    """Messages on the consumed topics that the stack's groups have not committed (at least; 0 means none);
    None when the broker did not answer in time."""
    async def every_group() -> int:
        return sum([await _lag(bootstrap, group, topics) for group, topics in consumed_topics(settings).items()])

    try:
        return asyncio.run(asyncio.wait_for(every_group(), timeout))
    except Exception:  # the broker busy, restarting, or refusing: ask again next time
        return None


def drain_worker(settings: Settings, url: str | None, draining: bool) -> bool:
    """Ask the worker at `url` to stop (or resume) history reads (agents/web.py, /ccstream/drain/); True
    when it did."""
    import json

    from stream.analytics.sqlclient import post_json, worker_token

    if not url:
        return False
    try:
        status, _ = post_json(url, "/ccstream/drain/", json.dumps({"draining": draining}).encode(),
                              {"Authorization": f"Bearer {worker_token(settings)}"}, timeout=10)
    except Exception:  # the worker busy or gone: the stack goes on as it is, and is asked again later
        return False
    return status == 200


class Recycler:
    """Asked by `up` every tick: True when the stack should be recycled now.

    Over the limit with messages in flight (a backfill keeps the group behind for as long as it runs), it
    asks the worker to stop history reads and checks every DRAIN_CHECK_SECONDS until the group has caught
    up; if it has not within DRAIN_TIMEOUT_SECONDS, history resumes and the next check is a normal one."""

    DRAIN_CHECK_SECONDS = 2.0
    DRAIN_TIMEOUT_SECONDS = 120.0

    def __init__(self, settings: Settings, broker_pid: int | None, bootstrap: str | None, *,
                 clock: Callable[[], float] = time.monotonic,
                 rss: Callable[[int], float] = rss_mb,
                 lag: Callable[[Settings, str], int | None] = consumer_lag,
                 drain: Callable[[bool], bool] = lambda draining: False) -> None:
        self.settings = settings
        self.broker_pid = broker_pid
        self.bootstrap = bootstrap
        self.clock = clock
        self.rss = rss
        self.lag = lag
        self.drain = drain
        self.next_check = clock() + settings.broker_recycle_check_seconds
        self.baseline = rss(broker_pid) if broker_pid else 0.0  # what a fresh broker holds
        self.last_rss = self.baseline
        self.draining_since: float | None = None

    @property
    def grown(self) -> float:
        return self.last_rss - self.baseline

    def due(self) -> bool:
        limit = self.settings.broker_recycle_mb
        if limit <= 0 or not self.broker_pid or not self.bootstrap:
            return False  # never, or not our broker
        now = self.clock()
        if now < self.next_check:
            return False
        self.next_check = now + self.settings.broker_recycle_check_seconds
        self.last_rss = self.rss(self.broker_pid)
        if self.grown < limit:
            return False
        if should_recycle(self.grown, limit, self.lag(self.settings, self.bootstrap)):
            return True
        if self.draining_since is None:
            if self.drain(True):
                self.draining_since = now
        elif now - self.draining_since >= self.DRAIN_TIMEOUT_SECONDS:
            self.drain(False)
            self.draining_since = None
            return False
        if self.draining_since is not None:
            self.next_check = now + self.DRAIN_CHECK_SECONDS
        return False
