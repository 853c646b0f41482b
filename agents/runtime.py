"""What the agents of one worker share besides Faust tables: settings, counters, the contract topics and the
worker's ClickHouse store. Built once per app by `agents.app.create_app` and handed to each agent's
`register` explicitly; nothing is pinned onto the Faust app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import faust
from faust.types import TopicT

from agents.fetch_wait import FetchPace
from stream.config import Settings
from stream.tail.cursor import Checkpoint
from stream.tail.raw_lane import RawLanes

if TYPE_CHECKING:
    from agents.store import StoreService
    from stream.store.client import ClickHouse
    from stream.store.writer import TraceWriter


@dataclass
class Stats:
    """Counters served by /status and logged; cheap enough to bump on the hot path."""

    chunks_produced: int = 0
    records_produced: int = 0
    bad_lines: int = 0
    truncations: int = 0
    recreations: int = 0
    refused_paths: int = 0
    rows_inserted: int = 0
    inserts: int = 0
    insert_retries: int = 0
    last_insert_at: float = 0.0
    session_events: int = 0
    live_inserts: int = 0  # inserts of the live lane (raw-live), where there is one
    raw_batches: int = 0  # batches of raw-events taken by the sink (each split into sink_insert_threads inserts)
    largest_raw_batch_bytes: int = 0  # of chunk values: sink_batch_bytes, plus one chunk at most


@dataclass
class Topics:
    """The contract topics (docs/topics.md), declared once per app: raw bytes both ways, codecs in
    stream/contract/."""

    sessions: TopicT
    raw_events: TopicT
    dead_letters: TopicT
    # live chunks, apart from a backfill's: only where the tailer and the sink are one stack on a local
    # broker (the embedded stack), since the tailer must learn when its chunks are inserted
    # (stream/tail/raw_lane.py); elsewhere every chunk goes to raw_events
    raw_live: TopicT | None = None
    # how it learns that where the sink is another process (a split `up`): the sink's insert notices
    raw_inserted: TopicT | None = None

    @classmethod
    def declare(cls, app: faust.App, settings: Settings) -> Topics:
        def topic(name: str) -> TopicT:
            return app.topic(name, key_serializer="raw", value_serializer="raw",
                             partitions=settings.topic_partitions)

        return cls(topic(settings.topic_sessions), topic(settings.topic_raw_events),
                   topic(settings.topic_dead_letters),
                   topic(settings.topic_raw_live) if settings.live_lane else None,
                   topic(settings.topic_raw_inserted) if settings.sink_apart else None)


class NoStore(RuntimeError):
    """This worker has no ClickHouse (an edge on a team workstation)."""


@dataclass
class Runtime:
    settings: Settings
    topics: Topics
    stats: Stats = field(default_factory=Stats)
    # the worker's ClickHouse, where it reaches one: a Service started before the agents, stopped after them
    store: StoreService | None = None
    # path -> what ClickHouse holds of each of this host's files, loaded by the store when it starts (edge
    # beside a sink, after a restart of a broker that forgets); the tailer takes them over
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)
    # how long the local broker's fetches wait: short while anything moves, long when quiet
    pace: FetchPace = field(init=False)
    # which raw topic each file's next chunk goes to (used only where topics.raw_live exists)
    lanes: RawLanes = field(default_factory=RawLanes)

    def __post_init__(self) -> None:
        s = self.settings
        self.pace = FetchPace(s.fetch_wait_ms, s.fetch_idle_wait_ms, s.fetch_idle_after)

    @property
    def ch(self) -> ClickHouse | None:
        return self.store.ch if self.store is not None else None

    @property
    def writer(self) -> TraceWriter:
        if self.store is None:
            raise NoStore("this worker has no ClickHouse connection (edge role without a DSN)")
        return self.store.writer

    @property
    def writers(self) -> list[TraceWriter]:
        """One writer per concurrent insert of the sink (the first is `writer`)."""
        if self.store is None:
            raise NoStore("this worker has no ClickHouse connection (edge role without a DSN)")
        return self.store.writers

    @property
    def live_writer(self) -> TraceWriter:
        """The live lane's writer: a connection of its own, so a live insert never waits behind history's."""
        if self.store is None:
            raise NoStore("this worker has no ClickHouse connection (edge role without a DSN)")
        return self.store.live_writer
