"""The backfill's scheduling (issue 13) without a broker: the two lanes, pipelined steps with the cursor after
each ack in order, one reader per file, and history paced by the sink beside.

Uses the stand-in app of tests/unit/agents/test_tailer.py (a dict for the table, topics that record what was
sent and hand back an acknowledgement future the test may hold back).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from agents.tailer import Tailer
from stream.config import Settings
from stream.contract.raw_chunk import RawChunk
from stream.contract.tail_request import RequestReason, TailRequest
from stream.tail.position import Positions, is_live
from tests.unit.agents.test_tailer import RecordingTopic, StandInApp, chunks, make, requests, transcript


def test_history_and_live_lanes() -> None:
    assert {r for r in RequestReason if not is_live(r)} == {RequestReason.SCAN, RequestReason.ADOPT,
                                                            RequestReason.CONTINUE}
    p = Positions({}, quiet_seconds=5, idle_seconds=60)
    assert p.should_send("/r/a.jsonl")  # a scan's request, queued behind the backfill
    assert not p.should_send("/r/a.jsonl")
    assert p.should_send("/r/a.jsonl", live=True)  # a live one is not held back by it
    assert not p.should_send("/r/a.jsonl", live=True)
    assert p.status()["queued_requests"] == 2
    p.received("/r/a.jsonl", live=True)
    assert p.queued == {"/r/a.jsonl"} and p.queued_live == set()
    p.received("/r/a.jsonl")
    assert p.status()["queued_requests"] == 0


class LaneApp(StandInApp):
    """Each topic its own recorder, so the test sees which lane a request took."""

    def __init__(self) -> None:
        super().__init__()
        self.by_name: dict[str, RecordingTopic] = {}

    def topic(self, name: str, *args: object, **kwargs: object) -> RecordingTopic:
        return self.by_name.setdefault(name, RecordingTopic())


def test_requests_take_their_lane(tmp_path: Path) -> None:
    f = transcript(tmp_path, 2)
    settings = Settings(data_dir=tmp_path / "data", claude_roots=[tmp_path], host="h1", redaction=False)
    _, _, rt = make(tmp_path)
    app = LaneApp()
    tailer = Tailer(app, rt.__class__(settings, rt.topics))  # type: ignore[arg-type]

    async def run() -> None:
        await tailer.request(str(f), reason=RequestReason.SCAN)
        await tailer.request(str(f), reason=RequestReason.INOTIFY)
        await tailer.request(str(f), reason="SessionStart")  # live, in flight already: not sent twice

    asyncio.run(run())
    lanes = {name: [json.loads(v)["reason"] for _, v in t.sent] for name, t in app.by_name.items()}
    assert lanes == {settings.topic_tail_requests: ["scan"], settings.topic_tail_live: ["inotify"]}


def test_steps_are_pipelined_and_each_cursor_waits_for_its_own_ack(tmp_path: Path) -> None:
    f = transcript(tmp_path, 400)
    tailer, app, rt = make(tmp_path)
    tailer.settings.read_chunk_bytes = 4096  # several steps
    raw = rt.topics.raw_events
    raw.hold = True

    async def run() -> None:
        task = asyncio.create_task(tailer.handle(TailRequest(str(f), reason=RequestReason.SCAN)))
        for _ in range(500):
            if len(raw.held) >= 2:
                break
            await asyncio.sleep(0.01)
        # chunk 2 was read and sent while chunk 1 waits for its ack: no cursor yet
        assert len(raw.held) == 2 and str(f) not in app.table
        raw.held[0].set_result(None)
        for _ in range(500):
            if len(raw.held) >= 3:
                break
            await asyncio.sleep(0.01)
        first = RawChunk.decode(raw.sent[0][1])
        assert app.table[str(f)]["offset"] == first.end_offset  # chunk 1's cursor, not chunk 2's
        raw.hold = False
        for fut in raw.held[1:]:
            fut.set_result(None)
        await task

    asyncio.run(run())
    got = chunks(rt)
    offsets = [o for c in got for o in c.offsets]
    assert len(offsets) == 400 and offsets == sorted(set(offsets))
    assert app.table[str(f)]["offset"] == f.stat().st_size == got[-1].end_offset


def test_two_lanes_never_read_one_file_at_once(tmp_path: Path) -> None:
    f = transcript(tmp_path, 300)
    tailer, app, rt = make(tmp_path)
    tailer.settings.read_chunk_bytes = 2048

    async def run() -> None:
        await asyncio.gather(tailer.handle(TailRequest(str(f), reason=RequestReason.SCAN)),
                             tailer.handle(TailRequest(str(f), reason=RequestReason.INOTIFY)),
                             tailer.handle(TailRequest(str(f), reason=RequestReason.POLL)))

    asyncio.run(run())
    offsets = [o for c in chunks(rt) for o in c.offsets]
    assert len(offsets) == 300 and len(set(offsets)) == 300  # every line once, none twice
    assert tailer._locks == {}  # no lock outlives its readers


def test_history_waits_for_the_sink_beside_live_does_not(tmp_path: Path) -> None:
    history = transcript(tmp_path, 3, "history")
    live = transcript(tmp_path, 3, "live")
    tailer, app, rt = make(tmp_path)
    assert "sink" in tailer.settings.roles
    tailer.settings.tail_sink_lag_records = 100
    rt.stats.records_produced = 1000  # the sink beside has 1,000 lines to insert
    rt.stats.rows_inserted = 0
    tailer._sink_idle = 30.0  # the test says when the sink moves

    async def run() -> None:
        waiting = asyncio.create_task(tailer.handle(TailRequest(str(history), reason=RequestReason.SCAN)))
        await tailer.handle(TailRequest(str(live), reason=RequestReason.INOTIFY))
        await asyncio.sleep(0.2)
        assert [c.path for c in chunks(rt)] == [str(live)] and not waiting.done()
        rt.stats.rows_inserted = 950  # caught up to within the limit
        rt.stats.inserts += 1
        await asyncio.wait_for(waiting, 5)

    asyncio.run(run())
    assert [c.path for c in chunks(rt)] == [str(live), str(history)]


def test_a_stale_sink_gauge_cannot_hold_history_for_ever(tmp_path: Path) -> None:
    f = transcript(tmp_path, 3)
    tailer, app, rt = make(tmp_path)
    tailer.settings.tail_sink_lag_records = 100
    rt.stats.records_produced = 1000  # lines the sink refused or never counted: no insert will come
    tailer._sink_idle = 0.2

    async def run() -> None:
        await asyncio.wait_for(tailer.handle(TailRequest(str(f), reason=RequestReason.SCAN)), 5)

    asyncio.run(run())
    assert len(chunks(rt)) == 1 and tailer._lag_drift == 1000  # re-based: the next step does not wait


def test_a_long_file_stays_with_its_history_actor_to_the_end(tmp_path: Path) -> None:
    """Fed: a 400-line file read 512 bytes a step (22 steps: three rounds of 8) from a scan. Expected: one
    handle() reads it all, every line once and in order, and asks for no continuation through Kafka."""
    f = transcript(tmp_path, 400)
    tailer, app, rt = make(tmp_path)
    tailer.settings.read_chunk_bytes = 512
    asyncio.run(tailer.handle(TailRequest(str(f), reason=RequestReason.SCAN)))
    offsets = [o for c in chunks(rt) for o in c.offsets]
    assert len(chunks(rt)) > 8 * 2 and len(offsets) == 400 and offsets == sorted(set(offsets))
    assert app.requests.sent == []  # no CONTINUE request: the file never went behind the queue
    assert app.table[str(f)]["offset"] == f.stat().st_size


def test_a_live_actor_hands_a_long_file_to_history_after_one_round(tmp_path: Path) -> None:
    """Fed: the same file asked for by inotify (live). Expected: 8 steps read, then one CONTINUE request on
    the history lane for the rest: the live lane's actors stay free."""
    f = transcript(tmp_path, 400)
    tailer, app, rt = make(tmp_path)
    tailer.settings.read_chunk_bytes = 512
    asyncio.run(tailer.handle(TailRequest(str(f), reason=RequestReason.INOTIFY)))
    assert len(chunks(rt)) == 8
    assert [(r.path, r.reason) for r in requests(app)] == [(str(f), RequestReason.CONTINUE)]


def test_a_live_chunk_takes_raw_live_unless_its_file_is_in_flight_on_history(tmp_path: Path) -> None:
    """Beside a sink on a local broker (raw_live declared): a live read's chunk goes to raw-live; while a
    chunk of the file produced by history is not inserted, the live read's chunk follows it on raw-events."""
    f = transcript(tmp_path, 2)
    tailer, app, rt = make(tmp_path)
    live_topic = RecordingTopic()
    tailer.raw_live = live_topic  # type: ignore[assignment]
    asyncio.run(tailer.handle(TailRequest(str(f), reason=RequestReason.SCAN)))
    assert len(rt.topics.raw_events.sent) == 1 and rt.lanes.in_flight(str(f))
    with f.open("ab") as fh:
        fh.write(b'{"type":"user","n":2}\n')
    asyncio.run(tailer.handle(TailRequest(str(f), reason=RequestReason.INOTIFY)))
    assert len(rt.topics.raw_events.sent) == 2 and live_topic.sent == []  # behind its history chunk
    sent = [RawChunk.decode(value) for _key, value in rt.topics.raw_events.sent]
    rt.lanes.inserted([(c.path, (c.incarnation, c.end_offset)) for c in sent[:1]])  # the first only
    with f.open("ab") as fh:
        fh.write(b'{"type":"user","n":3}\n')
    asyncio.run(tailer.handle(TailRequest(str(f), reason=RequestReason.INOTIFY)))
    assert len(rt.topics.raw_events.sent) == 3 and live_topic.sent == []  # still behind the second
    sent = [RawChunk.decode(value) for _key, value in rt.topics.raw_events.sent]
    rt.lanes.inserted([(c.path, (c.incarnation, c.end_offset)) for c in sent])  # the sink inserted all
    with f.open("ab") as fh:
        fh.write(b'{"type":"user","n":4}\n')
    asyncio.run(tailer.handle(TailRequest(str(f), reason=RequestReason.INOTIFY)))
    assert len(live_topic.sent) == 1 and [r.raw for r in RawChunk.decode(live_topic.sent[0][1]).records()] == [
        b'{"type":"user","n":4}']
