"""The hook against a real redis-server: one stream entry per event with one `event` field; a spooled copy
of an event that already landed is not added twice; concurrent drains add each spooled event once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from stream.capture import hook, resp, spool
from stream.config import load_settings
from stream.contract.session_event import SessionEvent
from stream.stack.servers import RedisServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_hook_process_adds_one_entry_with_the_event(redis_server: RedisServer, tmp_path: Path) -> None:
    key = f"t{uuid.uuid4().hex[:8]}:sessions"
    payload = {"session_id": "s1", "transcript_path": "/p/s1.jsonl", "cwd": "/p", "hook_event_name": "SessionEnd",
               "reason": "other"}
    # Redis found through the run file `ccstream up` writes (CCSTREAM_REDIS_URL unset)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "redis.url").write_text(redis_server.url + "\n")
    env = {k: v for k, v in os.environ.items() if k != "CCSTREAM_REDIS_URL"}
    env.update(CCSTREAM_DATA_DIR=str(tmp_path), CCSTREAM_STREAM_KEY=key, PYTHONPATH=str(REPO),
               CCSTREAM_HOST="box", CCSTREAM_USER="ann")
    r = subprocess.run([sys.executable, "-m", "stream.capture.hook"], input=json.dumps(payload).encode(), env=env,
                       capture_output=True, timeout=20, cwd=REPO)
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")
    client = redis.Redis.from_url(redis_server.url)
    entries: Any = client.xrange(key)
    [(entry_id, fields)] = entries
    assert list(fields) == [b"event"]
    ev = SessionEvent.decode(fields[b"event"])
    assert (ev.session_id, ev.hook_event_name, ev.transcript_path, ev.cwd, ev.host, ev.user, ev.payload) == (
        "s1", "SessionEnd", "/p/s1.jsonl", "/p", "box", "ann", payload)
    assert client.ttl(hook.seen_key(key, ev.event_id)) > 0  # the marker expires: memory stays bounded
    assert spool.pending_count(tmp_path / "spool") == 0


def test_spooled_copy_of_a_landed_event_is_not_added_twice(redis_server: RedisServer, tmp_path: Path) -> None:
    """A reply lost to the timeout: the event landed but the hook spooled it too. The next hook drains it
    and the stream still holds it once."""
    key = f"t{uuid.uuid4().hex[:8]}:sessions"
    s = load_settings(env={}, data_dir=tmp_path, redis_url=redis_server.url, stream_key=key)
    ev = hook.build_event({"session_id": "a", "hook_event_name": "Stop"}, host="h", user="u", received_at=1.0)
    line = hook.encode_event(ev)
    with resp.Resp(redis_server.url, 1.0) as c:
        hook.send_events(c, key, [line])
    spool.append_event(s.spool_dir, line)
    assert hook.capture(b'{"session_id": "b", "hook_event_name": "Stop"}', s) == "sent"
    assert spool.pending_count(s.spool_dir) == 0
    client = redis.Redis.from_url(redis_server.url)
    entries: Any = client.xrange(key)
    sessions = [SessionEvent.decode(f[b"event"]).session_id for _, f in entries]
    assert sorted(sessions) == ["a", "b"]


def test_concurrent_drains_add_each_spooled_event_once(redis_server: RedisServer, tmp_path: Path) -> None:
    key = f"t{uuid.uuid4().hex[:8]}:sessions"
    spool_dir = tmp_path / "spool"
    sent = []
    for n in range(600):
        ev = hook.build_event({"session_id": f"s{n}", "hook_event_name": "Stop"}, host="h", user="u",
                              received_at=float(n))
        sent.append(ev["event_id"])
        spool.append_event(spool_dir, hook.encode_event(ev))
    # a crashed drainer left a copy of the first 100 in draining.jsonl: they are re-sent, yet added once
    lines = (spool_dir / spool.EVENTS).read_text().splitlines(keepends=True)
    (spool_dir / spool.DRAINING).write_text("".join(lines[:100]))
    counts: list[int] = []

    def drainer() -> None:
        with resp.Resp(redis_server.url, 5.0) as c:
            counts.append(spool.drain(spool_dir, lambda b: hook.send_events(c, key, b)))

    threads = [threading.Thread(target=drainer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    while spool.has_pending(spool_dir):  # a drainer that found the lock busy skipped; finish the rest
        drainer()
    client = redis.Redis.from_url(redis_server.url)
    entries: Any = client.xrange(key)
    ids = [SessionEvent.decode(f[b"event"]).event_id for _, f in entries]
    assert len(ids) == 600 and set(ids) == set(sent)
    assert sum(counts) == 700  # 100 re-sent copies were confirmed but not added again


def test_redis_restart_spool_then_drain_by_next_hook(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    server.wait_ready()
    key = "ccstream:sessions"
    s = load_settings(env={}, data_dir=tmp_path / "data", redis_url=server.url, stream_key=key)
    try:
        assert hook.capture(b'{"session_id": "s0", "hook_event_name": "SessionStart"}', s) == "sent"
        server.stop()
        for n in range(1, 6):
            assert hook.capture(json.dumps({"session_id": f"s{n}", "hook_event_name": "Stop"}).encode(), s) == "spooled"
        assert spool.pending_count(s.spool_dir) == 5
        server = RedisServer(tmp_path / "redis", port=server.port)
        server.start()
        server.wait_ready()
        assert hook.capture(b'{"session_id": "s6", "hook_event_name": "SessionEnd"}', s) == "sent"
        client = redis.Redis.from_url(server.url)
        entries: Any = client.xrange(key)
        got = sorted(SessionEvent.decode(f[b"event"]).session_id for _, f in entries)
        assert got == [f"s{n}" for n in range(7)]
        assert spool.pending_count(s.spool_dir) == 0
    finally:
        server.stop()
