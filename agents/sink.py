"""The sink role: raw chunks, session events and dead letters from Kafka into ClickHouse.

Raw batches are taken by count, bytes and time (agents/take_bytes.py), the others by count and time
(`take_events`), inserted from a thread (chDB has no async client) as
Commits (stream/store/commit.py: the tokens and the order rows → dead letters → checkpoints), and
acknowledged only after every commit of the batch succeeded: Faust commits an offset only for acknowledged
events, so a crash between insert and commit re-delivers the batch and ClickHouse drops it (same tokens) or
merges it (ReplacingMergeTree). ClickHouse down: retry with exponential backoff (stream/backoff.py),
acknowledge nothing, lose nothing.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import faust

from agents.runtime import Runtime
from agents.take_bytes import take_events_by_size, value_size
from stream.backoff import Backoff
from stream.contract.dead_letter import DeadLetter
from stream.contract.insert_notice import InsertNotice
from stream.contract.raw_chunk import RawChunk
from stream.contract.session_event import SessionEvent
from stream.store.commit import batch_token, chunk_identity, concurrent_commits, dead_letter_identity

log = logging.getLogger("ccstream.sink")
T = TypeVar("T")
RETRY_START_SECONDS = 0.2  # the first wait after ClickHouse was found unavailable
# dead letters and OTel records are batched over 2 s: nobody waits on them by the half second, and each
# take_events window is a timer that fires whether or not anything came (an idle stack's CPU)
QUIET_SINK_SECONDS = 2.0


def positions(events: Sequence[Any]) -> list[tuple[int, int]]:
    """(partition, offset) of each event of a batch, for its token."""
    return [(ev.message.partition, ev.message.offset) for ev in events]


async def insert_with_retry(rt: Runtime, what: str, fn: Callable[[], T]) -> T:
    """Run the blocking insert `fn` in a thread until it succeeds. ClickHouseUnavailable (unreachable, timed out,
    overloaded, closed) is waited out with exponential backoff, capped at sink_retry_max_seconds; the caller's
    events stay unacknowledged meanwhile, so Faust commits nothing past them and a crash loses nothing.
    Other errors propagate: a row ClickHouse rejects never gets here (the commit bisects it into dead_letters).
    Each attempt is a new Commit of the same batch token: what an earlier attempt stored is dropped by token."""
    from stream.store.client import ClickHouseUnavailable

    backoff = Backoff(start=RETRY_START_SECONDS, maximum=rt.settings.sink_retry_max_seconds)
    first_failure = 0.0
    while True:
        try:
            result = await (rt.store.run(fn) if rt.store is not None else asyncio.to_thread(fn))
        except ClickHouseUnavailable as exc:
            if not backoff.failures:
                first_failure = time.monotonic()
            rt.stats.insert_retries += 1
            log.warning("ClickHouse unavailable while inserting %s (attempt %d, %s): retrying in %.1fs; nothing "
                        "is committed meanwhile", what, backoff.failures + 1, exc, backoff.delay)
            await backoff.wait()
            continue
        if backoff.failures:
            log.warning("ClickHouse is back: inserted %s after %d failed attempts over %.1fs", what,
                        backoff.failures, time.monotonic() - first_failure)
        return result


def decode_batch(events: Sequence[Any], decode: Callable[[bytes], T], what: str) -> list[T]:
    """The batch's values decoded; an undecodable one is logged with its place and skipped (it cannot
    become a row, and holding the partition for it would stop everything behind it)."""
    out = []
    for ev in events:
        try:
            out.append(decode(ev.value))
        except (ValueError, KeyError, TypeError) as exc:
            log.error("undecodable %s at %s[%d]@%d skipped: %s", what, ev.message.topic, ev.message.partition,
                      ev.message.offset, exc)
    return out


async def insert_raw(rt: Runtime, events: Sequence[Any], topic: str, writers: Sequence[Any]) -> int:
    """One batch of raw chunks from `topic` into ClickHouse, split by file into len(writers) concurrent
    commits; returns the chunks inserted. All commits succeed (each retried on its own) before the caller
    asks for the next batch, which is when the batch is acknowledged. The lanes learn which files' chunks
    are in (stream/tail/raw_lane.py): by a call here, or by a notice where the tailer is another process."""
    chunks = decode_batch(events, RawChunk.decode, "raw chunk")
    if not chunks:
        return 0
    token = batch_token(topic, positions(events), [chunk_identity(c) for c in chunks])
    commits = concurrent_commits(token, chunks, len(writers))
    stored = await asyncio.gather(*(
        insert_with_retry(rt, f"{len(group)} chunks", functools.partial(w.write_chunks, group, tok))
        for w, (tok, group) in zip(writers, commits, strict=False)))
    rt.stats.rows_inserted += sum(stored)
    rt.stats.inserts += len(commits)
    rt.stats.last_insert_at = time.time()
    marks = [(c.path, (c.incarnation, c.end_offset)) for c in chunks]
    rt.lanes.inserted(marks)
    if rt.topics.raw_inserted is not None:  # the tailer is another process: tell it (not awaited: advisory)
        await rt.topics.raw_inserted.send(key=rt.settings.host.encode(),
                                          value=InsertNotice(rt.settings.host, sum(stored), marks).encode())
    return len(chunks)


def register(app: faust.App, rt: Runtime) -> None:
    s = rt.settings
    # the store's writers exist once it has started (before the agents run), not while the app is built

    @app.agent(rt.topics.raw_events, name="ccstream.sink")
    async def sink(stream: Any) -> None:
        async for events in take_events_by_size(stream, s.sink_batch_messages, s.sink_batch_bytes,
                                                s.sink_batch_seconds):
            # the header only: the lines stay one block, handed to ClickHouse as they came
            rt.stats.raw_batches += 1
            rt.stats.largest_raw_batch_bytes = max(rt.stats.largest_raw_batch_bytes,
                                                   sum(value_size(e) for e in events))
            await insert_raw(rt, events, s.topic_raw_events, rt.writers)

    if rt.topics.raw_live is not None:
        # the live lane: each chunk inserted as it comes, on a connection of its own, never behind the
        # backfill's inserts. Not take_events: its batch window is a timer that fires whether or not
        # anything came (at 20 ms, 1.8 % of a core on an idle stack), and live chunks come a few a second.
        # Faust acknowledges an event when the loop asks for the next one, so only after its insert.
        @app.agent(rt.topics.raw_live, name="ccstream.sink-live")
        async def sink_live(stream: Any) -> None:
            async for event in stream.events():
                if await insert_raw(rt, [event], s.topic_raw_live, [rt.live_writer]):
                    rt.stats.live_inserts += 1

    @app.agent(rt.topics.sessions, name="ccstream.session-sink")
    async def session_sink(stream: Any) -> None:
        async for events in stream.take_events(500, within=s.sink_batch_seconds):
            decoded = decode_batch(events, SessionEvent.decode, "session event")
            if decoded:
                token = batch_token(s.topic_sessions, positions(events), [e.event_id for e in decoded])
                await insert_with_retry(rt, f"{len(decoded)} session events",
                                        functools.partial(rt.writer.write_session_events, decoded, token))
                rt.stats.session_events += len(decoded)

    @app.agent(rt.topics.dead_letters, name="ccstream.dead-letter-sink")
    async def dead_letter_sink(stream: Any) -> None:
        async for events in stream.take_events(500, within=max(s.sink_batch_seconds, QUIET_SINK_SECONDS)):
            letters = decode_batch(events, DeadLetter.decode, "dead letter")
            if letters:
                token = batch_token(s.topic_dead_letters, positions(events),
                                    [dead_letter_identity(d) for d in letters])
                await insert_with_retry(rt, f"{len(letters)} dead letters",
                                        functools.partial(rt.writer.write_dead_letters, letters, token))
