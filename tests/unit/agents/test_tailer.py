"""The tailer's own logic (agents/tailer.py) on real files, without a broker.

The Faust app is replaced by a stand-in that gives the tailer a plain dict for its ``file_offsets`` table and
topics that record what was sent and hand back an acknowledgement future the test may hold back. What a real
broker and Faust do with the messages is covered by tests/integration (test_pipeline, test_tailer_state);
here the question is only what the tailer sends, when it stores a cursor and what it keeps in memory.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from agents.runtime import Runtime, Topics
from agents.tailer import Tailer
from stream.config import Settings
from stream.contract.raw_chunk import RawChunk
from stream.contract.tail_request import RequestReason, TailRequest
from stream.tail.cursor import Checkpoint, fingerprint


class RecordingTopic:
    """Records (key, value) pairs; each send returns a future acknowledged at once unless `hold` is set."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []
        self.held: list[asyncio.Future[None]] = []
        self.hold = False

    async def send(self, *, key: bytes, value: bytes) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent.append((key, value))
        if self.hold:
            self.held.append(fut)
        else:
            fut.set_result(None)
        return fut


class StandInApp:
    def __init__(self) -> None:
        self.requests = RecordingTopic()
        self.table: dict[str, Any] = {}

    def topic(self, *args: Any, **kwargs: Any) -> RecordingTopic:
        return self.requests

    def Table(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # noqa: N802 (Faust's name)
        return self.table


def make(root: Path, checkpoints: dict[str, Checkpoint] | None = None) -> tuple[Tailer, StandInApp, Runtime]:
    settings = Settings(data_dir=root / "data", claude_roots=[root], host="h1", user="u1", redaction=False)
    rt = Runtime(settings, Topics(sessions=RecordingTopic(), raw_events=RecordingTopic(),  # type: ignore[arg-type]
                                  dead_letters=RecordingTopic()))
    if checkpoints:
        rt.checkpoints.update(checkpoints)
    app = StandInApp()
    return Tailer(app, rt), app, rt  # type: ignore[arg-type]


def transcript(root: Path, n: int, name: str = "s1") -> Path:
    folder = root / "-proj"
    folder.mkdir(exist_ok=True)
    f = folder / f"{name}.jsonl"
    f.write_bytes(b"".join(json.dumps({"type": "user", "n": i}).encode() + b"\n" for i in range(n)))
    return f


def chunks(rt: Runtime) -> list[RawChunk]:
    return [RawChunk.decode(v) for _, v in rt.topics.raw_events.sent]


def requests(app: StandInApp) -> list[TailRequest]:
    return [TailRequest.decode(v) for _, v in app.requests.sent]


def test_a_hook_read_produces_stores_the_cursor_and_follows(tmp_path: Path) -> None:
    f = transcript(tmp_path, 3)
    tailer, app, rt = make(tmp_path)

    async def run() -> None:
        await tailer.handle(TailRequest(str(f), reason=RequestReason.HOOK, hook_event="SessionStart"))
        await tailer.handle(TailRequest(str(f), reason=RequestReason.INOTIFY))  # nothing new

    asyncio.run(run())
    (chunk,) = chunks(rt)
    assert len(chunk.records()) == 3 and chunk.end_offset == f.stat().st_size
    assert app.table[str(f)]["offset"] == f.stat().st_size
    assert list(tailer.followed) == [str(f)] and tailer.lagging() == []


def test_the_cursor_moves_only_after_the_broker_acknowledged_the_chunk(tmp_path: Path) -> None:
    f = transcript(tmp_path, 2)
    tailer, app, rt = make(tmp_path)
    rt.topics.raw_events.hold = True

    async def run() -> None:
        task = asyncio.create_task(tailer.handle(TailRequest(str(f), reason=RequestReason.SCAN)))
        for _ in range(500):
            if rt.topics.raw_events.held:
                break
            await asyncio.sleep(0.01)
        assert rt.topics.raw_events.held, "no chunk was sent"
        await asyncio.sleep(0.05)
        assert str(f) not in app.table  # sent, not acknowledged: no cursor yet
        rt.topics.raw_events.held[0].set_result(None)
        await task

    asyncio.run(run())
    assert app.table[str(f)]["offset"] == f.stat().st_size


def test_a_complete_file_is_adopted_from_its_checkpoint_without_producing(tmp_path: Path) -> None:
    f = transcript(tmp_path, 4)
    data = f.read_bytes()
    gone = str(tmp_path / "-proj" / "gone.jsonl")
    tailer, app, rt = make(tmp_path, {str(f): Checkpoint(str(f), 2, fingerprint(data), len(data), 4),
                                      gone: Checkpoint(gone, 0, "1:x", 1, 1)})

    async def run() -> None:
        assert await tailer.scan() == 0  # an adopt request is not counted as a file to read
        for req in requests(app):
            await tailer.handle(req)

    asyncio.run(run())
    assert [(r.path, r.reason) for r in requests(app)] == [(str(f), RequestReason.ADOPT)]
    assert chunks(rt) == [] and rt.checkpoints == {}
    assert (app.table[str(f)]["offset"], app.table[str(f)]["incarnation"]) == (len(data), 2)
    assert tailer.followed == {} and tailer.queued == set()


def test_a_final_read_forgets_and_a_late_inotify_event_does_not_bring_the_file_back(tmp_path: Path) -> None:
    f = transcript(tmp_path, 2)
    tailer, app, rt = make(tmp_path)

    async def run() -> None:
        await tailer.request(str(f), reason="SessionStart")  # a string reason: a hook
        await tailer.request(str(f), reason=RequestReason.INOTIFY)  # in flight already: not sent
        await tailer.request(str(f), final=True, reason=RequestReason.HOOK, hook_event="SessionEnd")
        for req in requests(app):
            await tailer.handle(req)
        assert tailer.followed == {}
        await tailer.handle(TailRequest(str(f), reason=RequestReason.INOTIFY))

    asyncio.run(run())
    assert [(r.reason, r.hook_event, r.final) for r in requests(app)] == [
        (RequestReason.HOOK, "SessionStart", False), (RequestReason.HOOK, "SessionEnd", True)]
    assert json.loads(app.requests.sent[0][1])["reason"] == "SessionStart"  # the wire keeps the event's name
    assert len(chunks(rt)) == 1
    assert tailer.followed == {} and tailer.queued == set() and tailer.agents_seen == {}
    assert tailer.status() == {"followed_files": 0, "lagging_files": [], "queued_requests": 0,
                               "pending_checkpoints": 0, "agent_refs": 0}
    assert str(f) in app.table


def test_the_poll_asks_for_a_read_when_a_followed_file_grew(tmp_path: Path) -> None:
    f = transcript(tmp_path, 1)
    tailer, app, rt = make(tmp_path)

    async def run() -> None:
        await tailer.handle(TailRequest(str(f), reason=RequestReason.HOOK))
        await tailer.poll()
        assert app.requests.sent == []  # unchanged
        with f.open("ab") as out:
            out.write(b'{"type":"user","n":9}\n')
        await tailer.poll()
        for req in requests(app):
            await tailer.handle(req)

    asyncio.run(run())
    assert [r.reason for r in requests(app)] == [RequestReason.POLL]
    assert [len(c.records()) for c in chunks(rt)] == [1, 1]
    assert tailer.followed[str(f)].offset == f.stat().st_size


def test_a_subagent_named_in_a_main_file_is_requested_once(tmp_path: Path) -> None:
    f = transcript(tmp_path, 0)
    sub = f.parent / f.stem / "subagents" / "agent-a1.jsonl"
    sub.parent.mkdir(parents=True)
    sub.write_bytes(b'{"type":"user"}\n')
    f.write_bytes(b'{"type":"progress","agentId":"a1"}\n{"type":"progress","agentId":"zz"}\n')
    tailer, app, rt = make(tmp_path)

    async def run() -> None:
        await tailer.handle(TailRequest(str(f), reason=RequestReason.HOOK))
        with f.open("ab") as out:
            out.write(b'{"type":"progress","agentId":"a1"}\n')
        await tailer.handle(TailRequest(str(f), reason=RequestReason.POLL))

    asyncio.run(run())
    assert [(r.path, r.reason) for r in requests(app)] == [(str(sub), RequestReason.AGENT_REF)]
    assert tailer.agents_seen == {str(f): {"a1"}}


def test_the_poll_is_a_safety_net_on_an_idle_stack_with_inotify(tmp_path: Path) -> None:
    """Every tick while anything moves or inotify is not watching; every 5th once the stack is quiet and
    inotify watches."""
    from agents.tailer import IDLE_POLL_EVERY

    tailer, _, rt = make(tmp_path)
    assert all(tailer.poll_due() for _ in range(10))  # inotify not watching
    tailer.watching = True
    rt.pace.touch()
    assert all(tailer.poll_due() for _ in range(10))  # watching, but the stack is busy
    rt.pace.last_activity -= rt.pace.idle_after + 1
    due = [tailer.poll_due() for _ in range(10 * IDLE_POLL_EVERY)]
    assert sum(due) == 10
