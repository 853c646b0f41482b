"""Migrations and the client on real chDB.

chDB opens ONE data path per process at a time: while any client holds path A, opening path B fails with
"EmbeddedServer already initialized with path A, cannot connect with different path B" (measured with chdb 4.4
and clickhouse-connect 1.12: once every client is closed another path can be opened, but a test cannot know
that no other client is open). So every test here uses the session's shared path with a database of its own
(`ch_dsn`), which `connect` creates and makes the default for every statement.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.store.client import ClickHouse, ClickHouseRejected, ClickHouseUnavailable, connect
from stream.store.schema import MIGRATIONS, migrate, status

pytestmark = pytest.mark.integration

TABLES = {"claude_raw_traces", "dead_letters", "session_events", "sessions", "file_checkpoints",
          "schema_migrations"}


@pytest.fixture()
def ch(ch_dsn: str) -> Iterator[ClickHouse]:
    client = connect(ch_dsn)
    yield client
    client.close()


def test_migrations_apply_once_and_are_idempotent(ch: ClickHouse) -> None:
    versions = [m.version for m in MIGRATIONS]
    assert versions[0] == 1 and versions == sorted(versions)
    assert migrate(ch) == versions
    assert migrate(ch) == []  # second run: nothing pending, nothing fails
    tables = {r[0] for r in ch.query_rows("SELECT name FROM system.tables WHERE database = currentDatabase()")}
    assert tables >= TABLES
    assert ch.query_rows("SELECT version, count() FROM schema_migrations GROUP BY version ORDER BY version") == [
        (v, 1) for v in versions]
    rows = status(ch)
    assert [(r["version"], r["applied"]) for r in rows] == [(v, True) for v in versions]
    assert all(r["applied_at"] is not None for r in rows)


def test_status_before_migrating_lists_pending_versions(ch: ClickHouse) -> None:
    rows = status(ch)
    assert [(r["version"], r["applied"], r["applied_at"]) for r in rows] == [
        (m.version, False, None) for m in MIGRATIONS]


def test_an_interrupted_migration_is_finished_by_the_next_run(ch: ClickHouse) -> None:
    # statements 1 and 2 ran, then the process died before recording the version
    for stmt in MIGRATIONS[0].statements[:2]:
        ch.command(stmt)
    assert migrate(ch) == [m.version for m in MIGRATIONS]
    tables = {r[0] for r in ch.query_rows("SELECT name FROM system.tables WHERE database = currentDatabase()")}
    assert tables >= TABLES


def test_raw_traces_key_ends_with_the_identity(ch: ClickHouse) -> None:
    migrate(ch)
    (sorting_key, engine, partition_key), = ch.query_rows(
        "SELECT sorting_key, engine_full, partition_key FROM system.tables "
        "WHERE database = currentDatabase() AND name = 'claude_raw_traces'")
    assert sorting_key == "session_id, timestamp, file_id, incarnation, byte_offset"
    assert partition_key == "toYYYYMM(timestamp)"
    assert "ReplacingMergeTree(ingested_at)" in engine and "non_replicated_deduplication_window = 10000" in engine
    codec, = ch.query_rows("SELECT compression_codec FROM system.columns WHERE database = currentDatabase() "
                           "AND table = 'claude_raw_traces' AND name = 'raw'")[0]
    assert codec == "CODEC(ZSTD(3))"


def test_sessions_view_summarises_events(ch: ClickHouse) -> None:
    migrate(ch)
    cols = ["event_id", "hook_event_name", "session_id", "transcript_path", "cwd", "host", "user",
            "received_at", "source", "reason", "agent_id", "payload", "ingested_at"]
    ch.insert("session_events", [
        ("e1", "SessionStart", "s1", "/t/s1.jsonl", "/w", "h", "u", 1000, "startup", "", "", "{}", 5),
        ("e2", "Stop", "s1", "/t/s1.jsonl", "/w", "h", "u", 2000, "", "", "", "{}", 5),
        ("e3", "SessionEnd", "s1", "/t/s1.jsonl", "/w2", "h", "u", 3000, "", "logout", "", "{}", 5),
        ("e3", "SessionEnd", "s1", "/t/s1.jsonl", "/w2", "h", "u", 3000, "", "logout", "", "{}", 6),  # repeat
        ("e4", "UserPromptSubmit", "s2", "", "/x", "h2", "u2", 4000, "", "", "", "{}", 5),
    ], cols)
    rows = ch.query_dicts("SELECT session_id, toUnixTimestamp64Milli(first_start) AS fs, "
                          "toUnixTimestamp64Milli(last_end) AS le, source, reason, host, user, cwd, path, events "
                          "FROM sessions ORDER BY session_id")
    assert rows == [
        {"session_id": "s1", "fs": 1000, "le": 3000, "source": "startup", "reason": "logout", "host": "h",
         "user": "u", "cwd": "/w2", "path": "/t/s1.jsonl", "events": 3},
        {"session_id": "s2", "fs": None, "le": None, "source": "", "reason": "", "host": "h2", "user": "u2",
         "cwd": "/x", "path": "", "events": 1},
    ]


def test_client_api_and_error_kinds(ch: ClickHouse, ch_dsn: str) -> None:
    assert ch.is_embedded and ch.dsn == ch_dsn
    assert ch.query_rows("SELECT currentDatabase()") == [(ch_dsn.rsplit("=", 1)[1],)]
    ch.command("CREATE TABLE t (k UInt32, v String) ENGINE = MergeTree ORDER BY k")
    ch.insert("t", [(1, "a"), (2, "b")], ["k", "v"])
    ch.insert("t", [[3, "c"]], ["k", "v"])
    assert ch.query_rows("SELECT k, v FROM t WHERE k >= {m:UInt32} ORDER BY k", {"m": 2}) == [(2, "b"), (3, "c")]
    assert ch.query_dicts("SELECT k, v FROM t ORDER BY k LIMIT 1") == [{"k": 1, "v": "a"}]
    assert ch.query_formatted("SELECT k, v FROM t ORDER BY k", "CSVWithNames") == b'"k","v"\n1,"a"\n2,"b"\n3,"c"\n'
    assert ch.query_formatted("SELECT k FROM t WHERE k = {k:UInt32}", "JSONEachRow", {"k": 3}) == b'{"k":3}\n'
    with pytest.raises(ClickHouseRejected):
        ch.query_rows("SELECT no_such_column FROM t")
    with pytest.raises(ClickHouseRejected):
        ch.insert("t", [("not a number", "x")], ["k", "v"])
    # a second client on the same path and database sees the same data
    other = connect(ch_dsn)
    try:
        assert other.query_rows("SELECT count() FROM t") == [(3,)]
    finally:
        other.close()
    ch.close()
    with pytest.raises(ClickHouseUnavailable):
        ch.query_rows("SELECT 1")


def test_unreachable_server_and_a_second_chdb_path_are_unavailable(ch: ClickHouse, tmp_path: Path) -> None:
    from stream.stack.servers import free_port

    with pytest.raises(ClickHouseUnavailable):
        connect(f"http://default:pw@127.0.0.1:{free_port()}/db")
    # `ch` holds the shared path open: another path cannot be opened in this process meanwhile
    with pytest.raises(ClickHouseUnavailable, match="already initialized"):
        connect(f"chdb://{tmp_path}/another-path")
    with pytest.raises(ValueError):
        connect("mysql://x")
