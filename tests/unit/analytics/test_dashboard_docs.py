"""stream.analytics.dashboard and stream.analytics.grafana, the pure parts: query-string filters, the
cache-read share, running cost, Grafana's macro expansion and the dashboard's SQL placeholders."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from stream.analytics import dashboard as dash
from stream.analytics import grafana
from stream.analytics.pricing import load_pricing
from stream.analytics.queries import Filters

UTC = dt.UTC


def test_filters_from_a_query_string() -> None:
    assert dash.filters_from({}) == Filters()
    assert dash.filters_from({"since": "20260110", "until": "2026-02-10", "project": " cli "}) == Filters(
        since=dt.date(2026, 1, 10), until=dt.date(2026, 2, 10), project="cli")
    assert dash.filters_from({"since": "", "project": ""}) == Filters()


@pytest.mark.parametrize("params,message", [
    ({"since": "last week"}, "since='last week' is not a day"),
    ({"until": "2026-13-01"}, "until='2026-13-01' is not a day"),
    ({"since": "2026-02-02", "until": "2026-02-01"}, "since 2026-02-02 is after until 2026-02-01"),
])
def test_bad_filters_say_which_value_and_why(params: dict[str, str], message: str) -> None:
    with pytest.raises(dash.BadRequest, match=re.escape(message)):
        dash.filters_from(params)


def test_cache_read_share_is_of_the_input_side() -> None:
    assert dash.cache_read_share({"input_tokens": 10, "cache_creation_input_tokens": 30,
                                  "cache_read_input_tokens": 60, "output_tokens": 1000}) == 0.6
    assert dash.cache_read_share({"input_tokens": 0}) is None


def test_cumulative_cost_and_tokens() -> None:
    points = [{"timestamp": "t1", "cost_usd": 0.5, "tokens": 10, "agent_id": ""},
              {"timestamp": "t2", "cost_usd": 0.25, "tokens": 5, "agent_id": "a1"},
              {"timestamp": "t3", "cost_usd": None, "tokens": 0, "agent_id": None}]
    assert dash.cumulative(points) == [
        {"timestamp": "t1", "agent_id": "", "cost_usd": 0.5, "tokens": 10},
        {"timestamp": "t2", "agent_id": "a1", "cost_usd": 0.75, "tokens": 15},
        {"timestamp": "t3", "agent_id": "", "cost_usd": 0.75, "tokens": 15}]


def test_expand_follows_the_data_source_macros() -> None:
    start = dt.datetime(2026, 1, 10, 8, 0, tzinfo=UTC)
    end = dt.datetime(2026, 2, 10, 23, 59, 59, tzinfo=UTC)
    f, t = int(start.timestamp()), int(end.timestamp())
    sql = ("SELECT $__timeInterval(ts) AS time FROM x WHERE $__timeFilter(ts) AND $__dateFilter(day) "
           "AND a >= $__fromTime AND a <= $__toTime AND p = ${project:sqlstring} AND n = $__interval_s")
    assert grafana.expand(sql, start, end, {"project": "it's"}, interval_s=3600) == (
        f"SELECT toStartOfInterval(toDateTime(ts), INTERVAL 3600 second) AS time FROM x WHERE "
        f"ts >= toDateTime({f}) AND ts <= toDateTime({t}) AND day >= toDate('2026-01-10') AND "
        f"day <= toDate('2026-02-10') AND a >= toDateTime({f}) AND a <= toDateTime({t}) AND p = 'it\\'s' "
        f"AND n = 3600")


def test_expand_refuses_what_it_cannot_expand() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(KeyError, match="project"):
        grafana.expand("SELECT ${project:sqlstring}", now, now, {})
    with pytest.raises(ValueError, match="unexpanded"):
        grafana.expand("SELECT $__unknownMacro(x)", now, now, {})


def test_every_panel_uses_only_the_range_and_the_project_variable() -> None:
    board = grafana.dashboard(load_pricing(env={}))
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len(panels) >= 15
    for p in panels:
        sql = p["targets"][0]["rawSql"]
        assert not re.search(r"(?<!\$)\{\w+:\w+\}", sql), p["title"]  # no ClickHouse parameter left
        assert set(re.findall(r"\$\{(\w+)", sql)) <= {"project"}, p["title"]
    names = {v["name"] for v in board["templating"]["list"]}
    assert names == {"project"}
    json.dumps(board)  # serialisable as is
    with pytest.raises(ValueError, match="no Grafana equivalent"):
        grafana.grafana_sql("SELECT 1 WHERE x = {session:String}")


def test_tool_timings_take_the_first_use_and_the_first_result() -> None:
    from types import SimpleNamespace as NS

    def use(i: str) -> NS:
        return NS(tool_id=i)

    def res(i: str, err: bool) -> NS:
        return NS(tool_id=i, is_error=err)

    turns = [
        NS(type="assistant", timestamp="2026-01-01T00:00:01.000Z", tool_uses=[use("a"), use("b")], tool_results=[]),
        NS(type="assistant", timestamp="2026-01-01T00:00:00.500Z", tool_uses=[use("a")], tool_results=[]),
        NS(type="user", timestamp="2026-01-01T00:00:03.250Z", tool_uses=[], tool_results=[res("a", False)]),
        NS(type="user", timestamp="2026-01-01T00:00:02.000Z", tool_uses=[], tool_results=[res("a", True)]),
        NS(type="user", timestamp="", tool_uses=[], tool_results=[res("b", True)]),  # no time: not counted
    ]
    assert dash.tool_timings(turns) == {
        "a": {"has_result": True, "duration_ms": 1500, "is_error": True},
        "b": {"has_result": False, "duration_ms": None, "is_error": False}}
