"""A restarted in-memory broker loses what it held; the bridge delivers its replay window again.

Fed: 40 hook events through a bridge into Tansu #1, all acknowledged in Redis; then Tansu #1 and the bridge
are stopped and a fresh Tansu #2 and bridge start (what `ccstream up` does after a crash). Expected: all 40
event ids arrive in Tansu #2 (consumers drop repeats by event_id), and 40 more sent afterwards arrive once.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import redis

from stream.capture.hook import build_event, encode_event
from stream.stack.servers import RedisServer, TansuBroker
from tests.integration.test_bridge import read_topic
from tests.integration.workers import CcstreamProcess

pytestmark = pytest.mark.integration


def add_events(r: redis.Redis, key: str, n: int) -> set[str]:
    ids = set()
    for i in range(n):
        payload = {"session_id": f"s-{i % 5}", "hook_event_name": "SessionStart", "source": "startup",
                   "transcript_path": f"/nowhere/s-{i % 5}.jsonl"}
        ev = build_event(payload, host="test-host", user="tester", received_at=time.time())
        r.xadd(key, {"event": encode_event(ev)})
        ids.add(ev["event_id"])
    return ids


def read_ids(bootstrap: str, topic: str, want: set[str]) -> set[str]:
    return {e.event_id for e in read_topic(bootstrap, topic, want, timeout=30)}


def test_a_fresh_broker_gets_the_replay_window_again(tmp_path: Path) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    key = f"{prefix}:sessions"
    with RedisServer(tmp_path / "redis") as rs:
        r = redis.Redis.from_url(rs.url)  # type: ignore[attr-defined]
        first = add_events(r, key, 40)
        settings = {"redis_url": rs.url, "stream_key": key, "topic_prefix": prefix,  # type: ignore[attr-defined]
                    "broker_is_ephemeral": "1", "bridge_replay_seconds": "600"}
        with TansuBroker(tmp_path / "t1") as broker1:
            bridge = CcstreamProcess("bridge", tmp_path / "b1", {**settings, "kafka_bootstrap": broker1.bootstrap},
                                     web=False)
            bridge.start()
            try:
                got1 = read_ids(broker1.bootstrap, f"{prefix}.sessions", first)
                assert got1 == first
                # every entry acknowledged in Redis: nothing pending any more
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and r.xpending(key, "ccstream-bridge")["pending"]:
                    time.sleep(0.1)
                assert r.xpending(key, "ccstream-bridge")["pending"] == 0
            finally:
                bridge.stop()
        # broker 1 is gone with everything it held; a fresh one starts, as `up` does after a crash
        with TansuBroker(tmp_path / "t2") as broker2:
            bridge = CcstreamProcess("bridge", tmp_path / "b2", {**settings, "kafka_bootstrap": broker2.bootstrap},
                                     web=False)
            bridge.start()
            try:
                second = add_events(r, key, 40)
                got2 = read_ids(broker2.bootstrap, f"{prefix}.sessions", first | second)
                assert got2 == first | second
            finally:
                bridge.stop()
