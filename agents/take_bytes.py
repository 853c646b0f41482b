"""Batches of a Faust stream bounded by bytes as well as by count: the sink's raw batches.

Faust's `take_events(max_, within)` counts events only. A raw chunk is 1 KB to 512 KB, so a count bounds neither
the sink's memory (a batch of 200 large chunks is ~100 MB of lines, several times that once extracted) nor its
wait: while the edge keeps only `tail_sink_lag_records` lines in flight, a count that is never reached makes
every batch wait out the whole window, and the edge and the sink take turns instead of overlapping
(docs/benchmarks.md, backfill: 0.5 s of wait before each 0.8 s insert). Here a batch is yielded as soon as it
holds `max_bytes`, or `max_events`, or when `within` has passed since the wait began.

The mechanics are Faust's own take_events (faust/streams.py), with the byte count added: a processor fills the
buffer from the stream's passive drain, acks are off while it runs, and the events of a batch are acknowledged
only when the caller asks for the next one, after its insert. That is what makes the sink's commit order hold
(Faust commits an offset only for acknowledged events).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from mode.utils.futures import notify


class BatchBudget:
    """Pure: when a batch being gathered is full. Bytes as well as count, so that a batch of many large chunks
    stops at max_bytes (it goes over by the last event only: an event is never split or held back)."""

    def __init__(self, max_events: int, max_bytes: int) -> None:
        if max_events < 1 or max_bytes < 1:
            raise ValueError("a batch holds at least one event and one byte")
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.events = 0
        self.bytes = 0

    def add(self, size: int) -> bool:
        """Count one event of `size` bytes; True once the batch is full."""
        self.events += 1
        self.bytes += size
        return self.events >= self.max_events or self.bytes >= self.max_bytes

    def reset(self) -> None:
        self.events = self.bytes = 0


def value_size(event: Any) -> int:
    """A Kafka message's value in bytes (what the sink holds of it)."""
    value = event.value
    return len(value) if isinstance(value, bytes | bytearray | memoryview | str) else 0


async def take_events_by_size(stream: Any, max_events: int, max_bytes: int, within: float,
                              size: Callable[[Any], int] = value_size) -> AsyncIterator[list[Any]]:
    """Yield lists of `stream`'s events: at most `max_events`, and no more than `max_bytes` of values unless
    one event alone is larger; a partial list once `within` seconds have passed with something buffered."""
    events: list[Any] = []
    budget = BatchBudget(max_events, max_bytes)
    buffer_full = asyncio.Event()
    buffer_consumed = asyncio.Event()
    consuming: asyncio.Future[None] | None = None
    enable_acks = stream.enable_acks

    async def add_to_buffer(value: Any) -> Any:
        nonlocal consuming
        try:
            if consuming is not None:  # the caller holds the last batch: wait until it asks for the next
                try:
                    await consuming
                finally:
                    consuming = None
            event = stream.current_event
            if event is None:
                raise RuntimeError("take_events_by_size found current_event is None")
            events.append(event)
            if budget.add(size(event)):
                buffer_full.set()
                buffer_consumed.clear()
                await stream.wait(buffer_consumed)  # strict: never more than one batch held
        except asyncio.CancelledError:  # pragma: no cover
            raise
        except Exception as exc:  # as Faust's take_events: a crash of the stream, not a lost event
            stream.log.exception("Error adding to take buffer: %r", exc)
            await stream.crash(exc)
        return value

    stream.enable_acks = False
    stream.add_processor(add_to_buffer)
    stream._enable_passive(aiter(stream.channel))  # noqa: SLF001 (as take_events: drained in the background)
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(buffer_full, timeout=within)
            if events:
                consuming = asyncio.get_running_loop().create_future()
                try:
                    yield list(events)
                finally:
                    for event in events:
                        await stream.ack(event)
                    events.clear()
                    budget.reset()
                    notify(consuming)
                    buffer_full.clear()
                    buffer_consumed.set()
    finally:
        stream.enable_acks = enable_acks
        stream._processors.remove(add_to_buffer)  # noqa: SLF001
