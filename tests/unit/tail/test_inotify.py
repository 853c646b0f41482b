"""stream.tail.inotify: the decoder on bytes, then the watcher on a real directory tree (the kernel's inotify),
and the tailer asking for reads from it."""

from __future__ import annotations

import asyncio
import struct
import sys
from pathlib import Path

import pytest

from stream.contract.tail_request import RequestReason, TailRequest
from stream.tail.inotify import (
    IN_CREATE,
    IN_ISDIR,
    IN_MODIFY,
    IN_Q_OVERFLOW,
    Change,
    Inotify,
    Kind,
    RawEvent,
    decode,
)
from tests.unit.agents.test_tailer import make, requests

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")


def event(wd: int, mask: int, name: bytes, pad_to: int = 16) -> bytes:
    padded = name + b"\0" * (pad_to - len(name)) if name else b""
    return struct.pack("iIII", wd, mask, 0, len(padded)) + padded


def test_decode_reads_each_event_and_strips_the_name_padding() -> None:
    buf = event(1, IN_MODIFY, b"a.jsonl") + event(2, IN_CREATE | IN_ISDIR, b"sub") + event(-1, IN_Q_OVERFLOW, b"")
    assert list(decode(buf)) == [RawEvent(1, IN_MODIFY, "a.jsonl"), RawEvent(2, IN_CREATE | IN_ISDIR, "sub"),
                                 RawEvent(-1, IN_Q_OVERFLOW, "")]
    assert list(decode(b"")) == []


def test_writes_creations_and_deletions_in_a_tree(tmp_path: Path) -> None:
    proj = tmp_path / "-proj"
    proj.mkdir()
    old = proj / "old.jsonl"
    old.write_text("{}\n")
    with Inotify() as ino:
        assert ino.add_tree(tmp_path) == [str(old)]
        assert ino.read_changes() == []  # nothing pending: the descriptor does not block

        with old.open("a") as f:  # three appends: one change
            for _ in range(3):
                f.write("{}\n")
                f.flush()
        new = proj / "new.jsonl"
        new.write_text("{}\n")
        assert ino.read_changes() == [Change(Kind.CHANGED, str(old)), Change(Kind.CHANGED, str(new))]

        # a directory made after the watch, written before its own watch exists: its file is reported
        sub = proj / "s1" / "subagents"
        sub.mkdir(parents=True)
        early = sub / "agent-a.jsonl"
        early.write_text("{}\n")
        assert Change(Kind.CHANGED, str(early)) in ino.read_changes()
        assert str(sub) in ino.watched
        with early.open("a") as f:  # and it is watched from then on
            f.write("{}\n")
        assert ino.read_changes() == [Change(Kind.CHANGED, str(early))]

        old.unlink()
        new.rename(tmp_path / "elsewhere.jsonl")  # moved within the tree: out of one dir, into another
        assert ino.read_changes() == [Change(Kind.DELETED, str(old)), Change(Kind.DELETED, str(new)),
                                      Change(Kind.CHANGED, str(tmp_path / "elsewhere.jsonl"))]

        early.unlink()
        sub.rmdir()
        assert ino.read_changes() == [Change(Kind.DELETED, str(early))]
        assert str(sub) not in ino.watched  # its watch went with it


def test_the_files_of_a_directory_moved_in_arrive_as_history(tmp_path: Path) -> None:
    root, staging = tmp_path / "root", tmp_path / "staging"
    root.mkdir()
    (staging / "s1" / "subagents").mkdir(parents=True)
    a, b = staging / "a.jsonl", staging / "s1" / "subagents" / "agent-x.jsonl"
    a.write_text("{}\n")
    b.write_text("{}\n")
    with Inotify() as ino:
        ino.add_tree(root)
        staging.rename(root / "-restored")  # a restore or a sync: the whole folder at once
        moved = root / "-restored"
        assert sorted(ino.read_changes(), key=lambda c: c.path) == [
            Change(Kind.ARRIVED, str(moved / "a.jsonl")),
            Change(Kind.ARRIVED, str(moved / "s1" / "subagents" / "agent-x.jsonl"))]
        with (moved / "a.jsonl").open("a") as f:  # written there afterwards: a live change
            f.write("{}\n")
        assert ino.read_changes() == [Change(Kind.CHANGED, str(moved / "a.jsonl"))]


def test_an_overflowing_queue_is_reported(tmp_path: Path) -> None:
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    with Inotify() as ino, a.open("a") as fa, b.open("a") as fb:
        ino.add_tree(tmp_path)
        for _ in range(limit // 2 + 10):  # alternating, so the kernel cannot merge them: more than the queue
            fa.write("x")
            fa.flush()
            fb.write("x")
            fb.flush()
        assert Change(Kind.OVERFLOW) in ino.read_changes()


def test_the_tailer_asks_for_a_read_when_inotify_sees_a_write(tmp_path: Path) -> None:
    tailer, app, rt = make(tmp_path)
    proj = tmp_path / "-proj"
    proj.mkdir()
    f = proj / "s1.jsonl"

    async def run() -> list[TailRequest]:
        watch = asyncio.create_task(tailer.watch())
        for _ in range(100):
            if tailer.watching:
                break
            await asyncio.sleep(0.01)
        assert tailer.watching
        f.write_text('{"type":"user"}\n')
        (proj / "notes.txt").write_text("not a transcript\n")
        for _ in range(200):
            if requests(app):
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        watch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watch
        assert not tailer.watching
        return requests(app)

    sent = asyncio.run(run())
    assert [(r.path, r.reason) for r in sent] == [(str(f), RequestReason.INOTIFY)]


def test_the_tailer_reads_an_arrived_file_on_the_history_lane(tmp_path: Path) -> None:
    tailer, app, rt = make(tmp_path)
    f = tmp_path / "-restored" / "s1.jsonl"
    f.parent.mkdir()
    f.write_text('{"type":"user"}\n')

    async def run() -> list[TailRequest]:
        await tailer._on_change(Change(Kind.ARRIVED, str(f)))
        return requests(app)

    assert [(r.path, r.reason) for r in asyncio.run(run())] == [(str(f), RequestReason.SCAN)]
