"""The hook's pure parts (validation, event shape, RESP encoding and decoding, URL resolution) and its
behaviour when Redis is unreachable: spool, exit 0, nothing on stdout."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stream.capture import hook, resp, spool
from stream.config import load_settings
from stream.contract.session_event import SessionEvent
from stream.stack.servers import free_port

REPO = Path(__file__).resolve().parents[3]
START = {"session_id": "abc", "transcript_path": "/h/.claude/projects/p/abc.jsonl", "cwd": "/w",
         "hook_event_name": "SessionStart", "source": "startup"}


@pytest.mark.parametrize("raw, reason", [
    (b"", "empty payload on stdin"),
    (b"{not json", "payload is not JSON"),
    (b"[1, 2]", "payload is a JSON list, not an object"),
    (b'{"hook_event_name": "SessionEnd"}', "required field 'session_id' is missing"),
    (b'{"session_id": "", "hook_event_name": "SessionEnd"}', "required field 'session_id' is missing"),
    (b'{"session_id": "a", "hook_event_name": 3}', "required field 'hook_event_name' is missing"),
    (b'{"session_id": "a", "hook_event_name": "Stop", "transcript_path": 7}', "transcript_path is a int"),
])
def test_invalid_payloads_are_rejected_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(hook.Rejected) as exc:
        hook.parse_payload(raw)
    assert str(exc.value).startswith(reason)


def test_any_event_with_the_required_fields_is_accepted() -> None:
    for name in ("SessionStart", "SessionEnd", "SubagentStop", "Stop", "PreCompact", "Notification"):
        payload = {"session_id": "s", "hook_event_name": name}
        assert hook.parse_payload(json.dumps(payload).encode()) == payload


def test_event_carries_payload_host_user_and_time_and_decodes_as_session_event() -> None:
    ev = hook.build_event(START, host="box", user="ann", received_at=1700000000.25, event_id="e1")
    decoded = SessionEvent.decode(hook.encode_event(ev))
    assert decoded == SessionEvent(event_id="e1", hook_event_name="SessionStart", session_id="abc",
                                   transcript_path="/h/.claude/projects/p/abc.jsonl", cwd="/w", host="box",
                                   user="ann", received_at=1700000000.25, payload=START, stream_id=None)
    a = hook.build_event(START, host="b", user="u", received_at=0)["event_id"]
    b = hook.build_event(START, host="b", user="u", received_at=0)["event_id"]
    assert len(a) == 32 and a != b


def test_resp_encoding_and_decoding() -> None:
    assert resp.encode_command("XADD", "k", "*", "event", "é") == (
        b"*5\r\n$4\r\nXADD\r\n$1\r\nk\r\n$1\r\n*\r\n$5\r\nevent\r\n$2\r\n\xc3\xa9\r\n")
    replies = io.BytesIO(b"+PONG\r\n$15\r\n1700000000000-0\r\n$-1\r\n:7\r\n-NOSCRIPT no\r\n*2\r\n:1\r\n$1\r\na\r\n")
    got = [resp.read_reply(replies) for _ in range(6)]
    assert got[:4] == ["PONG", b"1700000000000-0", None, 7]
    assert isinstance(got[4], resp.RespError) and str(got[4]) == "NOSCRIPT no"
    assert got[5] == [1, b"a"]
    with pytest.raises(ConnectionError):
        resp.read_reply(io.BytesIO(b"$5\r\nab"))  # connection cut mid-reply


def test_resolve_redis_url_prefers_setting_then_run_file(tmp_path: Path) -> None:
    s = load_settings(env={}, data_dir=tmp_path)
    assert hook.resolve_redis_url(s) is None
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "redis.url").write_text("redis://127.0.0.1:7000/0\n")
    assert hook.resolve_redis_url(s) == "redis://127.0.0.1:7000/0"
    assert hook.resolve_redis_url(s.with_overrides(redis_url="redis://h:1/2")) == "redis://h:1/2"


def test_capture_without_redis_spools_and_rejects(tmp_path: Path) -> None:
    s = load_settings(env={}, data_dir=tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0", host="h", user="u")
    assert hook.capture(json.dumps(START).encode(), s, received_at=5.0) == "spooled"
    assert hook.capture(b"garbage", s, received_at=6.0) == "rejected"
    [line] = (s.spool_dir / spool.EVENTS).read_text().splitlines()
    ev = SessionEvent.decode(line)
    assert (ev.session_id, ev.hook_event_name, ev.host, ev.user, ev.received_at, ev.payload) == (
        "abc", "SessionStart", "h", "u", 5.0, START)
    [rej] = [json.loads(x) for x in (s.spool_dir / spool.REJECTS).read_text().splitlines()]
    assert (rej["received_at"], rej["raw"]) == (6.0, "garbage")
    assert rej["reason"].startswith("payload is not JSON")


def test_hook_process_exits_0_silently_and_quickly_when_redis_is_unreachable(tmp_path: Path) -> None:
    env = {**os.environ, "CCSTREAM_DATA_DIR": str(tmp_path), "PYTHONPATH": str(REPO),
           "CCSTREAM_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    for payload in (json.dumps(START).encode(), b"not json at all"):
        r = subprocess.run([sys.executable, "-m", "stream.capture.hook"], input=payload, env=env, capture_output=True,
                           timeout=20, cwd=REPO)
        assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")
    assert spool.pending_count(tmp_path / "spool") == 1
    assert spool.reject_count(tmp_path / "spool") == 1


def test_broken_config_still_spools_the_event(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("this is = = not toml")
    env = {**os.environ, "CCSTREAM_DATA_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "stream.capture.hook"], input=json.dumps(START).encode(), env=env,
                       capture_output=True, timeout=20, cwd=REPO)
    assert (r.returncode, r.stdout) == (0, b"")
    assert b"configuration error" in r.stderr
    assert spool.pending_count(tmp_path / "spool") == 1
