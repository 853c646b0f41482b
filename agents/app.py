"""The Faust app: topics, tables and agents for the edge role (sessions, tailer) and the sink role.

`create_app(settings)` builds one app per worker process. Both roles run in one worker on the embedded stack;
a team runs `ccstream edge` on each workstation (its own app id, so edges never share file state) and
`ccstream sink` centrally (one app id shared by every sink worker, so they split the raw topic's partitions).
"""

from __future__ import annotations

import logging
import shutil

import faust

from agents.fetch_wait import FetchWaitCap
from agents.runtime import Runtime, Topics
from agents.store import StoreService
from stream.config import Settings
from stream.contract.kafka import bootstrap, faust_credentials

log = logging.getLogger("ccstream.app")


def reset_local_state(settings: Settings) -> None:
    """Called by the worker command before it builds the app. A fresh in-memory broker has no changelogs and
    no committed offsets: persisted table state would claim offsets above the new highwater
    (ConsistencyError), so it is cleared, and ClickHouse's file checkpoints hold the truth instead."""
    if settings.broker_is_ephemeral:
        shutil.rmtree(settings.faust_dir, ignore_errors=True)
    settings.faust_dir.mkdir(parents=True, exist_ok=True)


def create_app(settings: Settings) -> faust.App:
    """The app of one worker: topics, tables, agents and pages for its roles, and the services it owns (the
    ClickHouse store, the local broker's fetch-wait cap), added as its first dependencies so they start before
    the agents and stop after them. Building it opens no connection and touches no file."""
    roles = set(settings.roles)
    unknown = roles - {"edge", "sink"}
    if unknown or not roles:
        raise ValueError(f"roles must be edge and/or sink, not {sorted(roles)}")

    fast_group = settings.broker_is_ephemeral  # a local broker: join groups in seconds, not half a minute
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
        broker_heartbeat_interval=2.0 if fast_group else 3.0,  # a third of the session timeout
        # Faust's default: consumer offsets committed every 2.8 s, its livelock check every 7 s. Commits are
        # not in the data path (the sink is idempotent, so a crash re-delivering a few seconds more is
        # absorbed); at 1 s these two timers were a third of an idle worker's main loop
        broker_commit_interval=2.8,
        web_enabled=True,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        table_cleanup_interval=60.0,
        stream_wait_empty=False,
    )
    rt = Runtime(settings, Topics.declare(app, settings))
    if settings.broker_is_ephemeral:
        app.add_dependency(FetchWaitCap(rt.pace))

    # The sink needs ClickHouse. An edge reads its file checkpoints from it (for a broker that forgets)
    # only beside a sink (one process owns a chDB store) or where a DSN is set explicitly: an edge on a
    # team workstation has no local ClickHouse and must not create one.
    if "sink" in roles or (settings.broker_is_ephemeral and settings.clickhouse_dsn):
        rt.store = StoreService(settings, connections=settings.sink_insert_threads if "sink" in roles else 1,
                                checkpoints_for=settings.host if "edge" in roles else None,
                                checkpoints=rt.checkpoints, live=rt.topics.raw_live is not None)
        app.add_dependency(rt.store)
    elif "edge" in roles and settings.sink_apart:  # a split `up`'s edge: the sink worker owns chDB
        from agents.checkpoints import SinkCheckpoints

        app.add_dependency(SinkCheckpoints(settings, rt.checkpoints))
    if "edge" in roles and settings.otlp_port:  # Claude Code's own telemetry (docs/otel.md)
        from stream.otel.receiver import OtlpReceiver

        app.add_dependency(OtlpReceiver(settings))

    from agents import dashboard, sessions, sink, tailer, web

    tail = sessions_table = None
    if "edge" in roles:
        tail = tailer.register(app, rt)
        sessions_table = sessions.register(app, rt, tail)
    if "sink" in roles:
        sink.register(app, rt)
        from agents import otel_sink

        otel_sink.register(app, rt)
    web.register(app, rt, tailer=tail, sessions_table=sessions_table)
    dashboard.register(app, rt, tailer=tail)
    return app
