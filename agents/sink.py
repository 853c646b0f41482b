"""The sink role: raw chunks, session events and dead letters from Kafka into ClickHouse.

Batches are taken by count and time (`take_events`), inserted from a thread (chDB has no async client),
with an insert deduplication token derived from the batch's topic/partition/offset ranges, and acknowledged
only after the insert succeeded: Faust commits an offset only for acknowledged events, so a crash between
insert and commit re-delivers the batch and ClickHouse drops it (token) or merges it (ReplacingMergeTree).
ClickHouse down: retry with exponential backoff, commit nothing, lose nothing.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import faust

from agents.runtime import Runtime
from stream.contract.dead_letter import DeadLetter
from stream.contract.raw_chunk import RawChunk
from stream.contract.session_event import SessionEvent

log = logging.getLogger("ccstream.sink")
T = TypeVar("T")


def batch_token(topic: str, events: Sequence[Any], content: Sequence[str]) -> str:
    """Deterministic for a re-delivered batch, distinct for any other: the topic/partition/offset ranges AND
    the identities of what the batch carries. Offsets alone are not enough: the embedded broker starts empty
    after a restart, so offsets repeat with other content, and ClickHouse would drop the new rows as
    duplicates of the old batch."""
    ranges: dict[int, list[int]] = {}
    for ev in events:
        msg = ev.message
        lo_hi = ranges.setdefault(msg.partition, [msg.offset, msg.offset])
        lo_hi[0] = min(lo_hi[0], msg.offset)
        lo_hi[1] = max(lo_hi[1], msg.offset)
    h = hashlib.sha1(topic.encode())
    h.update(";".join(f"{p}:{lo}-{hi}" for p, (lo, hi) in sorted(ranges.items())).encode())
    for item in content:
        h.update(b"\0" + item.encode())
    return h.hexdigest()


def chunk_identity(c: RawChunk) -> str:
    offsets = c.offsets()
    first = offsets[0] if offsets else c.end_offset
    return f"{c.file_id}/{c.incarnation}/{first}-{c.end_offset}"


async def insert_with_retry(rt: Runtime, what: str, fn: Callable[[], T]) -> T:
    """Run the blocking insert `fn` in a thread until it succeeds. ClickHouseUnavailable (unreachable, timed out,
    overloaded, closed) is waited out with exponential backoff, capped at sink_retry_max_seconds; the caller's
    events stay unacknowledged meanwhile, so Faust commits nothing past them and a crash loses nothing.
    Other errors propagate: a row ClickHouse rejects never gets here (the writer bisects it into dead_letters)."""
    from stream.store.client import ClickHouseUnavailable

    delay = 0.2
    failures = 0
    first_failure = 0.0
    while True:
        try:
            result = await asyncio.to_thread(fn)
        except ClickHouseUnavailable as exc:
            if not failures:
                first_failure = time.monotonic()
            failures += 1
            rt.stats.insert_retries += 1
            log.warning("ClickHouse unavailable while inserting %s (attempt %d, %s): retrying in %.1fs; nothing "
                        "is committed meanwhile", what, failures, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, rt.settings.sink_retry_max_seconds)
            continue
        if failures:
            log.warning("ClickHouse is back: inserted %s after %d failed attempts over %.1fs", what, failures,
                        time.monotonic() - first_failure)
        return result


def split_by_file(chunks: Sequence[RawChunk], parts: int) -> list[list[RawChunk]]:
    """The batch in at most `parts` groups for concurrent inserts, about equal in rows. A file's chunks stay
    together and in order, so one insert writes a file's rows and checkpoints in sequence: a checkpoint never
    gets ahead of rows of its file that another insert has not stored yet. Deterministic for a given batch."""
    by_file: dict[str, list[RawChunk]] = {}
    for c in chunks:
        by_file.setdefault(c.file_id, []).append(c)
    n = max(1, min(parts, len(by_file)))
    sizes = [0] * n
    group_of: dict[str, int] = {}
    for fid, file_chunks in sorted(by_file.items(), key=lambda kv: -sum(c.record_count() for c in kv[1])):
        group_of[fid] = i = sizes.index(min(sizes))
        sizes[i] += sum(c.record_count() + 1 for c in file_chunks)
    groups: list[list[RawChunk]] = [[] for _ in range(n)]
    for c in chunks:  # in batch order within each group
        groups[group_of[c.file_id]].append(c)
    return [g for g in groups if g]


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


def register(app: faust.App, rt: Runtime) -> None:
    s = rt.settings
    # the store's writers exist once it has started (before the agents run), not while the app is built

    @app.agent(rt.topics.raw_events, name="ccstream.sink")
    async def sink(stream: Any) -> None:
        async for events in stream.take_events(s.sink_batch_messages, within=s.sink_batch_seconds):
            # lazy: the lines stay one block, handed to ClickHouse as they came (records built only if needed)
            chunks = decode_batch(events, functools.partial(RawChunk.decode, lazy=True), "raw chunk")
            if not chunks:
                continue
            token = batch_token(s.topic_raw_events, events, [chunk_identity(c) for c in chunks])
            writers = rt.writers
            groups = split_by_file(chunks, len(writers))
            # all inserts of the batch succeed (each retried on its own) before the batch is acknowledged
            stored = await asyncio.gather(*(
                insert_with_retry(rt, f"{len(group)} chunks", functools.partial(
                    w.write_chunks, group, token if len(groups) == 1 else f"{token}/{i}of{len(groups)}"))
                for i, (w, group) in enumerate(zip(writers, groups, strict=False))))
            rt.stats.rows_inserted += sum(stored)
            rt.stats.inserts += len(groups)
            rt.stats.last_insert_at = time.time()

    @app.agent(rt.topics.sessions, name="ccstream.session-sink")
    async def session_sink(stream: Any) -> None:
        async for events in stream.take_events(500, within=s.sink_batch_seconds):
            decoded = decode_batch(events, SessionEvent.decode, "session event")
            if decoded:
                token = batch_token(s.topic_sessions, events, [e.event_id for e in decoded])
                await insert_with_retry(rt, f"{len(decoded)} session events",
                                        functools.partial(rt.writer.write_session_events, decoded, token))
                rt.stats.session_events += len(decoded)

    @app.agent(rt.topics.dead_letters, name="ccstream.dead-letter-sink")
    async def dead_letter_sink(stream: Any) -> None:
        async for events in stream.take_events(500, within=s.sink_batch_seconds):
            letters = decode_batch(events, DeadLetter.decode, "dead letter")
            if letters:
                token = batch_token(s.topic_dead_letters, events,
                                    [f"{d.file_id}/{d.incarnation}/{d.offset}/{d.reason}" for d in letters])
                await insert_with_retry(rt, f"{len(letters)} dead letters",
                                        functools.partial(rt.writer.write_dead_letters, letters, token))
