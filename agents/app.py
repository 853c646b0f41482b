"""The Faust app: topics, tables and agents for the edge role (sessions, tailer) and the sink role.

`create_app(settings)` builds one app per worker process. Both roles run in one worker on the embedded stack;
a team runs `ccstream edge` on each workstation (its own app id, so edges never share file state) and
`ccstream sink` centrally (one app id shared by every sink worker, so they split the raw topic's partitions).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from typing import Any

import faust

from stream.config import Settings
from stream.contract.kafka import bootstrap, faust_credentials

log = logging.getLogger("ccstream.app")


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


@dataclass
class Topics:
    """The contract topics (docs/topics.md), declared once per app: raw bytes both ways, codecs in
    stream/contract/."""

    sessions: Any
    raw_events: Any
    dead_letters: Any

    @classmethod
    def declare(cls, app: faust.App, settings: Settings) -> Topics:
        def topic(name: str) -> Any:
            return app.topic(name, key_serializer="raw", value_serializer="raw",
                             partitions=settings.topic_partitions)

        return cls(topic(settings.topic_sessions), topic(settings.topic_raw_events),
                   topic(settings.topic_dead_letters))


@dataclass
class Runtime:
    """What the agents of one worker share besides Faust tables."""

    settings: Settings
    ch: Any = None  # stream.store.client.ClickHouse where this worker reaches ClickHouse
    writer: Any = None  # stream.store.writer.TraceWriter
    # the sink's concurrent inserts: writer first, then one more writer per extra connection
    writers: list[Any] = field(default_factory=list)
    checkpoints: dict[str, Any] = field(default_factory=dict)  # path -> stream.tail.cursor.Checkpoint
    stats: Stats = field(default_factory=Stats)
    topics: Any = None  # Topics, set by create_app


def _open_clickhouse(rt: Runtime) -> None:
    from stream.store.client import connect
    from stream.store.schema import migrate
    from stream.store.writer import TraceWriter

    rt.ch = connect(rt.settings.effective_clickhouse_dsn)
    migrate(rt.ch)
    rt.writer = TraceWriter(rt.ch)
    extra = max(1, rt.settings.sink_insert_threads) - 1 if "sink" in rt.settings.roles else 0
    rt.writers = [rt.writer, *(TraceWriter(connect(rt.settings.effective_clickhouse_dsn)) for _ in range(extra))]


def _short_fetch_wait(max_wait_ms: int = 50) -> None:
    """Tansu answers a fetch only when its wait expires, not when data arrives, and Faust hardcodes
    fetch_max_wait_ms=1500 (faust/transport/drivers/aiokafka.py): each hop then costs up to 1.5 s. Cap it for
    the local broker (benchmarks/tail_latency: append-to-queryable p50 1.36 s → 0.33 s)."""
    import aiokafka

    init = aiokafka.AIOKafkaConsumer.__init__
    if getattr(init, "ccstream_capped", False):
        return

    def capped(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["fetch_max_wait_ms"] = min(int(kwargs.get("fetch_max_wait_ms", 500)), max_wait_ms)
        init(self, *args, **kwargs)

    capped.ccstream_capped = True  # type: ignore[attr-defined]
    aiokafka.AIOKafkaConsumer.__init__ = capped  # type: ignore[method-assign]


def create_app(settings: Settings) -> faust.App:
    roles = set(settings.roles)
    unknown = roles - {"edge", "sink"}
    if unknown or not roles:
        raise ValueError(f"roles must be edge and/or sink, not {sorted(roles)}")
    if settings.broker_is_ephemeral:
        # A fresh in-memory broker has no changelogs and no committed offsets: persisted table state would
        # claim offsets above the new highwater (ConsistencyError). ClickHouse holds the truth instead.
        shutil.rmtree(settings.faust_dir, ignore_errors=True)
    settings.faust_dir.mkdir(parents=True, exist_ok=True)

    fast_group = settings.broker_is_ephemeral  # a local broker: join groups in seconds, not half a minute
    if settings.broker_is_ephemeral:
        _short_fetch_wait()
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{bootstrap(settings)}",
        broker_credentials=faust_credentials(settings),
        store="rocksdb://",
        datadir=str(settings.faust_dir),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1 if settings.broker_is_ephemeral else 3,
        producer_compression_type="zstd",
        producer_max_request_size=settings.max_line_bytes + 2 * 1024 * 1024,
        producer_acks=-1,
        consumer_max_fetch_size=8 * 1024 * 1024,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=6.0 if fast_group else 60.0,
        broker_rebalance_timeout=6.0 if fast_group else 60.0,
        broker_heartbeat_interval=1.0 if fast_group else 3.0,
        broker_commit_interval=1.0,
        web_enabled=True,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        table_cleanup_interval=60.0,
        stream_wait_empty=False,
    )
    rt = Runtime(settings)
    rt.topics = Topics.declare(app, settings)
    app.ccstream = rt  # type: ignore[attr-defined]

    # The sink needs ClickHouse. An edge reads its file checkpoints from it (for a broker that forgets)
    # only beside a sink (one process owns a chDB store) or where a DSN is set explicitly: an edge on a
    # team workstation has no local ClickHouse and must not create one.
    if "sink" in roles or (settings.broker_is_ephemeral and settings.clickhouse_dsn):
        _open_clickhouse(rt)
    if "edge" in roles and rt.writer is not None:
        rt.checkpoints = rt.writer.file_checkpoints(settings.host)
        log.info("loaded %d file checkpoints from ClickHouse", len(rt.checkpoints))

    from agents import sessions, sink, tailer, web

    if "edge" in roles:
        tailer.register(app, rt)
        sessions.register(app, rt)
    if "sink" in roles:
        sink.register(app, rt)
    web.register(app, rt)
    return app
