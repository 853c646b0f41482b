"""`query_guarded` on a real chDB: the read-only settings are SET on the session once and hold for every later
query, every statement is checked, and a verdict is remembered only for the same text and parameters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from stream.store.client import ClickHouse, ClickHouseError, QueryLimits, UnsafeQuery, connect

LIMITS = QueryLimits(max_seconds=30, max_result_rows=50, max_result_bytes=10**6)


@pytest.fixture()
def ch(ch_dsn: str) -> Iterator[ClickHouse]:
    writer = connect(ch_dsn)
    writer.command("CREATE TABLE t (x UInt64) ENGINE = MergeTree ORDER BY x")
    writer.command("INSERT INTO t SELECT number FROM numbers(100)")
    writer.close()
    client = connect(ch_dsn)
    yield client
    client.close()


class Checks:
    """Counts the guard's own calls to ClickHouse (its formatter and its parser) on one client."""

    def __init__(self, ch: ClickHouse, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = 0
        real = ch.query_formatted

        def spy(sql: str, fmt: str, parameters: dict[str, Any] | None = None,
                settings: dict[str, Any] | None = None) -> bytes:
            if sql.startswith(("SELECT formatQuerySingleLine(", "EXPLAIN AST ")):
                self.n += 1
            return real(sql, fmt, parameters, settings)

        monkeypatch.setattr(ch, "query_formatted", spy)


def test_the_limits_and_readonly_hold_on_every_query_of_the_session(ch: ClickHouse) -> None:
    assert ch.query_guarded("SELECT count() AS n FROM t", "JSONEachRow", limits=LIMITS) == b'{"n":100}\n'
    for _ in range(2):  # the second time from the remembered verdict: still refused by ClickHouse
        with pytest.raises(ClickHouseError, match="TOO_MANY_ROWS"):
            ch.query_guarded("SELECT x FROM t", "JSONEachRow", limits=LIMITS)
        with pytest.raises(ClickHouseError, match="readonly"):
            ch.query_guarded("SELECT 1 SETTINGS readonly = 0", "JSONEachRow", limits=LIMITS)
        with pytest.raises(ClickHouseError, match="readonly"):
            ch.query_guarded("SELECT 1 SETTINGS max_result_rows = 1000", "JSONEachRow", limits=LIMITS)
        with pytest.raises(ClickHouseError, match="readonly"):
            ch.query_guarded("INSERT INTO t SELECT 1", "JSONEachRow", limits=LIMITS)
    settings = dict(ch.query_rows("SELECT name, value FROM system.settings WHERE name IN "
                                  "('readonly', 'max_result_rows', 'max_execution_time')"))
    assert settings == {"readonly": "1", "max_result_rows": "50", "max_execution_time": "30"}
    with pytest.raises(ClickHouseError, match="readonly"):  # the session itself is read-only, not only the guard
        ch.command("INSERT INTO t SELECT 1")
    with pytest.raises(ClickHouseError, match="readonly"):  # other limits cannot be set on it afterwards
        ch.query_guarded("SELECT 1", "JSONEachRow", limits=QueryLimits(max_seconds=999))
    assert ch.query_rows("SELECT count() FROM t") == [(100,)]


def test_refusals_are_the_same_the_second_time(ch: ClickHouse, monkeypatch: pytest.MonkeyPatch) -> None:
    checks = Checks(ch, monkeypatch)
    for sql in ("SELECT file('/etc/hostname')", "SET readonly = 0", "SELECT 1; DROP TABLE t",
                "SELECT 1 INTO OUTFILE '/tmp/ccstream-guard-test'"):
        for _ in range(2):
            with pytest.raises(ClickHouseError):
                ch.query_guarded(sql, "JSONEachRow", limits=LIMITS)
    assert ch.query_rows("SELECT count() FROM t") == [(100,)]
    assert checks.n > 0


def test_a_verdict_is_remembered_for_the_same_text_and_parameters_only(ch: ClickHouse,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    checks = Checks(ch, monkeypatch)
    sql = "SELECT count() AS n FROM t WHERE x < {k:UInt64}"
    assert ch.query_guarded(sql, "JSONEachRow", {"k": 10}, limits=LIMITS) == b'{"n":10}\n'
    assert checks.n == 2  # formatted, then explained
    assert ch.query_guarded(sql, "JSONEachRow", {"k": 10}, limits=LIMITS) == b'{"n":10}\n'
    assert checks.n == 2  # the same question: checked already
    # EXPLAIN AST substitutes parameters (an Identifier parameter names a table): new values, a new check
    assert ch.query_guarded(sql, "JSONEachRow", {"k": 20}, limits=LIMITS) == b'{"n":20}\n'
    assert checks.n == 4
    assert ch.query_guarded(sql + " ", "JSONEachRow", {"k": 10}, limits=LIMITS) == b'{"n":10}\n'
    assert checks.n == 6  # other text, checked again
    assert ch.query_guarded("SELECT count() AS n FROM {tab:Identifier}", "JSONEachRow", {"tab": "t"},
                            limits=LIMITS) == b'{"n":100}\n'
    with pytest.raises(ClickHouseError):
        ch.query_guarded("SELECT count() AS n FROM {tab:Identifier}", "JSONEachRow", {"tab": "no_such_table"},
                         limits=LIMITS)
    assert checks.n == 10


def test_a_write_client_is_not_left_read_only(ch_dsn: str) -> None:
    ch = connect(ch_dsn)
    try:
        ch.query_guarded("CREATE TABLE w (x UInt8) ENGINE = MergeTree ORDER BY x", "JSONEachRow", write=True,
                         limits=LIMITS)
        ch.query_guarded("INSERT INTO w SELECT 1", "JSONEachRow", write=True, limits=LIMITS)
        ch.command("INSERT INTO w SELECT 2")
        assert ch.query_rows("SELECT sum(x) FROM w") == [(3,)]
        with pytest.raises(UnsafeQuery):
            ch.query_guarded("INSERT INTO w VALUES (3)", "JSONEachRow", write=True, limits=LIMITS)
    finally:
        ch.close()
