"""The tailer: follows transcript files and produces their complete lines to ``ccstream.raw-events``.

Work arrives as TailRequests on two edge-local lanes, both keyed by path with the same partition count, so
the ``file_offsets`` table (keyed by path too) is updated from agent context, partition for partition:
``tail-requests`` for history (scans, adopts, continues; ``tail_concurrency`` actors) and ``tail-live`` for
live sessions (hooks, inotify, the poll), which therefore never queue behind a backfill. A per-path lock
keeps one reader per file. Where the sink runs in this worker, history waits while the sink has more than
``tail_sink_lag_records`` lines to insert, so a live chunk joins a short queue. Requests
come from inotify (stream.tail.inotify; watchfiles off Linux), a 1 s stat poll of followed files, periodic scans of the roots, and the
sessions agent (SessionStart/SessionEnd). A request reads everything new in the file: redundant requests
cost a stat and nothing else, and a request for a path already queued is not sent twice.

Each read step (stream.tail.filereader, pure framing underneath) becomes ONE Kafka message carrying all its
records (a chunk); reading, redaction and encoding run in a thread, and step i+1 is read while the broker
acknowledges chunk i. The cursor is written once per chunk, after that chunk's ack and in order: a crash
re-reads at most the chunks not yet acknowledged, which the idempotent sink absorbs.

Where a file is read from, whether it is followed, what a scan or the poll does with it and what it keeps
in memory are decided by one owner, ``stream.tail.position.Positions``; this module does the I/O (reads in a
thread, produce, await the broker's ack, then store the cursor).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust

from agents.runtime import Runtime
from stream.contract.dead_letter import DeadLetter
from stream.contract.identity import file_id_for
from stream.contract.raw_chunk import RawChunk
from stream.contract.tail_request import RequestReason, TailRequest
from stream.tail.cursor import Action, Cursor, FileStat
from stream.tail.discovery import confine, iter_transcripts, session_and_agent
from stream.tail.filereader import ReadResult, read_step
from stream.tail.inotify import Change, Inotify, Kind
from stream.tail.position import (
    Followed,
    FromCursor,
    Poll,
    Positions,
    ReadFrom,
    Scan,
    Step,
    is_live,
    largest_first,
    read_args,
    step_after_read,
)
from stream.tail.raw_lane import Lane
from stream.tail.redaction import redactor_from_settings

log = logging.getLogger("ccstream.tailer")

STEPS_PER_ROUND = 8  # then the file's lock is let go a moment, so a live read of the same file gets in
IDLE_POLL_EVERY = 5  # with inotify watching and the stack quiet, the stat poll runs every 5th tick
AGENT_MARK = b'"agentId"'  # toolUseResult.agentId and agent_progress lines name a subagent
_AGENT_ID = re.compile(rb'"agentId"\s*:\s*"([A-Za-z0-9_.-]{1,128})"')


def _stat(path: str) -> FileStat | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return FileStat(st.st_dev, st.st_ino, st.st_size, st.st_mtime)


@dataclass(slots=True)
class _Prepared:
    """One read step as the thread left it: the read, what it amounts to, and for PRODUCE the encoded chunk
    and dead letters."""

    res: ReadResult
    step: Step
    file_id: str = ""
    chunk: bytes | None = None
    dead: list[DeadLetter] = field(default_factory=list)
    dead_values: list[bytes] = field(default_factory=list)
    session_key: str = ""


@dataclass(slots=True)
class _Sent:
    """A chunk handed to the producer whose ack (and then cursor) is still to come."""

    cursor: Cursor
    pending: list[Any]
    prep: _Prepared
    session_id: str
    agent_id: str | None
    req: TailRequest


class Tailer:
    def __init__(self, app: faust.App, rt: Runtime) -> None:
        s = rt.settings
        self.app = app
        self.rt = rt
        self.settings = s
        self.requests = app.topic(s.topic_tail_requests, key_serializer="raw", value_serializer="raw",
                                  partitions=s.topic_partitions, internal=False)
        # the live lane: same partitioning (key: path), so its events write the same table partitions
        self.live_requests = app.topic(s.topic_tail_live, key_serializer="raw", value_serializer="raw",
                                       partitions=s.topic_partitions, internal=False)
        self.raw_events = rt.topics.raw_events
        self.raw_live = rt.topics.raw_live  # None: every chunk goes to raw_events
        self.dead_letters = rt.topics.dead_letters
        # keys are paths (str), values Cursor.to_dict(); json both ways so recovery gives back the same types
        self.offsets = app.Table("file_offsets", default=None, partitions=s.topic_partitions,
                                 schema=faust.Schema(key_serializer="json", value_serializer="json"))
        # the one owner of every file's position; rt.checkpoints is its checkpoint dict (shared, not copied)
        self.positions = Positions(self.offsets, rt.checkpoints, quiet_seconds=s.partial_line_quiet,
                                   idle_seconds=s.idle_session_timeout)
        self.roots = [Path(r) for r in s.claude_roots]
        self.redactor = redactor_from_settings(s)  # secrets never leave this machine
        self._locks: dict[str, list[Any]] = {}  # path -> [asyncio.Lock, users]: one reader per file at a time
        # history is paced by the sink only where it is the embedded stack's: in this worker, or the sink
        # worker of a split `up`, which tells this one what it inserted (agents/insert_notices.py)
        self._sink_beside = "sink" in s.roles or s.sink_apart
        self._sink_idle = max(2.0, 4 * s.sink_batch_seconds)
        self._lag_drift = 0
        self.watching = False  # inotify is delivering events (the poll is then only a safety net)
        # `up` is about to recycle the embedded broker (stream/stack/recycle.py): history asks for and reads
        # nothing more, so the worker's group can commit all the broker holds; the next stack's first scan
        # asks again for every file, from the cursors in ClickHouse. Live reads go on.
        self.draining = False
        self._poll_ticks = 0
        # history's read steps have threads of their own: a live read, the SQL API and the dashboard use
        # asyncio's default pool and never wait behind a backfill's reads
        self._history_pool = ThreadPoolExecutor(max(1, s.tail_concurrency), thread_name_prefix="ccstream-read")

    # ---- what the status page reads (agents/web.py) ---------------------------------------------------
    @property
    def followed(self) -> dict[str, Followed]:
        return self.positions.followed

    @property
    def queued(self) -> set[str]:
        return self.positions.queued | self.positions.queued_live

    @property
    def agents_seen(self) -> dict[str, set[str]]:
        return self.positions.agents_seen

    def lagging(self) -> list[dict[str, Any]]:
        """Followed files whose cursor is behind their size (an unterminated tail waits here too)."""
        return self.positions.lagging()

    def status(self) -> dict[str, Any]:
        """The tailer's part of /ccstream/status: followed_files, lagging_files, queued_requests,
        pending_checkpoints, agent_refs."""
        return self.positions.status()

    # ---- requests ---------------------------------------------------------------------------------
    async def request(self, path: str, *, session_id: str = "", agent_id: str | None = None,
                      final: bool = False, reason: RequestReason | str = RequestReason.HOOK,
                      hook_event: str = "") -> None:
        """Ask for a read of `path`. A `reason` given as a string is parsed (a hook event's name is a hook).
        History (scans, adopts, continues) and live requests go to topics of their own (is_live)."""
        if not isinstance(reason, RequestReason):
            parsed = RequestReason.parse(reason)
            if parsed is RequestReason.HOOK and reason != RequestReason.HOOK.value:
                hook_event = hook_event or str(reason)
            reason = parsed
        live = is_live(reason)
        if self.draining and not live:
            return
        if not self.positions.should_send(path, final=final, live=live):
            return
        req = TailRequest(path=path, session_id=session_id, agent_id=agent_id, final=final, reason=reason,
                          hook_event=hook_event)
        self.rt.pace.touch()  # a read is coming: the consumers' next fetches wait short (agents/fetch_wait)
        await (self.live_requests if live else self.requests).send(key=path.encode(), value=req.encode())

    # ---- reading ------------------------------------------------------------------------------------
    async def handle(self, req: TailRequest) -> None:
        """Read what is new in the request's file (its reason says which lane it came on)."""
        path = req.path
        live = is_live(req.reason)
        self.positions.received(path, live=live)
        if confine(path, self.roots) is None:
            self.rt.stats.refused_paths += 1
            log.warning("refused to read %s: not a regular file under the Claude roots %s", path,
                        [str(r) for r in self.roots])
            return
        # the lanes' agents and each agent's actors run at once: one file is read by one of them at a time.
        # A long file stays with its history actor round after round (a re-queue would put it behind every
        # other request of a backfill); between rounds the lock is let go, and asyncio's lock is fair. A live
        # actor hands what is left to history after one round: the live lane's two actors stay free.
        while True:
            if self.draining and not live:
                return  # consumed unread: the next stack reads it
            async with self._file_lock(path):
                more = await self._read_file(req, live)
            if not more:
                return
            if live:
                session_id, agent_id = session_and_agent(Path(path))
                await self.request(path, session_id=session_id, agent_id=agent_id, final=req.final,
                                   reason=RequestReason.CONTINUE)
                return
            req = dataclasses.replace(req, reason=RequestReason.CONTINUE)

    @contextlib.asynccontextmanager
    async def _file_lock(self, path: str) -> AsyncIterator[None]:
        entry = self._locks.get(path)
        if entry is None:
            entry = self._locks[path] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if not entry[1]:  # bounded: only files being read now have a lock
                del self._locks[path]

    async def _read_file(self, req: TailRequest, live: bool) -> bool:
        """Up to STEPS_PER_ROUND read steps, pipelined: step i+1 is read (and redacted and encoded, in a
        thread) while the broker acknowledges chunk i; cursor i is stored only after that ack, in order.
        True when the file has more to read."""
        path = req.path
        pos = self.positions
        start: ReadFrom = pos.start(path)
        # from the path only, never from the request: identities and the ORDER BY key must be the same
        # whoever asked for the read (a hook, a scan, inotify), or re-reads would not merge
        session_id, agent_id = session_and_agent(Path(path))
        sent: _Sent | None = None
        loop = asyncio.get_running_loop()
        pool = None if live else self._history_pool
        for _ in range(STEPS_PER_ROUND):
            prep = await loop.run_in_executor(pool, self._prepare, path, start, req.final, session_id, agent_id)
            res = prep.res
            if res.missing or res.cursor is None:
                if res.error:
                    log.warning("cannot read %s: %s", path, res.error)
                await self._settle(path, sent)
                pos.forget(path)
                return False
            if res.action is Action.TRUNCATED:
                self.rt.stats.truncations += 1
                log.warning("%s was truncated: reading it again from the start as incarnation %d",
                            path, res.cursor.incarnation)
            elif res.action is Action.RECREATED:
                self.rt.stats.recreations += 1
                log.warning("%s was recreated: reading it again from the start as incarnation %d",
                            path, res.cursor.incarnation)
            new = res.cursor
            if prep.step is Step.PRODUCE:
                if not live:
                    await self._sink_room()
                pending = await self._send(path, prep, live)
                await self._settle(path, sent)  # the previous chunk: its ack, then its cursor
                sent = _Sent(new, pending, prep, session_id, agent_id, req)
                if agent_id is None and any(AGENT_MARK in r.raw for r in res.records):
                    await self._follow_subagents(path, session_id, res.records)
            else:
                await self._settle(path, sent)
                sent = None
                if prep.step is Step.ADOPT:
                    pos.store(path, new)  # ClickHouse already holds this file up to here: send nothing
                pos.note_read(path, session_id, agent_id, new, step=prep.step, reason=req.reason,
                              final=req.final)
            start = FromCursor(new)
            if not res.more:
                break
        else:
            await self._settle(path, sent)
            return True
        await self._settle(path, sent)
        pos.read_done(path, final=req.final)
        return False

    def _prepare(self, path: str, start: ReadFrom, final: bool, session_id: str,
                 agent_id: str | None) -> _Prepared:
        """In a thread, off the event loop: one read step, and for a chunk to send its redaction and encoding
        (the redactor is stateless, so threads share it)."""
        s = self.settings
        cursor, checkpoint = read_args(start)
        res = read_step(path, cursor, checkpoint=checkpoint, final=final, now=time.time(),
                        quiet_seconds=s.partial_line_quiet, max_line_bytes=s.max_line_bytes,
                        read_bytes=s.read_chunk_bytes)
        if res.missing or res.cursor is None:
            return _Prepared(res, Step.NOTHING)
        step = step_after_read(start, res.action, res.cursor, bool(res.records or res.bad))
        if step is not Step.PRODUCE:
            return _Prepared(res, step)
        new = res.cursor
        fid = file_id_for(s.host, path)
        now = time.time()
        dead = [DeadLetter(host=s.host, path=path, file_id=fid, incarnation=new.incarnation,
                           offset=b.offset, line_no=b.line_no, length=b.length, reason=b.reason,
                           sample=b.sample, detected_at=now) for b in res.bad]
        redactions: list[int] = []
        if self.redactor is not None:
            redacted = self.redactor.redact_many([r.raw for r in res.records])
            for rec, (raw, _n) in zip(res.records, redacted, strict=True):
                rec.raw = raw
            redactions = [n for _raw, n in redacted] if any(n for _raw, n in redacted) else []
            for d in dead:
                d.sample = self.redactor.redact(d.sample)[0]
        chunk = RawChunk.from_records(host=s.host, user=s.user, path=path, file_id=fid, incarnation=new.incarnation,
                                      fingerprint=new.fingerprint, session_id=session_id, agent_id=agent_id,
                                      records=res.records, end_offset=new.offset, end_line=new.line_no,
                                      dead_letters=dead, redactions=redactions)
        return _Prepared(res, step, fid, chunk.encode(), dead, [d.encode() for d in dead], session_id)

    async def _send(self, path: str, prep: _Prepared, live: bool) -> list[Any]:
        """Hand the chunk and its dead letters to the producer; the futures resolve with the broker's ack.
        A live read's chunk goes to the live lane, unless chunks of its file are in flight on history."""
        assert prep.chunk is not None
        key = (prep.session_key or prep.file_id).encode()
        topic = self.raw_events
        if self.raw_live is not None:
            lane = self.rt.lanes.choose(path, live)
            assert prep.res.cursor is not None
            self.rt.lanes.produced(path, lane, (prep.res.cursor.incarnation, prep.res.cursor.offset))
            topic = self.raw_live if lane is Lane.LIVE else self.raw_events
        pending = [await topic.send(key=key, value=prep.chunk)]
        for d, value in zip(prep.dead, prep.dead_values, strict=True):
            log.warning("bad line in %s at byte %d (line %d): %s", path, d.offset, d.line_no, d.reason)
            pending.append(await self.dead_letters.send(key=prep.file_id.encode(), value=value))
        return pending

    async def _settle(self, path: str, sent: _Sent | None) -> None:
        """The broker acknowledged `sent` (awaited here): only now its cursor is stored. At least once,
        never less: a crash before this line re-reads the chunk, which the idempotent sink absorbs."""
        if sent is None:
            return
        await asyncio.gather(*sent.pending)
        self.positions.store(path, sent.cursor)
        stats = self.rt.stats
        stats.chunks_produced += 1
        stats.records_produced += len(sent.prep.res.records)
        stats.bad_lines += len(sent.prep.dead)
        self.positions.note_read(path, sent.session_id, sent.agent_id, sent.cursor, step=Step.PRODUCE,
                                 reason=sent.req.reason, final=sent.req.final)

    async def _sink_room(self) -> None:
        """History waits while the sink of this worker has more than tail_sink_lag_records lines produced
        but not inserted: its queue stays short, so a live line sits behind little in its partition. The
        gauge (produced - inserted) drifts by refused or dead lines; it is re-based when the sink has been
        idle a while (then it has caught up) or falls below zero, so the wait can never last."""
        limit = self.settings.tail_sink_lag_records
        if not self._sink_beside or limit <= 0:
            return
        stats = self.rt.stats
        waited_from = time.monotonic()
        inserts = stats.inserts
        while True:
            lag = stats.records_produced - stats.rows_inserted - self._lag_drift
            if lag < 0:
                self._lag_drift += lag
                return
            if lag <= limit:
                return
            if stats.inserts != inserts:
                waited_from, inserts = time.monotonic(), stats.inserts
            elif time.monotonic() - waited_from > self._sink_idle:
                self._lag_drift += lag  # no insert for a while: nothing is queued for it after all
                return
            await asyncio.sleep(0.02)

    async def _follow_subagents(self, path: str, session_id: str, records: list[Any]) -> None:
        """A main file's new lines name subagents (toolUseResult.agentId, agent_progress): follow their files
        now (both layouts), before a scan or an inotify event would find them. Each agent id is looked up
        until its file is found; the ids seen are kept only while the main file is followed."""
        ids = {m.group(1).decode("utf-8", "replace") for r in records if AGENT_MARK in r.raw
               for m in _AGENT_ID.finditer(r.raw)}
        main = Path(path)
        for agent in self.positions.agents_to_look_up(path, ids):
            for cand in (main.parent / main.stem / "subagents" / f"agent-{agent}.jsonl",
                         main.parent / f"agent-{agent}.jsonl"):
                if await asyncio.to_thread(cand.is_file):
                    self.positions.agent_found(path, agent)
                    await self.request(str(cand), session_id=session_id, reason=RequestReason.AGENT_REF)

    # ---- finding work -------------------------------------------------------------------------------
    def poll_due(self) -> bool:
        """Every tick, unless inotify is watching and the stack has been quiet a while (agents/fetch_wait):
        then every IDLE_POLL_EVERY-th. An idle stack's stat of every followed file every second was a
        sixth of its worker's CPU; a change seen by inotify asks for its read at once anyway."""
        self._poll_ticks += 1
        return not (self.watching and self.rt.pace.is_idle()) or self._poll_ticks % IDLE_POLL_EVERY == 0

    async def poll(self) -> None:
        """Stat followed files; request a read when one changed or its unterminated tail went quiet."""
        now_wall = time.time()
        for path in list(self.positions.followed):
            f = self.positions.followed.get(path)
            verdict = self.positions.poll_file(path, _stat(path), now_wall)
            if verdict is Poll.GONE:
                await self.request(path, reason=RequestReason.POLL)  # the read notices and forgets it
            elif f is not None and verdict is Poll.CHANGED:
                await self.request(path, session_id=f.session_id, agent_id=f.agent_id, reason=RequestReason.POLL)
            elif f is not None and verdict is Poll.QUIET_TAIL:
                await self.request(path, session_id=f.session_id, agent_id=f.agent_id,
                                   reason=RequestReason.QUIET_TAIL)

    async def scan(self) -> int:
        """Request every transcript under the roots whose size differs from what we know of it.

        The first full scan also empties the checkpoints (one entry per historical file, loaded from
        ClickHouse at start): files it finds complete are sent as "adopt" requests, which turn the checkpoint
        into a cursor in the file_offsets table (tables are written from agent context only) without
        producing anything; entries for files that no longer exist are dropped (Positions.scan_finished)."""
        if self.draining:
            return 0  # its requests would be dropped, and its bookkeeping (scan_finished) is the next stack's
        paths = await asyncio.to_thread(lambda: [str(p) for p in iter_transcripts(self.roots)])
        reads: list[tuple[str, int]] = []
        for path in paths:
            st = _stat(path)
            verdict = self.positions.scan_verdict(path, st)
            if verdict is Scan.ADOPT:
                await self.request(path, reason=RequestReason.ADOPT)
            elif verdict is Scan.READ:
                reads.append((path, st.size if st is not None else 0))
        for path in largest_first(reads):
            await self.request(path, reason=RequestReason.SCAN)
        self.positions.scan_finished(paths)
        return len(reads)

    async def watch(self) -> None:
        """A write to any transcript under the roots asks for a read at once: inotify on the event loop on
        Linux (stream.tail.inotify), watchfiles elsewhere. If watching fails (e.g. the inotify watch limit),
        the poll and the scans still find every change."""
        while True:
            roots = [str(r) for r in self.roots if r.is_dir()]
            if not roots:
                await asyncio.sleep(self.settings.scan_interval)
                continue
            try:
                if sys.platform.startswith("linux"):
                    await self._watch_inotify(roots)
                else:
                    await self._watch_watchfiles(roots)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.watching = False
                log.warning("file watching stopped (%s); relying on polling every %.1fs",
                            exc, self.settings.poll_interval)
                return

    async def _on_change(self, change: Change) -> None:
        if change.kind is Kind.OVERFLOW:
            # the kernel dropped events: stat every followed file now; the next scan finds new files
            log.info("inotify queue overflowed; polling the followed files now")
            await self.poll()
        elif change.kind is Kind.DELETED:
            self.positions.forget(change.path)
        elif change.path.endswith(".jsonl"):
            # a moved-in directory's files were written elsewhere: history, like a scan's
            reason = RequestReason.SCAN if change.kind is Kind.ARRIVED else RequestReason.INOTIFY
            await self.request(change.path, reason=reason)

    async def _watch_inotify(self, roots: list[str]) -> None:
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        with Inotify() as ino:
            for root in roots:
                ino.add_tree(root)
            loop.add_reader(ino.fd, readable.set)
            self.watching = True
            try:
                while True:
                    await readable.wait()
                    readable.clear()
                    for change in ino.read_changes():
                        await self._on_change(change)
            finally:
                loop.remove_reader(ino.fd)
                self.watching = False

    async def _watch_watchfiles(self, roots: list[str]) -> None:
        from watchfiles import Change as WatchChange
        from watchfiles import awatch

        self.watching = True
        try:
            async for changes in awatch(*roots, debounce=100, step=50, recursive=True,
                                        stop_event=None, force_polling=False):
                for change, p in changes:
                    kind = Kind.DELETED if change == WatchChange.deleted else Kind.CHANGED
                    await self._on_change(Change(kind, p))
        finally:
            self.watching = False


def register(app: faust.App, rt: Runtime) -> Tailer:
    tailer = Tailer(app, rt)
    s = rt.settings

    async def consume(stream: Any) -> None:
        async for value in stream:
            try:
                await tailer.handle(TailRequest.decode(value))
            except Exception:  # one bad file must not stop the tailer; it is retried by the next poll/scan
                log.exception("tailing failed for request %r", value[:200])

    # history: several files at once, so acks and reads overlap and a 300 MB file is one of several
    @app.agent(tailer.requests, name="ccstream.tailer", concurrency=max(1, s.tail_concurrency))
    async def tail(stream: Any) -> None:
        await consume(stream)

    # live: never behind history; two actors, so a live file waiting for its lock holds no other
    @app.agent(tailer.live_requests, name="ccstream.tailer-live", concurrency=2)
    async def tail_live(stream: Any) -> None:
        await consume(stream)

    @app.timer(s.poll_interval)
    async def poll() -> None:
        if tailer.poll_due():
            await tailer.poll()

    @app.task
    async def scan_forever() -> None:
        while True:
            sent = await tailer.scan()
            if sent:
                log.info("scan of %s: %d files to read", [str(r) for r in tailer.roots], sent)
            await asyncio.sleep(s.scan_interval)

    if s.use_inotify:
        @app.task
        async def watch() -> None:
            with contextlib.suppress(asyncio.CancelledError):
                await tailer.watch()

    if rt.topics.raw_inserted is not None:  # the sink is another process: its notices feed lanes and pacing
        from agents import insert_notices

        insert_notices.register(app, rt)
    return tailer
