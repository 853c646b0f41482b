"""Path confinement end to end: hook payloads whose transcript_path leaves the Claude root are refused and
recorded (a dead letter with reason ``refused_path`` in the sink's store), and never opened.

Real processes: `ccstream hook` writes each payload to a real Redis, the edge's in-process bridge forwards it
to the real broker (Tansu), the edge's sessions agent judges the path, and a sink stores the dead letters in
chDB. "Never opened" is watched with inotify (IN_OPEN / IN_ACCESS) on the bait files and the FIFO: no process
but the test touches them, so any open is the edge's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import struct
import uuid
from pathlib import Path
from typing import Any

import pytest

from stream.stack.servers import RedisServer, TansuBroker
from tests.integration.test_team import hook, scalar, transcript_line, wait_for
from tests.integration.workers import CcstreamProcess

pytestmark = pytest.mark.integration

IN_ACCESS = 0x001
IN_OPEN = 0x020
IN_NONBLOCK = 0o4000


class OpenWatch:
    """inotify watches reporting every open or read of the given paths (stdlib ctypes, no extra package)."""

    def __init__(self, paths: list[Path]) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.fd = libc.inotify_init1(IN_NONBLOCK)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        self.names: dict[int, Path] = {}
        for p in paths:
            wd = libc.inotify_add_watch(self.fd, os.fsencode(p), IN_OPEN | IN_ACCESS)
            assert wd >= 0, f"{p}: {os.strerror(ctypes.get_errno())}"
            self.names[wd] = p

    def events(self) -> list[tuple[Path, int]]:
        out: list[tuple[Path, int]] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            pos = 0
            while pos < len(data):
                wd, mask, _cookie, length = struct.unpack_from("iIII", data, pos)
                out.append((self.names[wd], mask))
                pos += 16 + length

    def close(self) -> None:
        os.close(self.fd)


def test_paths_outside_the_root_are_refused_recorded_and_never_opened(
        tmp_path: Path, tansu: TansuBroker, redis_server: RedisServer, procs: list[CcstreamProcess]) -> None:
    """Fed: SessionStart hooks whose transcript_path is /etc/passwd, <root>/../../etc/passwd, a `..` path to a
    bait transcript outside the root, the bait's absolute path, a symlink inside the root to the bait, a FIFO
    inside the root, and a directory inside the root; then one legitimate session as a control.
    Expected: one dead letter with reason refused_path per refused path (its file_path the path as given),
    the edge's refused_paths counter at least 7, no row from any of them, no open or read of the bait or the
    FIFO; the control session's line is stored."""
    host, user = "ws-confined", "carol"
    prefix = f"conf-{uuid.uuid4().hex[:8]}"
    root = tmp_path / "home" / ".claude" / "projects"
    project = root / "-work-app"
    project.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    bait_sid = str(uuid.uuid4())
    bait = outside / f"{bait_sid}.jsonl"
    bait.write_bytes(transcript_line(bait_sid, "secret outside the root"))
    link = project / f"{uuid.uuid4()}.jsonl"
    link.symlink_to(bait)
    fifo = project / f"{uuid.uuid4()}.jsonl"
    os.mkfifo(fifo)
    directory = project / f"{uuid.uuid4()}.jsonl"
    directory.mkdir()
    refused = [
        "/etc/passwd",
        f"{root}/../../etc/passwd",
        f"{project}/../../../outside/{bait.name}",
        str(bait),
        str(link),
        str(fifo),
        str(directory),
    ]
    watch = OpenWatch([bait, fifo])
    try:
        redis_url = f"{redis_server.url[:-2]}/3"
        common = {"kafka_bootstrap": tansu.bootstrap, "broker_is_ephemeral": "1", "topic_prefix": prefix}
        sink = CcstreamProcess("sink", tmp_path / "central", {
            **common, "app_id": f"ccstream-sink-{prefix}", "clickhouse_dsn": f"chdb://{tmp_path / 'ch'}"})
        edge = CcstreamProcess("edge", tmp_path / "edge", {
            **common, "app_id": f"ccstream-edge-{host}-{prefix}", "host": host, "user": user,
            "claude_roots": str(root), "redis_url": redis_url})
        for p in (sink, edge):
            p.start()
            procs.append(p)
        for p in (sink, edge):
            p.wait_ready(120)

        sessions: dict[str, str] = {}
        for path in refused:
            sid = str(uuid.uuid4())
            sessions[sid] = path
            hook(tmp_path / "hook", redis_url, host, user, {
                "session_id": sid, "transcript_path": path, "cwd": "/work/app",
                "hook_event_name": "SessionStart", "source": "startup"})
        control_sid = str(uuid.uuid4())
        control = project / f"{control_sid}.jsonl"
        control.write_bytes(transcript_line(control_sid, "inside the root"))
        hook(tmp_path / "hook", redis_url, host, user, {
            "session_id": control_sid, "transcript_path": str(control), "cwd": "/work/app",
            "hook_event_name": "SessionStart", "source": "startup"})

        def letters() -> list[dict[str, Any]]:
            return sink.query("SELECT host, file_path, reason, sample FROM dead_letters FINAL ORDER BY file_path")

        wait_for(lambda: len(letters()) >= len(refused), 90, "a dead letter per refused path", [sink, edge])
        wait_for(lambda: scalar(sink, "SELECT count() AS n FROM claude_raw_traces FINAL WHERE session_id = "
                                      "{s:String}", {"s": control_sid}) == 1, 60, "the control session's line",
                 [sink, edge])
        got = letters()
        assert [(r["host"], r["file_path"], r["reason"]) for r in got] == \
               sorted((host, p, "refused_path") for p in refused)
        # each letter carries the hook event that asked for the path
        assert {json.loads(r["sample"])["session_id"] for r in got} == set(sessions)
        # nothing but the control line was ever ingested: no row of any refused session, path or the bait
        rows = sink.query("SELECT session_id, file_path FROM claude_raw_traces FINAL")
        assert rows == [{"session_id": control_sid, "file_path": str(control)}]
        assert edge.status()["refused_paths"] >= len(refused)
        assert watch.events() == []
    finally:
        watch.close()
