"""Versioned, idempotent schema migrations, recorded in `schema_migrations`.

Each migration is a list of statements that are safe to run again (IF NOT EXISTS), so a migration that was
interrupted half way, or two workers migrating at the same moment, end in the same schema. A version is
recorded only after all its statements ran. The same SQL runs on chDB and on a ClickHouse server.

Add a migration by appending `Migration(n + 1, name, [statements])` to MIGRATIONS (views: VIEW_MIGRATIONS in
stream/store/views.py); never edit an applied one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stream.store.client import ClickHouse
from stream.store.extraction import RAW_CHUNKS_DDL, RAW_CHUNKS_VIEW_V3
from stream.store.extraction import view_ddl as raw_chunks_view_ddl
from stream.store.otel_schema import OTEL_MIGRATION_NAME, OTEL_STATEMENTS
from stream.store.views import TOKEN_USAGE_V4_STATEMENTS, VIEW_MIGRATIONS


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: list[str]


SCHEMA_MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32,
    name       String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version
"""

# claude_raw_traces: one row per JSON object of a transcript file.
#
# Identity is (file_id, incarnation, byte_offset): the file on its host, which incarnation of it (bumped when
# the file is truncated or recreated) and where the object starts. Delivery is at least once, so the same
# line may be inserted several times. ReplacingMergeTree collapses rows with equal ORDER BY keys, so the key
# must be equal for every copy of a line: it is the identity as a suffix, and everything before it
# (session_id, timestamp) is a deterministic function of the line and its file (extract.py never uses "now":
# a missing timestamp becomes the snapshot's or 1970-01-01, and a line without sessionId takes the file's
# session). Equal identities therefore always have equal keys and always merge, while the key still starts
# with what the common lookups filter on (a session, a time range). The version column is ingested_at, so the
# newest copy wins. Exact counts read with FINAL (or argMax by ingested_at) until background merges catch up.
# PARTITION BY month keeps merges and TTLs local; PARTITION BY uses the same deterministic timestamp, so
# copies also land in the same partition (merges never cross partitions).
# non_replicated_deduplication_window keeps the hashes/tokens of the last 10,000 inserted blocks, so a batch
# re-sent with the same insert_deduplication_token (a sink that crashed before committing its Kafka offset)
# is dropped at insert time, before any merge.
RAW_TRACES_DDL = """
CREATE TABLE IF NOT EXISTS claude_raw_traces
(
    host                        LowCardinality(String),
    user                        LowCardinality(String),
    file_id                     String,
    incarnation                 UInt32,
    byte_offset                 UInt64,
    line_no                     UInt32,
    file_path                   LowCardinality(String),
    session_id                  String,
    agent_id                    String,
    is_sidechain                UInt8,
    project                     LowCardinality(String),
    type                        LowCardinality(String),
    subtype                     LowCardinality(String),
    uuid                        String,
    parent_uuid                 String,
    logical_parent_uuid         String,
    timestamp                   DateTime64(3, 'UTC'),
    timestamp_missing           UInt8,
    missing_fields              Array(String),
    version                     LowCardinality(String),
    git_branch                  LowCardinality(String),
    slug                        LowCardinality(String),
    model                       LowCardinality(String),
    message_id                  String,
    request_id                  String,
    stop_reason                 LowCardinality(String),
    input_tokens                UInt64,
    output_tokens               UInt64,
    cache_creation_input_tokens UInt64,
    cache_read_input_tokens     UInt64,
    cache_creation_5m           UInt64,
    cache_creation_1h           UInt64,
    tool_use_ids                Array(String),
    tool_use_names              Array(LowCardinality(String)),
    tool_result_ids             Array(String),
    tool_result_is_error        Array(UInt8),
    result_agent_id             String,
    progress_type               LowCardinality(String),
    progress_agent_id           String,
    is_meta                     UInt8,
    is_compact_summary          UInt8,
    is_api_error                UInt8,
    redactions                  UInt32,
    raw                         String CODEC(ZSTD(3)),
    ingested_at                 DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (session_id, timestamp, file_id, incarnation, byte_offset)
SETTINGS non_replicated_deduplication_window = 10000
"""

# Bad lines (not JSON, not UTF-8, too long) and rows ClickHouse refused, keyed by the same identity.
DEAD_LETTERS_DDL = """
CREATE TABLE IF NOT EXISTS dead_letters
(
    host         LowCardinality(String),
    file_path    String,
    file_id      String,
    incarnation  UInt32,
    byte_offset  UInt64,
    line_no      UInt32,
    length       UInt64,
    reason       String,
    sample       String CODEC(ZSTD(3)),
    detected_at  DateTime64(3, 'UTC'),
    ingested_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(ingested_at)
ORDER BY (file_id, incarnation, byte_offset)
SETTINGS non_replicated_deduplication_window = 10000
"""

# Hook events. event_id is unique per hook invocation and determines session_id, so ordering by
# (session_id, event_id) merges repeats exactly like ordering by event_id alone, and serves per-session reads.
SESSION_EVENTS_DDL = """
CREATE TABLE IF NOT EXISTS session_events
(
    event_id         String,
    hook_event_name  LowCardinality(String),
    session_id       String,
    transcript_path  String,
    cwd              String,
    host             LowCardinality(String),
    user             LowCardinality(String),
    received_at      DateTime64(3, 'UTC'),
    source           LowCardinality(String),
    reason           LowCardinality(String),
    agent_id         String,
    payload          String CODEC(ZSTD(3)),
    ingested_at      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(ingested_at)
ORDER BY (session_id, event_id)
SETTINGS non_replicated_deduplication_window = 10000
"""

# One row per session from its hook events (a view: always current, nothing to keep in step).
SESSIONS_VIEW_DDL = """
CREATE VIEW IF NOT EXISTS sessions AS
SELECT
    session_id,
    if(countIf(hook_event_name = 'SessionStart') > 0,
       minIf(received_at, hook_event_name = 'SessionStart'), NULL)          AS first_start,
    if(countIf(hook_event_name = 'SessionEnd') > 0,
       maxIf(received_at, hook_event_name = 'SessionEnd'), NULL)            AS last_end,
    argMinIf(source, received_at, hook_event_name = 'SessionStart')         AS source,
    argMaxIf(reason, received_at, hook_event_name = 'SessionEnd')           AS reason,
    argMax(host, received_at)                                               AS host,
    argMax(user, received_at)                                               AS user,
    argMax(cwd, received_at)                                                AS cwd,
    argMaxIf(transcript_path, received_at, transcript_path != '')           AS path,
    min(received_at)                                                        AS first_seen,
    max(received_at)                                                        AS last_seen,
    count()                                                                 AS events
FROM session_events FINAL
GROUP BY session_id
"""

# Where the sink has stored each file up to: one row per raw chunk. The version grows with the incarnation
# first and the offset second (an offset stays far below 2^40 = 1 TiB), so FINAL keeps, per (host, file_id),
# the newest incarnation at its furthest offset, whatever order chunks arrived in. After a restart on an
# ephemeral broker the tailer resumes each file from here: ClickHouse holds exactly what was stored.
FILE_CHECKPOINTS_DDL = """
CREATE TABLE IF NOT EXISTS file_checkpoints
(
    host         LowCardinality(String),
    file_id      String,
    file_path    String,
    incarnation  UInt32,
    fingerprint  String,
    end_offset   UInt64,
    end_line     UInt32,
    updated_at   DateTime64(3, 'UTC'),
    version      UInt64 DEFAULT incarnation * 1099511627776 + end_offset  -- incarnation * 2^40 + end_offset
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (host, file_id)
SETTINGS non_replicated_deduplication_window = 10000
"""

# migration 4: usage fields of current Claude Code and the echoed response's time (stream/store/extract.py)
ADD_V4_COLUMNS = """
ALTER TABLE claude_raw_traces
    ADD COLUMN IF NOT EXISTS web_search_requests UInt64 AFTER cache_creation_1h,
    ADD COLUMN IF NOT EXISTS web_fetch_requests  UInt64 AFTER web_search_requests,
    ADD COLUMN IF NOT EXISTS service_tier        LowCardinality(String) AFTER web_fetch_requests,
    ADD COLUMN IF NOT EXISTS speed               LowCardinality(String) AFTER service_tier,
    ADD COLUMN IF NOT EXISTS inference_geo       LowCardinality(String) AFTER speed,
    -- advisor sub-inferences (usage.iterations of type advisor_message): (model, input, output,
    -- cache creation, cache read, 5m writes, 1h writes)
    ADD COLUMN IF NOT EXISTS advisor_usage       Array(Tuple(String, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64))
                                                 AFTER inference_geo,
    ADD COLUMN IF NOT EXISTS echo_timestamp      DateTime64(3, 'UTC') AFTER progress_agent_id
"""

MIGRATIONS: list[Migration] = [
    Migration(1, "raw traces, dead letters, session events, sessions view, file checkpoints",
              [RAW_TRACES_DDL, DEAD_LETTERS_DDL, SESSION_EVENTS_DDL, SESSIONS_VIEW_DDL, FILE_CHECKPOINTS_DDL]),
    # the analytics views live with their queries (stream/store/views.py) and follow the tables
    *(Migration(version, "analytics views", statements) for version, statements in VIEW_MIGRATIONS),
    # the sink's fast path: whole chunks in, rows extracted by ClickHouse (stream/store/extraction.py)
    Migration(3, "raw_chunks and the view that extracts claude_raw_traces from them",
              [RAW_CHUNKS_DDL, raw_chunks_view_ddl(3)]),
    # issue 12: subagent echoes counted, usage details of current Claude Code (docs/analytics.md)
    Migration(4, "usage details and subagent echoes: new columns, extraction view v4, token_usage over "
                 "token_usage_groups", [ADD_V4_COLUMNS, raw_chunks_view_ddl(4), f"DROP VIEW IF EXISTS {RAW_CHUNKS_VIEW_V3}",
                                        *TOKEN_USAGE_V4_STATEMENTS]),
    Migration(5, OTEL_MIGRATION_NAME, OTEL_STATEMENTS),  # Claude Code's OpenTelemetry (otel_schema.py)
]


def _applied(ch: ClickHouse) -> dict[int, Any]:
    ch.command(SCHEMA_MIGRATIONS_DDL)
    return {int(v): at for v, at in ch.query_rows(
        "SELECT version, max(applied_at) FROM schema_migrations GROUP BY version")}


def migrate(ch: ClickHouse, migrations: list[Migration] | None = None) -> list[int]:
    """Apply every pending migration in version order; returns the versions applied by this call
    (empty when the schema was already current)."""
    done = _applied(ch)
    applied: list[int] = []
    for m in sorted(migrations if migrations is not None else MIGRATIONS, key=lambda m: m.version):
        if m.version in done:
            continue
        for stmt in m.statements:
            ch.command(stmt)
        ch.insert("schema_migrations", [(m.version, m.name, datetime.now(UTC))],
                  ["version", "name", "applied_at"])
        applied.append(m.version)
    return applied


def status(ch: ClickHouse, migrations: list[Migration] | None = None) -> list[dict[str, Any]]:
    """Every known migration (and any applied one this code does not know) with whether and when it ran."""
    done = _applied(ch)
    known = {m.version: m for m in (migrations if migrations is not None else MIGRATIONS)}
    out: list[dict[str, Any]] = []
    for version in sorted(set(known) | set(done)):
        m = known.get(version)
        out.append({
            "version": version,
            "name": m.name if m else "(unknown to this ccstream version)",
            "applied": version in done,
            "applied_at": done.get(version),
        })
    return out
