"""The tailer: follows transcript files and produces their complete lines to ``ccstream.raw-events``.

Work arrives as TailRequests on the edge-local ``tail-requests`` topic, keyed by path, so the
``file_offsets`` table (keyed by path too) is updated from agent context, partition for partition. Requests
come from inotify (watchfiles), a 1 s stat poll of followed files, periodic scans of the roots, and the
sessions agent (SessionStart/SessionEnd). A request reads everything new in the file: redundant requests
cost a stat and nothing else, and a request for a path already queued is not sent twice.

Each read step (stream.tail.filereader, pure framing underneath) becomes ONE Kafka message carrying all its
records (a chunk), and the cursor is written once per chunk after the broker acknowledged the chunk: a
crash re-reads at most the last chunk, which the idempotent sink absorbs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust

from agents.app import Runtime
from stream.contract.dead_letter import DeadLetter
from stream.contract.identity import file_id_for
from stream.contract.raw_chunk import RawChunk
from stream.contract.tail_request import TailRequest
from stream.tail.cursor import Action, Cursor
from stream.tail.discovery import confine, iter_transcripts, session_and_agent
from stream.tail.filereader import ReadResult, read_step
from stream.tail.redaction import redactor_from_settings

log = logging.getLogger("ccstream.tailer")

MAX_STEPS_PER_REQUEST = 8  # then re-queue the file so one huge file does not starve the others
# requests that only say "something may have changed": a read that finds nothing new does not make the file
# followed (an inotify event that arrives after the SessionEnd read must not bring the file back to memory)
PASSIVE_REASONS = frozenset({"inotify", "scan", "adopt", "continue", "poll", "agent-ref"})
AGENT_MARK = b'"agentId"'  # toolUseResult.agentId and agent_progress lines name a subagent
_AGENT_ID = re.compile(rb'"agentId"\s*:\s*"([A-Za-z0-9_.-]{1,128})"')


@dataclass(slots=True)
class Followed:
    """In-memory view of a followed file, for the poller. Bounded: idle and ended files leave it."""

    session_id: str
    agent_id: str | None
    size: int
    mtime: float
    offset: int
    last_change: float  # monotonic time the file last grew
    ended: bool = False
    tail_requested: bool = False  # a quiet-tail request was sent for the current size


class Tailer:
    def __init__(self, app: faust.App, rt: Runtime) -> None:
        s = rt.settings
        self.app = app
        self.rt = rt
        self.settings = s
        self.requests = app.topic(s.topic_tail_requests, key_serializer="raw", value_serializer="raw",
                                  partitions=s.topic_partitions, internal=False)
        self.raw_events = rt.topics.raw_events
        self.dead_letters = rt.topics.dead_letters
        # keys are paths (str), values Cursor.to_dict(); json both ways so recovery gives back the same types
        self.offsets = app.Table("file_offsets", default=None, partitions=s.topic_partitions,
                                 schema=faust.Schema(key_serializer="json", value_serializer="json"))
        self.followed: dict[str, Followed] = {}
        self.queued: set[str] = set()  # paths with a request in flight: don't pile up duplicates
        self.roots = [Path(r) for r in s.claude_roots]
        self.redactor = redactor_from_settings(s)  # secrets never leave this machine
        self.first_scan_done = False
        # main files whose subagent folder was already looked up because of an agentId line; cleared with
        # the file's Followed entry so it stays bounded by the followed set
        self.agents_seen: dict[str, set[str]] = {}

    # ---- requests ---------------------------------------------------------------------------------
    async def request(self, path: str, *, session_id: str = "", agent_id: str | None = None,
                      final: bool = False, reason: str = "") -> None:
        if path in self.queued and not final:
            return
        self.queued.add(path)
        req = TailRequest(path=path, session_id=session_id, agent_id=agent_id, final=final, reason=reason)
        await self.requests.send(key=path.encode(), value=req.encode())

    # ---- reading ------------------------------------------------------------------------------------
    async def handle(self, req: TailRequest) -> None:
        path = req.path
        self.queued.discard(path)
        if confine(path, self.roots) is None:
            self.rt.stats.refused_paths += 1
            log.warning("refused to read %s: not a regular file under the Claude roots %s", path,
                        [str(r) for r in self.roots])
            return
        stored = self.offsets.get(path)
        cursor = Cursor.from_dict(stored) if stored else None
        checkpoint = self.rt.checkpoints.pop(path, None)  # popped either way: it must not outlive this read
        if cursor is not None:
            checkpoint = None
        # from the path only, never from the request: identities and the ORDER BY key must be the same
        # whoever asked for the read (a hook, a scan, inotify), or re-reads would not merge
        session_id, agent_id = session_and_agent(Path(path))
        s = self.settings
        for _ in range(MAX_STEPS_PER_REQUEST):
            res: ReadResult = await asyncio.to_thread(
                read_step, path, cursor, checkpoint=checkpoint, final=req.final, now=time.time(),
                quiet_seconds=s.partial_line_quiet, max_line_bytes=s.max_line_bytes,
                read_bytes=s.read_chunk_bytes)
            if res.missing or res.cursor is None:
                if res.error:
                    log.warning("cannot read %s: %s", path, res.error)
                self.forget(path)
                return
            if res.action is Action.TRUNCATED:
                self.rt.stats.truncations += 1
                log.warning("%s was truncated: reading it again from the start as incarnation %d",
                            path, res.cursor.incarnation)
            elif res.action is Action.RECREATED:
                self.rt.stats.recreations += 1
                log.warning("%s was recreated: reading it again from the start as incarnation %d",
                            path, res.cursor.incarnation)
            new = res.cursor
            adopted = (cursor is None and checkpoint is not None and res.action is Action.CONTINUE
                       and new.offset == checkpoint.offset and not res.records and not res.bad)
            changed = (cursor is None or new.offset != cursor.offset or new.incarnation != cursor.incarnation
                       or res.records or res.bad)
            checkpoint = None
            if adopted:
                # ClickHouse already holds this file up to here: keep the cursor (on disk), send nothing
                self.offsets[path] = new.to_dict()
            elif changed:
                await self._produce(path, session_id, agent_id, new, res)
                self.offsets[path] = new.to_dict()
                if agent_id is None and any(AGENT_MARK in r.raw for r in res.records):
                    await self._follow_subagents(path, session_id, res.records)
            cursor = new
            if (changed and not adopted) or path in self.followed or req.reason not in PASSIVE_REASONS:
                self._note_followed(path, session_id, agent_id, new, ended=req.final)
            if not res.more:
                break
        else:
            await self.request(path, session_id=session_id, agent_id=agent_id, final=req.final,
                               reason="continue")
            return
        if req.final:
            # the session ended and its file is drained: it leaves memory; its cursor stays in the table
            self.forget(path)

    def forget(self, path: str) -> None:
        """Drop a file's in-memory state; its cursor stays in the file_offsets table (RocksDB), so a later
        request continues where it stopped."""
        self.followed.pop(path, None)
        self.agents_seen.pop(path, None)

    async def _follow_subagents(self, path: str, session_id: str, records: list[Any]) -> None:
        """A main file's new lines name subagents (toolUseResult.agentId, agent_progress): follow their files
        now (both layouts), before a scan or an inotify event would find them. Each agent id is looked up
        until its file is found; the ids seen are kept only while the main file is followed."""
        ids = {m.group(1).decode("utf-8", "replace") for r in records if AGENT_MARK in r.raw
               for m in _AGENT_ID.finditer(r.raw)}
        seen = self.agents_seen.setdefault(path, set())
        main = Path(path)
        for agent in sorted(ids - seen):
            if "/" in agent or agent in (".", ".."):
                continue  # an id is a file name part, never a path
            for cand in (main.parent / main.stem / "subagents" / f"agent-{agent}.jsonl",
                         main.parent / f"agent-{agent}.jsonl"):
                if await asyncio.to_thread(cand.is_file):
                    seen.add(agent)
                    await self.request(str(cand), session_id=session_id, reason="agent-ref")

    async def _produce(self, path: str, session_id: str, agent_id: str | None, cursor: Cursor,
                       res: ReadResult) -> None:
        s = self.settings
        fid = file_id_for(s.host, path)
        now = time.time()
        dead = [DeadLetter(host=s.host, path=path, file_id=fid, incarnation=cursor.incarnation,
                           offset=b.offset, line_no=b.line_no, length=b.length, reason=b.reason,
                           sample=b.sample, detected_at=now) for b in res.bad]
        redactions: list[int] = []
        if self.redactor is not None:
            for rec in res.records:
                rec.raw, n = self.redactor.redact(rec.raw)
                redactions.append(n)
            if not any(redactions):
                redactions = []
            for d in dead:
                d.sample = self.redactor.redact(d.sample)[0]
        chunk = RawChunk.from_records(host=s.host, user=s.user, path=path, file_id=fid,
                                      incarnation=cursor.incarnation, fingerprint=cursor.fingerprint,
                                      session_id=session_id, agent_id=agent_id, records=res.records,
                                      end_offset=cursor.offset, end_line=cursor.line_no,
                                      dead_letters=dead, redactions=redactions)
        key = (session_id or fid).encode()
        pending = [await self.raw_events.send(key=key, value=chunk.encode())]
        for d in dead:
            log.warning("bad line in %s at byte %d (line %d): %s", path, d.offset, d.line_no, d.reason)
            pending.append(await self.dead_letters.send(key=fid.encode(), value=d.encode()))
        # the cursor moves only after the broker has the chunk: at least once, never less
        await asyncio.gather(*pending)
        self.rt.stats.chunks_produced += 1
        self.rt.stats.records_produced += len(res.records)
        self.rt.stats.bad_lines += len(dead)

    def _note_followed(self, path: str, session_id: str, agent_id: str | None, cursor: Cursor,
                       ended: bool) -> None:
        f = self.followed.get(path)
        now = time.monotonic()
        if f is None:
            self.followed[path] = Followed(session_id, agent_id, cursor.size, cursor.mtime, cursor.offset, now,
                                           ended=ended)
            return
        if cursor.size != f.size or cursor.mtime != f.mtime:
            f.last_change = now
            f.tail_requested = False
        f.size, f.mtime, f.offset = cursor.size, cursor.mtime, cursor.offset
        f.ended = f.ended or ended

    def lagging(self) -> list[dict[str, Any]]:
        """Followed files whose cursor is behind their size (an unterminated tail waits here too)."""
        return [{"path": p, "offset": f.offset, "size": f.size, "session_id": f.session_id}
                for p, f in self.followed.items() if f.offset < f.size]

    # ---- finding work -------------------------------------------------------------------------------
    async def poll(self) -> None:
        """Stat followed files; request a read when one changed or its unterminated tail went quiet."""
        now_wall = time.time()
        now = time.monotonic()
        for path, f in list(self.followed.items()):
            try:
                st = os.stat(path)
            except OSError:
                await self.request(path, reason="poll")  # gone: the tailer notices and forgets it
                continue
            if st.st_size != f.size or st.st_mtime != f.mtime:
                await self.request(path, session_id=f.session_id, agent_id=f.agent_id, reason="poll")
            elif (f.offset < st.st_size and not f.tail_requested
                  and now_wall - st.st_mtime >= self.settings.partial_line_quiet):
                f.tail_requested = True
                await self.request(path, session_id=f.session_id, agent_id=f.agent_id, reason="quiet-tail")
            elif now - f.last_change > self.settings.idle_session_timeout:
                self.forget(path)  # idle: leaves memory; scans and inotify bring it back

    async def scan(self) -> int:
        """Request every transcript under the roots whose size differs from what we know of it.

        The first full scan also empties ``rt.checkpoints`` (one entry per historical file, loaded from
        ClickHouse at start): files it finds complete are sent as "adopt" requests, which turn the checkpoint
        into a cursor in the file_offsets table (tables are written from agent context only) without
        producing anything; entries for files that no longer exist are dropped. Afterwards the checkpoints
        hold only requests in flight, and `_unchanged` relies on the table."""
        paths = await asyncio.to_thread(lambda: [str(p) for p in iter_transcripts(self.roots)])
        sent = 0
        for path in paths:
            unchanged, by_checkpoint = await self._unchanged(path)
            if unchanged and by_checkpoint:
                await self.request(path, reason="adopt")
                continue
            if unchanged:
                continue
            await self.request(path, reason="scan")
            sent += 1
        if not self.first_scan_done:
            self.first_scan_done = True
            on_disk = set(paths)
            for gone in [p for p in self.rt.checkpoints if p not in on_disk]:
                del self.rt.checkpoints[gone]
        return sent

    async def _unchanged(self, path: str) -> tuple[bool, bool]:
        """(nothing new to read, known only from a ClickHouse checkpoint)."""
        try:
            st = os.stat(path)
        except OSError:
            return True, False
        f = self.followed.get(path)
        if f is not None:
            return f.size == st.st_size and f.mtime == st.st_mtime and f.offset >= st.st_size, False
        stored = self.offsets.get(path)
        if stored:
            c = Cursor.from_dict(stored)
            return c.size == st.st_size and c.offset >= st.st_size and c.ino == st.st_ino, False
        ckpt = self.rt.checkpoints.get(path)
        return ckpt is not None and ckpt.offset == st.st_size, True

    async def watch(self) -> None:
        """inotify through watchfiles: a write to any transcript under the roots asks for a read at once."""
        from watchfiles import Change, awatch

        while True:
            roots = [str(r) for r in self.roots if r.is_dir()]
            if not roots:
                await asyncio.sleep(self.settings.scan_interval)
                continue
            try:
                async for changes in awatch(*roots, debounce=100, step=20, recursive=True,
                                            stop_event=None, force_polling=False):
                    for change, p in changes:
                        if p.endswith(".jsonl") and change != Change.deleted:
                            await self.request(p, reason="inotify")
                        elif change == Change.deleted and p in self.followed:
                            self.forget(p)
            except Exception as exc:  # e.g. inotify watch limit: the poller and scans still work
                log.warning("file watching stopped (%s); relying on polling every %.1fs",
                            exc, self.settings.poll_interval)
                return


def register(app: faust.App, rt: Runtime) -> Tailer:
    tailer = Tailer(app, rt)
    s = rt.settings
    app.ccstream_tailer = tailer  # type: ignore[attr-defined]

    @app.agent(tailer.requests, name="ccstream.tailer")
    async def tail(stream: Any) -> None:
        async for value in stream:
            try:
                await tailer.handle(TailRequest.decode(value))
            except Exception:  # one bad file must not stop the tailer; it is retried by the next poll/scan
                log.exception("tailing failed for request %r", value[:200])

    @app.timer(s.poll_interval)
    async def poll() -> None:
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

    return tailer
