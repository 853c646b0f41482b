"""The bridge: Redis stream ``ccstream:sessions`` → Kafka ``ccstream.sessions``, acknowledged only after the broker.

Delivery is at least once, never less:

* a consumer group reads the stream; entries are produced to Kafka (key = session id, value = the
  SessionEvent with ``stream_id`` set) and XACKed only after every message of the batch was acknowledged by
  the broker (acks=all). Kafka down: the batch is retried with backoff and nothing is acknowledged.
* on (re)start the bridge first drains the hook spool into the stream, then re-delivers the entries its
  consumer had read but not acknowledged (its own pending list, read from id 0), claims entries another
  consumer left pending for long (XAUTOCLAIM), then reads new entries with XREADGROUP BLOCK. A new group
  starts at id 0, so a first start catches up with the whole stream, however long.
* the stream is bounded by trimming (XTRIM MINID) below the oldest entry any group still needs: its oldest
  pending entry, or the entry after its last delivered one. Nothing unread or unacknowledged is ever cut.

Consumers drop repeats by ``event_id`` (a crash between the broker's ack and our XACK re-sends a batch).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from typing import Any

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stream.backoff import Backoff
from stream.capture import spool
from stream.capture.hook import resolve_redis_url, send_events
from stream.capture.resp import Resp
from stream.config import Settings, load_settings
from stream.contract.kafka import aiokafka_kwargs
from stream.contract.session_event import SessionEvent
from stream.stack.rundir import redis_answers, strip_password

log = logging.getLogger("ccstream.bridge")

BATCH = 500  # stream entries per XREADGROUP / Kafka batch
BLOCK_MS = 1000  # XREADGROUP BLOCK; also how often a stop request is noticed
BACKOFF_START = 0.2
BACKOFF_MAX = 5.0
TRIM_INTERVAL = 2.0  # seconds between XTRIM MINID while entries flow
IDLE_TRIM_INTERVAL = 60.0  # and with nothing forwarded since the last one (the replay window still moves)
SPOOL_INTERVAL = 2.0  # seconds between looks at the local spool
CLAIM_INTERVAL = 30.0  # seconds between XAUTOCLAIMs of entries other consumers left behind
PRODUCE_TIMEOUT = 10.0  # seconds one attempt at a batch may take before the producer is replaced
CLAIM_MIN_IDLE_MS = 60_000  # an entry pending this long at another consumer is taken over

REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError, asyncio.TimeoutError)


class _Stopped(Exception):
    """Stop was requested while a batch waited for the broker; the batch stays pending in Redis."""


# ---- pure logic -------------------------------------------------------------------------------------------


def parse_id(entry_id: str | bytes) -> tuple[int, int]:
    s = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = s.partition("-")
    return int(ms), int(seq or 0)


def format_id(ms: int, seq: int) -> str:
    return f"{ms}-{seq}"


def trim_point(groups: list[dict[str, Any]], oldest_pending: dict[str, str | None]) -> str | None:
    """The MINID below which no group needs anything: per group its oldest pending entry, else the entry just
    after its last delivered one; the smallest over all groups. None when there is no group (trim nothing).

    ``groups`` are XINFO GROUPS rows (name, last-delivered-id, pending); ``oldest_pending`` maps a group name
    to its smallest pending id (XPENDING summary) or None.
    """
    points: list[tuple[int, int]] = []
    for g in groups:
        name = _text(g["name"])
        oldest = oldest_pending.get(name)
        if int(g.get("pending") or 0) > 0 and oldest:
            points.append(parse_id(oldest))
        else:
            ms, seq = parse_id(_text(g["last-delivered-id"]))
            points.append((ms, seq + 1))
    if not points:
        return None
    return format_id(*min(points))


def stream_entries(resp: Any) -> list[tuple[Any, Any]]:
    """The entries of a one-stream XREADGROUP reply (RESP2 list or RESP3 map)."""
    if not resp:
        return []
    if isinstance(resp, dict):
        return list(next(iter(resp.values()))[0] if resp else [])
    return list(resp[0][1])


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def to_message(entry_id: str | bytes, fields: dict[Any, Any] | None) -> SessionEvent:
    """The Kafka message for one stream entry; raises ValueError for an entry that holds no event."""
    if not fields:
        raise ValueError("entry has no fields (deleted from the stream)")
    raw = fields.get(b"event", fields.get("event"))
    if raw is None:
        raise ValueError("entry has no 'event' field")
    try:
        ev = SessionEvent.decode(raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"entry's event is not a SessionEvent: {exc}") from None
    ev.stream_id = _text(entry_id)
    return ev


# ---- the bridge ----------------------------------------------------------------------------------------


class Bridge:
    def __init__(self, settings: Settings, consumer: str | None = None) -> None:
        self.settings = settings
        self.key = settings.stream_key
        self.group = settings.bridge_group
        self.consumer = consumer or f"{settings.host}-bridge"
        self.topic = settings.topic_sessions
        self.redis: aioredis.Redis | None = None
        self.producer: AIOKafkaProducer | None = None
        self.forwarded = 0
        self.skipped = 0
        self._last_trim = 0.0
        self._forwarded_since_trim = False
        self._last_spool = 0.0
        self._last_claim = 0.0
        # A memory-only broker (the embedded Tansu) loses what it held when it restarts, including events this
        # bridge already acknowledged. So keep acknowledged entries for a window and, on a fresh broker,
        # deliver that window again; consumers drop the repeats by event_id (ClickHouse merges them).
        self.replay_window = settings.bridge_replay_seconds if settings.broker_is_ephemeral else 0.0
        self._replayed = False

    # -- Kafka --
    async def _start_producer(self, stop: asyncio.Event) -> AIOKafkaProducer | None:
        backoff = Backoff(BACKOFF_START, BACKOFF_MAX)
        while not stop.is_set():
            producer = AIOKafkaProducer(
                **aiokafka_kwargs(self.settings), acks="all", enable_idempotence=False,
                compression_type="zstd", linger_ms=5, request_timeout_ms=10_000)
            try:
                await producer.start()
            except KafkaError as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                log.warning("Kafka not reachable (%s); retrying in %.1fs", exc, backoff.delay)
                await backoff.wait(stop)
                continue
            await self._ensure_topic()
            return producer
        return None

    async def _ensure_topic(self) -> None:
        """Create the sessions topic with the configured partitions (a broker may auto-create it with one)."""
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(**aiokafka_kwargs(self.settings))
        try:
            await admin.start()
            await admin.create_topics([NewTopic(self.topic, self.settings.topic_partitions, 1)])
        except Exception as exc:  # exists already, or not allowed: producing still works
            log.debug("create topic %s: %s", self.topic, exc)
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    async def _produce(self, events: list[SessionEvent], stop: asyncio.Event) -> None:
        """Send all events and wait for every broker ack; retry the whole batch until it is acked.

        An attempt that neither succeeds nor fails within PRODUCE_TIMEOUT (a broker that restarted empty can
        leave aiokafka waiting on partitions that no longer exist) counts as failed, and the producer is
        replaced so the next attempt starts from fresh metadata.
        """
        backoff = Backoff(BACKOFF_START, BACKOFF_MAX)
        while True:
            assert self.producer is not None
            producer = self.producer
            try:
                await asyncio.wait_for(self._send_all(producer, events), PRODUCE_TIMEOUT)
                return
            except (TimeoutError, KafkaError) as exc:
                if stop.is_set():
                    raise _Stopped() from exc
                log.warning("Kafka did not acknowledge %d events (%r); retrying in %.1fs", len(events), exc,
                            backoff.delay)
                with contextlib.suppress(Exception):
                    await producer.stop()
                await backoff.wait(stop)
                self.producer = await self._start_producer(stop)
                if self.producer is None or stop.is_set():
                    raise _Stopped() from exc

    async def _send_all(self, producer: AIOKafkaProducer, events: list[SessionEvent]) -> None:
        futures = [await producer.send(self.topic, ev.encode(), key=ev.session_id.encode()) for ev in events]
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise failed[0]

    # -- Redis --
    async def _connect_redis(self, stop: asyncio.Event) -> aioredis.Redis | None:
        backoff = Backoff(BACKOFF_START, BACKOFF_MAX)
        while not stop.is_set():
            url = resolve_redis_url(self.settings)
            if url is None:
                log.warning("no Redis URL (CCSTREAM_REDIS_URL unset, no %s); retrying in %.1fs",
                            self.settings.run_dir / "redis.url", backoff.delay)
            else:
                if not await asyncio.to_thread(redis_answers, url, 5.0):
                    log.warning("Redis %s not reachable or refused the password; retrying in %.1fs",
                                strip_password(url), backoff.delay)
                    await backoff.wait(stop)
                    continue
                client = aioredis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=BLOCK_MS / 1000 + 10)
                try:
                    await self._ensure_group(client)
                    return client
                except REDIS_ERRORS as exc:
                    await client.aclose()
                    log.warning("Redis %s not reachable (%s); retrying in %.1fs", strip_password(url), exc,
                                backoff.delay)
            await backoff.wait(stop)
        return None

    async def _ensure_group(self, client: aioredis.Redis) -> None:
        try:
            # id 0: a new group starts with everything already in the stream
            await client.xgroup_create(self.key, self.group, id="0", mkstream=True)
            log.info("created consumer group %s on %s", self.group, self.key)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            if self.replay_window and not self._replayed:
                since = format_id(int((time.time() - self.replay_window) * 1000), 0)
                groups: Any = await client.xinfo_groups(self.key)
                last = next((_text(g["last-delivered-id"]) for g in groups if _text(g["name"]) == self.group), None)
                if last is not None and parse_id(last) > parse_id(since):
                    await client.xgroup_setid(self.key, self.group, id=since)
                    log.info("fresh in-memory broker: delivering the stream again from %s (the last %.0fs)",
                             since, self.replay_window)
        self._replayed = True

    async def _drain_spool(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_spool < SPOOL_INTERVAL:
            return
        self._last_spool = now
        spool_dir = self.settings.spool_dir
        url = resolve_redis_url(self.settings)
        if url is None or not spool.has_pending(spool_dir):
            return

        def work() -> int:
            with Resp(url, 5.0) as client:
                return spool.drain(spool_dir, lambda batch: send_events(client, self.key, batch))

        n = await asyncio.to_thread(work)
        if n:
            log.info("drained %d spooled events into %s", n, self.key)

    async def _forward(self, entries: list[tuple[Any, Any]], stop: asyncio.Event) -> None:
        """Produce a batch of stream entries, then XACK them (entries holding no event are acked and logged)."""
        assert self.redis is not None
        self._forwarded_since_trim = True
        events: list[SessionEvent] = []
        ids: list[Any] = []
        for entry_id, fields in entries:
            ids.append(entry_id)
            try:
                events.append(to_message(entry_id, fields))
            except ValueError as exc:
                self.skipped += 1
                log.error("skipping stream entry %s: %s", _text(entry_id), exc)
        if events:
            await self._produce(events, stop)
        await self.redis.xack(self.key, self.group, *ids)
        self.forwarded += len(events)

    async def _redeliver_own(self, stop: asyncio.Event) -> None:
        """Entries this consumer read before a crash and never acknowledged: read its pending list from 0."""
        assert self.redis is not None
        last: Any = "0-0"
        while not stop.is_set():
            resp: Any = await self.redis.xreadgroup(self.group, self.consumer, {self.key: last}, count=BATCH)
            entries = stream_entries(resp)
            if not entries:
                return
            log.info("re-delivering %d pending entries", len(entries))
            await self._forward(entries, stop)
            last = entries[-1][0]

    async def _claim_stale(self, stop: asyncio.Event, *, force: bool = False) -> None:
        """Take over entries another (dead) consumer of the group left pending for long."""
        now = time.monotonic()
        if not force and now - self._last_claim < CLAIM_INTERVAL:
            return
        self._last_claim = now
        assert self.redis is not None
        start: Any = "0-0"
        while not stop.is_set():
            resp: Any = await self.redis.xautoclaim(self.key, self.group, self.consumer, CLAIM_MIN_IDLE_MS,
                                               start_id=start, count=BATCH)
            start, entries = resp[0], resp[1]
            if entries:
                log.info("claimed %d entries left pending by other consumers", len(entries))
                await self._forward(entries, stop)
            if _text(start) == "0-0":
                return

    async def _trim(self, *, force: bool = False) -> None:
        now = time.monotonic()
        interval = TRIM_INTERVAL if self._forwarded_since_trim else IDLE_TRIM_INTERVAL
        if not force and now - self._last_trim < interval:
            return
        self._last_trim = now
        self._forwarded_since_trim = False
        assert self.redis is not None
        groups: list[Any] = await self.redis.xinfo_groups(self.key)
        oldest: dict[str, str | None] = {}
        for g in groups:
            if int(g.get("pending") or 0) > 0:
                summary: Any = await self.redis.xpending(self.key, g["name"])
                oldest[_text(g["name"])] = _text(summary["min"]) if summary.get("min") else None
        minid = trim_point(groups, oldest)
        if minid is not None and self.replay_window:
            keep_from = (int((time.time() - self.replay_window) * 1000), 0)
            minid = format_id(*min(parse_id(minid), keep_from))
        if minid is not None:
            removed = await self.redis.xtrim(self.key, minid=minid, approximate=False)
            if removed:
                log.debug("trimmed %d acknowledged entries below %s", removed, minid)

    async def _read_new(self, stop: asyncio.Event) -> None:
        assert self.redis is not None
        while not stop.is_set():
            resp: Any = await self.redis.xreadgroup(self.group, self.consumer, {self.key: ">"}, count=BATCH,
                                                    block=BLOCK_MS)
            entries = stream_entries(resp)
            if entries:
                await self._forward(entries, stop)
            # a burst's end is trimmed at once; an idle bridge asks Redis nothing but its blocking read
            await self._trim(force=not entries and self._forwarded_since_trim)
            await self._drain_spool()
            await self._claim_stale(stop)

    async def run(self, stop: asyncio.Event) -> None:
        self.producer = await self._start_producer(stop)
        if self.producer is None:
            return
        log.info("bridge %s: %s (group %s) → Kafka %s", self.consumer, self.key, self.group, self.topic)
        backoff = Backoff(BACKOFF_START, BACKOFF_MAX)
        try:
            while not stop.is_set():
                self.redis = await self._connect_redis(stop)
                if self.redis is None:
                    return
                try:
                    await self._drain_spool(force=True)
                    await self._redeliver_own(stop)
                    await self._claim_stale(stop, force=True)
                    await self._read_new(stop)
                    backoff.reset()
                except _Stopped:
                    return
                except ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    log.warning("consumer group vanished (Redis restarted empty?); recreating it")
                except REDIS_ERRORS as exc:
                    log.warning("Redis connection lost (%s); reconnecting in %.1fs", exc, backoff.delay)
                    await backoff.wait(stop)
                finally:
                    with contextlib.suppress(Exception):
                        await self.redis.aclose()
                    self.redis = None
        finally:
            if self.producer is not None:
                with contextlib.suppress(Exception):
                    await self.producer.stop()
            log.info("bridge stopped: %d events forwarded, %d entries skipped", self.forwarded, self.skipped)


async def run_bridge(settings: Settings, *, stop: asyncio.Event | None = None, consumer: str | None = None) -> None:
    """Run until ``stop`` is set (forever without one). Kafka or Redis trouble is retried, never fatal."""
    await Bridge(settings, consumer).run(stop or asyncio.Event())


# ---- command line --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="ccstream bridge",
        description="Forward hook events from the Redis stream to Kafka (at least once: XACK only after the "
                    "broker acknowledged). Runs until SIGTERM/SIGINT. Defaults come from CCSTREAM_* settings.")
    p.add_argument("--redis-url", help="Redis URL (default: CCSTREAM_REDIS_URL or the one `ccstream up` recorded)")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers host:port (default: CCSTREAM_KAFKA_BOOTSTRAP)")
    p.add_argument("--stream-key", help="Redis stream key (default: ccstream:sessions)")
    p.add_argument("--group", help="consumer group (default: ccstream-bridge)")
    p.add_argument("--consumer", help="consumer name in the group (default: <host>-bridge); keep it stable "
                                      "across restarts so pending entries are re-delivered at once")
    p.add_argument("--topic-prefix", help="Kafka topic prefix (default: ccstream → ccstream.sessions)")
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)

    overrides: dict[str, Any] = {}
    for opt, field in (("redis_url", "redis_url"), ("bootstrap", "kafka_bootstrap"),
                       ("stream_key", "stream_key"), ("group", "bridge_group"), ("topic_prefix", "topic_prefix")):
        if getattr(args, opt):
            overrides[field] = getattr(args, opt)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = load_settings(**overrides)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_bridge(settings, stop=stop, consumer=args.consumer)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
