"""The bridge against a real redis-server and the real Tansu broker: at least once, through SIGKILLs, Redis
outages and Kafka outages; the stream trimmed only below what every group acknowledged."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from stream.capture import hook, spool
from stream.capture.bridge import parse_id, trim_point
from stream.config import load_settings
from stream.contract.session_event import SessionEvent
from stream.stack.servers import RedisServer, TansuBroker, free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


# ---- helpers -------------------------------------------------------------------------------------------


def new_names() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"t{tag}:sessions", f"t{tag}"  # stream key, topic prefix


def make_event(n: int, sessions: int = 37) -> tuple[str, str]:
    payload = {"session_id": f"sess-{n % sessions}", "hook_event_name": "SessionStart", "source": "startup",
               "transcript_path": f"/p/sess-{n % sessions}.jsonl", "cwd": "/p", "n": n}
    ev = hook.build_event(payload, host="h", user="u", received_at=1_700_000_000.0 + n)
    return ev["event_id"], hook.encode_event(ev)


def xadd_all(client: redis.Redis, key: str, events: list[tuple[str, str]]) -> None:
    """What the hook does, pipelined: the once-only XADD script per event."""
    pipe = client.pipeline(transaction=False)
    for event_id, line in events:
        pipe.eval(hook.XADD_ONCE_LUA, 2, key, hook.seen_key(key, event_id), line, hook.SEEN_TTL_SECONDS)
    pipe.execute()


def start_bridge(redis_url: str, bootstrap: str, key: str, prefix: str, data_dir: Path, log: Path,
                 consumer: str = "c1") -> subprocess.Popen[bytes]:
    env = {**os.environ, "CCSTREAM_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO)}
    with log.open("ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "stream.capture.bridge", "--redis-url", redis_url, "--bootstrap", bootstrap,
             "--stream-key", key, "--group", "bridge", "--topic-prefix", prefix, "--consumer", consumer],
            stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=REPO)


def stop_bridge(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=20)


async def _read_topic(bootstrap: str, topic: str, want: set[str], by: str, timeout: float) -> list[SessionEvent]:
    """All messages of the topic from the start until every wanted id (event_id or payload n) was seen."""
    deadline = time.monotonic() + timeout
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:  # a consumer's metadata is fixed at start: wait until the bridge created the topic
        while topic not in await admin.list_topics() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    parts = consumer.partitions_for_topic(topic)
    out: list[SessionEvent] = []
    try:
        assert parts, f"topic {topic} never appeared"
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen: set[str] = set()
        while time.monotonic() < deadline and not want <= seen:
            batches = await consumer.getmany(*tps, timeout_ms=500, max_records=5000)
            for records in batches.values():
                for rec in records:
                    assert rec.value is not None
                    ev = SessionEvent.decode(rec.value)
                    assert rec.key == ev.session_id.encode()
                    out.append(ev)
                    seen.add(ev.event_id if by == "event_id" else str(ev.payload["n"]))
    finally:
        await consumer.stop()
    return out


def read_topic(bootstrap: str, topic: str, want: set[str], by: str = "event_id",
               timeout: float = 60.0) -> list[SessionEvent]:
    return asyncio.run(_read_topic(bootstrap, topic, want, by, timeout))


def group_info(client: redis.Redis, key: str, group: str = "bridge") -> dict[str, Any]:
    for g in client.xinfo_groups(key):
        if g["name"] in (group, group.encode()):
            return g
    return {}


def wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture()
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()


# ---- tests ---------------------------------------------------------------------------------------------


def test_trim_point_is_the_oldest_entry_any_group_still_needs() -> None:
    groups = [
        {"name": "bridge", "last-delivered-id": "100-5", "pending": 0},
        {"name": "other", "last-delivered-id": "90-0", "pending": 2},
        {"name": "late", "last-delivered-id": "95-3", "pending": 0},
    ]
    # "other" still waits for 80-1: nothing from 80-1 on may go
    assert trim_point(groups, {"other": "80-1"}) == "80-1"
    # all acknowledged: keep from the entry after the smallest last delivered id
    assert trim_point([groups[0], groups[2]], {}) == "95-4"
    # a group that read nothing keeps everything (MINID 0-1 removes no real entry)
    assert trim_point([{"name": "new", "last-delivered-id": "0-0", "pending": 0}], {}) == "0-1"
    assert trim_point([], {}) is None


def test_10k_events_survive_three_sigkills(redis_server: RedisServer, tansu: TansuBroker, tmp_path: Path,
                                           procs: list[subprocess.Popen[bytes]]) -> None:
    """10,000 hook events (8,000 waiting before the first start, 50 in the local spool, the rest arriving
    while it runs); the bridge is SIGKILLed three times at random moments while it forwards (within 0.15 s
    of its first read, i.e. during its catch-up). Every event reaches Kafka at least once, and the set of
    event ids equals the set sent."""
    key, prefix = new_names()
    client = redis.Redis.from_url(redis_server.url)
    data_dir = tmp_path / "data"
    log = tmp_path / "bridge.log"
    rng = random.Random()
    events = [make_event(n) for n in range(10_000)]
    spooled, direct = events[:50], events[50:]
    for _, line in spooled:
        spool.append_event(data_dir / "spool", line)
    xadd_all(client, key, direct[:8000])

    def add_rest() -> None:  # hooks keep firing while the bridge is killed and restarted
        rest = direct[8000:]
        for i in range(0, len(rest), 100):
            xadd_all(client, key, rest[i : i + 100])
            time.sleep(0.1)

    adder = threading.Thread(target=add_rest)
    adder.start()
    unacked_at_kill = []
    try:
        for _ in range(3):
            bridge = start_bridge(redis_server.url, tansu.bootstrap, key, prefix, data_dir, log)
            procs.append(bridge)
            before = int(group_info(client, key).get("entries-read") or 0) if client.exists(key) else 0
            # kill at a random moment once it is forwarding (it has read something new)
            wait_for(lambda b=before: int(group_info(client, key).get("entries-read") or 0) > b,
                     30, "the bridge to read")
            time.sleep(rng.uniform(0.0, 0.15))
            g = group_info(client, key)
            bridge.send_signal(signal.SIGKILL)
            bridge.wait()
            unacked_at_kill.append(int(g.get("pending") or 0) + int(g.get("lag") or 0))
        bridge = start_bridge(redis_server.url, tansu.bootstrap, key, prefix, data_dir, log)
        procs.append(bridge)
    finally:
        adder.join()

    sent = {eid for eid, _ in events}
    got = read_topic(tansu.bootstrap, f"{prefix}.sessions", sent, timeout=60)
    got_ids = [e.event_id for e in got]
    assert set(got_ids) == sent, f"missing {len(sent - set(got_ids))}; unacked at kills {unacked_at_kill}"
    assert len(got_ids) >= 10_000
    assert all(e.stream_id for e in got)
    assert sum(unacked_at_kill) > 0, "no kill landed while entries were in flight"
    by_id = {e.event_id: e for e in got}
    for eid, line in events[:5] + events[-5:]:
        want = json.loads(line)
        ev = by_id[eid]
        assert (ev.session_id, ev.payload, ev.received_at) == (want["session_id"], want["payload"],
                                                               want["received_at"])
    # the spool was drained and everything acknowledged: the stream is trimmed to nothing
    assert spool.pending_count(data_dir / "spool") == 0
    wait_for(lambda: int(group_info(client, key).get("pending") or 0) == 0 and client.xlen(key) == 0, 15,
             "all entries acknowledged and trimmed")
    assert stop_bridge(bridge) == 0
    print(f"\nunacknowledged entries at the three kills: {unacked_at_kill}; "
          f"Kafka messages {len(got_ids)} for {len(sent)} events")


def test_redis_down_during_1000_hook_calls(tansu: TansuBroker, tmp_path: Path,
                                           procs: list[subprocess.Popen[bytes]]) -> None:
    """1,000 hook calls (every 50th a real `python -m stream.capture.hook` process); Redis is stopped after call 300 and
    started again before call 700. The calls in between spool; the next hook that reaches Redis drains the
    spool, the bridge reconnects, and all 1,000 events reach Kafka, each recorded once."""
    key, prefix = new_names()
    port = free_port()
    rdir = tmp_path / "redis"
    server = RedisServer(rdir, port=port)
    server.start()
    server.wait_ready()
    data_dir = tmp_path / "data"
    settings = load_settings(env={}, data_dir=data_dir, redis_url=server.url, stream_key=key)
    bridge = start_bridge(server.url, tansu.bootstrap, key, prefix, data_dir, tmp_path / "bridge.log")
    procs.append(bridge)
    env = {**os.environ, "CCSTREAM_DATA_DIR": str(data_dir), "CCSTREAM_REDIS_URL": server.url,
           "CCSTREAM_STREAM_KEY": key, "PYTHONPATH": str(REPO)}
    outcomes: dict[str, int] = {}
    try:
        for n in range(1000):
            if n == 300:
                server.stop()
            if n == 700:
                assert spool.pending_count(settings.spool_dir) == 400
                server = RedisServer(rdir, port=port)
                server.start()
                server.wait_ready()
            payload = json.dumps({"session_id": f"s{n % 7}", "hook_event_name": "Stop", "n": n,
                                  "transcript_path": f"/p/s{n % 7}.jsonl"}).encode()
            if n % 50 == 0:
                r = subprocess.run([sys.executable, "-m", "stream.capture.hook"], input=payload, env=env, cwd=REPO,
                                   capture_output=True, timeout=20)
                assert (r.returncode, r.stdout) == (0, b"")
                outcome = "process"
            else:
                outcome = hook.capture(payload, settings)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        assert outcomes == {"sent": 588, "spooled": 392, "process": 20}
        assert spool.pending_count(settings.spool_dir) == 0  # drained by the first hook after the restart
        got = read_topic(tansu.bootstrap, f"{prefix}.sessions", {str(n) for n in range(1000)}, by="n",
                         timeout=60)
        ids_per_n: dict[int, set[str]] = {}
        for ev in got:
            ids_per_n.setdefault(int(ev.payload["n"]), set()).add(ev.event_id)
        assert sorted(ids_per_n) == list(range(1000))
        assert all(len(ids) == 1 for ids in ids_per_n.values())  # each call recorded once
        assert stop_bridge(bridge) == 0
    finally:
        server.stop()


def test_kafka_down_acknowledges_nothing_until_it_returns(redis_server: RedisServer, tmp_path: Path,
                                                          procs: list[subprocess.Popen[bytes]]) -> None:
    """The broker stops answering while the bridge runs (SIGSTOP: connections hang, nothing is acked):
    events arriving meanwhile stay unacknowledged in the stream (pending or unread, none trimmed); when the
    broker answers again they are delivered and acknowledged.

    (Not SIGKILL + restart: the memory-only Tansu comes back empty and, as observed, acknowledges produce
    requests for the topic it no longer has, so that scenario loses data inside the broker, not the bridge.)"""
    key, prefix = new_names()
    client = redis.Redis.from_url(redis_server.url)
    broker = TansuBroker(tmp_path / "tansu")
    broker.start()
    broker.wait_ready()
    assert broker.proc is not None
    bridge = start_bridge(redis_server.url, broker.bootstrap, key, prefix, tmp_path / "data",
                          tmp_path / "bridge.log")
    procs.append(bridge)
    try:
        first = [make_event(n) for n in range(20)]
        xadd_all(client, key, first)
        read_topic(broker.bootstrap, f"{prefix}.sessions", {e for e, _ in first}, timeout=30)
        wait_for(lambda: int(group_info(client, key).get("pending") or 0) == 0, 10, "first batch acked")
        broker.proc.send_signal(signal.SIGSTOP)

        during = [make_event(n) for n in range(100, 130)]
        xadd_all(client, key, during)
        time.sleep(3.0)  # the bridge reads them and waits for acks that do not come
        g = group_info(client, key)
        assert int(g["pending"]) + int(g["lag"]) == 30, g
        assert client.xlen(key) == 30

        broker.proc.send_signal(signal.SIGCONT)
        got = read_topic(broker.bootstrap, f"{prefix}.sessions", {e for e, _ in during}, timeout=60)
        assert {e.event_id for e in got} == {e for e, _ in first + during}
        wait_for(lambda: int(group_info(client, key).get("pending") or 0) == 0 and client.xlen(key) == 0, 15,
                 "the outage's events acknowledged and trimmed")
        assert stop_bridge(bridge) == 0
    finally:
        if broker.alive():
            broker.proc.send_signal(signal.SIGCONT)
        broker.stop()


def test_trim_keeps_what_another_group_has_not_read(redis_server: RedisServer, tansu: TansuBroker,
                                                    tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    """A second consumer group that read only 40 of 100 entries: the bridge forwards all 100 but trims only
    the 40 that every group is done with."""
    key, prefix = new_names()
    client = redis.Redis.from_url(redis_server.url)
    events = [make_event(n) for n in range(100)]
    xadd_all(client, key, events)
    client.xgroup_create(key, "other", id="0")
    read: Any = client.xreadgroup("other", "o1", {key: ">"}, count=40)
    ids: list[Any] = [eid for eid, _ in read[0][1]]
    client.xack(key, "other", *ids)
    bridge = start_bridge(redis_server.url, tansu.bootstrap, key, prefix, tmp_path / "data",
                          tmp_path / "bridge.log")
    procs.append(bridge)
    read_topic(tansu.bootstrap, f"{prefix}.sessions", {e for e, _ in events}, timeout=30)
    wait_for(lambda: client.xlen(key) == 60, 10, "trim down to the other group's unread entries")
    time.sleep(2.5)  # another trim round removes nothing more
    assert client.xlen(key) == 60
    kept: Any = client.xrange(key, count=1)
    assert parse_id(kept[0][0]) > parse_id(ids[-1])
    assert stop_bridge(bridge) == 0
