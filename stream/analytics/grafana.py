"""The Grafana dashboard (grafana/dashboards/ccstream.json) built from the analytics queries, and the macro
expansion of Grafana's ClickHouse data source, so a test can run every panel's SQL against chDB.

Each panel's SQL is the SQL of the page's figure (stream.analytics.queries / stream.analytics.dashboard)
with its ``{since:Date}``, ``{until:Date}`` and ``{project:String}`` parameters replaced by the dashboard's
time range and ``project`` variable; the cost expression comes from the price table, so the JSON is
regenerated when prices change: ``python -m stream.analytics.grafana > grafana/dashboards/ccstream.json``
(a test fails while the committed file differs from what this builds).

:func:`expand` does what grafana-clickhouse-datasource does before it sends a query (pkg/macros/macros.go):
``$__fromTime``/``$__toTime`` → ``toDateTime(<unix s>)``, ``$__timeFilter(c)`` → ``c >= toDateTime(from) AND
c <= toDateTime(to)``, ``$__dateFilter(c)`` → ``c >= toDate('YYYY-MM-DD') AND c <= toDate(...)``,
``$__timeInterval(c)`` → ``toStartOfInterval(toDateTime(c), INTERVAL n second)``, ``$__interval_s`` → n, and
Grafana's own ``${name:sqlstring}`` → the variable as a quoted SQL string.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections.abc import Mapping
from typing import Any

from stream.analytics import dashboard as dash
from stream.analytics import queries as q
from stream.analytics.pricing import PriceTable

DATASOURCE = {"type": "grafana-clickhouse-datasource", "uid": "ccstream-clickhouse"}
# any values: only their placeholders are kept, and replaced by the dashboard's range and variable
_RANGE = q.Filters(since=dt.date(2000, 1, 1), until=dt.date(2000, 1, 1), project="x")
# a UTC day from Grafana's range, as the CLI's --since/--until are UTC days
_GRAFANA_PARAMS = {"{since:Date}": "toDate($__fromTime, 'UTC')", "{until:Date}": "toDate($__toTime, 'UTC')",
                   "{project:String}": "${project:sqlstring}"}


def grafana_sql(sql: str) -> str:
    """An analytics query's parameters → the dashboard's time range and project variable."""
    for param, macro in _GRAFANA_PARAMS.items():
        sql = sql.replace(param, macro)
    if re.search(r"(?<!\$)\{[a-z_]+:[A-Za-z0-9()]+\}", sql):
        raise ValueError(f"a query parameter has no Grafana equivalent: {sql}")
    return "\n".join(line.rstrip() for line in sql.strip().splitlines())


# ---- panels -----------------------------------------------------------------------------------------------


def _target(sql: str, query_type: str = "table") -> dict[str, Any]:
    return {"refId": "A", "datasource": DATASOURCE, "editorType": "sql", "queryType": query_type,
            "format": 1 if query_type == "table" else 0, "rawSql": sql}


def _panel(pid: int, title: str, kind: str, sql: str, grid: tuple[int, int, int, int], unit: str = "short",
           query_type: str = "table", description: str = "") -> dict[str, Any]:
    x, y, w, h = grid
    panel: dict[str, Any] = {
        "id": pid, "type": kind, "title": title, "description": description, "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [_target(sql, query_type)],
    }
    if kind == "stat":
        panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                            "colorMode": "value", "graphMode": "none", "textMode": "value"}
    if kind == "barchart":
        panel["options"] = {"stacking": "normal", "xField": "time", "legend": {"showLegend": True}}
    return panel


def _captured_sql(run: Any) -> str:
    """The SQL an analytics function sends (it is not exposed otherwise): run it on a recording query."""
    seen: list[str] = []

    def record(sql: str, params: dict[str, Any] | None) -> list[dict[str, Any]]:
        seen.append(sql)
        return []

    run(record)
    if len(seen) != 1:
        raise AssertionError(f"expected one query, got {len(seen)}")
    return seen[0]


def _totals_sql(pricing: PriceTable, column: str) -> str:
    inner = _captured_sql(lambda query: q.token_totals(query, _RANGE, pricing))
    return grafana_sql(f"SELECT {column} FROM ({inner})")


def _tokens_sql(pricing: PriceTable, by: list[str], columns: str) -> str:
    return grafana_sql(f"SELECT {columns} FROM ({q.tokens_sql(by, _RANGE, pricing)})")


def _sessions_sql(pricing: PriceTable, columns: str, where: str = "1") -> str:
    return grafana_sql(f"SELECT {columns} FROM ({q.sessions_sql(_RANGE, pricing)}) WHERE {where}")


TOKEN_COLUMNS = ("responses, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, "
                 "total_tokens, cost_usd")


def panels(pricing: PriceTable) -> list[dict[str, Any]]:
    """The page's figures as Grafana panels (the same SQL, the same numbers)."""
    out: list[dict[str, Any]] = []

    def add(title: str, kind: str, sql: str, grid: tuple[int, int, int, int], **kw: Any) -> None:
        out.append(_panel(len(out) + 1, title, kind, sql, grid, **kw))

    def row(title: str, y: int) -> None:
        out.append({"id": len(out) + 1, "type": "row", "title": title, "collapsed": False,
                    "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []})

    row("Spend", 0)
    add("Cost", "stat", _totals_sql(pricing, "cost_usd"), (0, 1, 4, 4), unit="currencyUSD")
    add("Tokens", "stat", _totals_sql(pricing, "total_tokens"), (4, 1, 4, 4))
    add("Cache-read share", "stat", _totals_sql(
        pricing, "round(if(input_tokens + cache_creation_input_tokens + cache_read_input_tokens = 0, NULL, "
                 "cache_read_input_tokens / (input_tokens + cache_creation_input_tokens + cache_read_input_tokens)),"
                 " 6) AS cache_read_share"), (8, 1, 4, 4), unit="percentunit")
    add("API responses", "stat", _totals_sql(pricing, "responses"), (12, 1, 4, 4))
    add("Sessions", "stat", _sessions_sql(pricing, "count() AS sessions"), (16, 1, 4, 4))
    add("Sessions with tool errors", "stat", _sessions_sql(pricing, "count() AS sessions", "tool_errors > 0"),
        (20, 1, 4, 4))
    add("Cost per day, by model", "barchart",
        _tokens_sql(pricing, ["day", "model"], "toDateTime(day, 'UTC') AS time, model, cost_usd") + "\nORDER BY time",
        (0, 5, 24, 9), unit="currencyUSD", query_type="timeSeries")
    add("By model", "table", _tokens_sql(pricing, ["model"], f"model, {TOKEN_COLUMNS}"), (0, 14, 12, 8))
    add("By host and user", "table", _tokens_sql(pricing, ["host", "user"], f"host, user, {TOKEN_COLUMNS}"),
        (12, 14, 12, 8))
    add("By project", "table", _tokens_sql(pricing, ["project"], f"project, models, {TOKEN_COLUMNS}"),
        (0, 22, 24, 9))
    row("Sessions", 31)
    add("Sessions in range", "table", _sessions_sql(
        pricing, "started_at, session_id, project, host, models, duration_s, turns, tool_calls, tool_errors, "
                 "api_errors, subagents, compactions, total_tokens, cost_usd"), (0, 32, 24, 12))
    row("Tools", 44)
    add("Tools", "table", grafana_sql(q.tools_sql(_RANGE)), (0, 45, 24, 10))
    add("MCP servers", "table", grafana_sql(dash.mcp_servers_sql(_RANGE)), (0, 55, 24, 5))
    add("Failing calls (newest first)", "table", grafana_sql(dash.calls_sql(_RANGE, failing=True, limit=25)),
        (0, 60, 12, 10))
    add("Slowest calls", "table", grafana_sql(dash.calls_sql(_RANGE, failing=False, limit=25)), (12, 60, 12, 10))
    row("Pipeline", 70)
    add("Stored lines", "stat", "SELECT uniqExact(file_id, incarnation, byte_offset) AS rows FROM claude_raw_traces",
        (0, 71, 6, 4))
    add("Dead letters", "stat", "SELECT uniqExact(file_id, incarnation, byte_offset) AS n FROM dead_letters",
        (6, 71, 6, 4))
    add("Last insert", "stat", "SELECT max(ingested_at) AS last_insert FROM claude_raw_traces", (12, 71, 6, 4),
        unit="dateTimeAsIso")
    add("Models without a price", "table",
        "SELECT DISTINCT model FROM token_usage WHERE model NOT IN ('', '<synthetic>') AND "
        f"{pricing.sql_price_index('model')} = 0 ORDER BY model", (18, 71, 6, 4))
    return out


def dashboard(pricing: PriceTable) -> dict[str, Any]:
    return {
        "uid": "ccstream-overview", "title": "ccstream: spend, sessions, tools", "schemaVersion": 39,
        "version": 1, "editable": True, "tags": ["ccstream", "claude-code"], "timezone": "utc",
        "time": {"from": "now-7d", "to": "now"}, "refresh": "30s",
        "description": f"Built by stream/analytics/grafana.py from the analytics queries; prices of {pricing.date}. "
                       "The same figures as the worker's dashboard page and `ccstream tokens|sessions --json`.",
        "templating": {"list": [{"name": "project", "type": "textbox", "label": "project contains", "query": "",
                                 "current": {"text": "", "value": ""}, "hide": 0}]},
        "panels": panels(pricing),
    }


def render(pricing: PriceTable) -> str:
    return json.dumps(dashboard(pricing), indent=2, ensure_ascii=False) + "\n"


# ---- macro expansion (what the data source does before it sends the query) ---------------------------------


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def expand(sql: str, start: dt.datetime, end: dt.datetime, variables: Mapping[str, str] | None = None,
           interval_s: int = 86_400) -> str:
    """Pure: Grafana's macros and ``${name:sqlstring}`` variables → concrete ClickHouse SQL."""
    f, t = int(start.timestamp()), int(end.timestamp())
    fday, tday = start.astimezone(dt.UTC).date().isoformat(), end.astimezone(dt.UTC).date().isoformat()
    variables = variables or {}

    def var(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in variables:
            raise KeyError(f"dashboard variable ${name} has no value")
        return _sql_string(variables[name])

    sql = re.sub(r"\$\{(\w+):sqlstring\}", var, sql)
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)",
                 lambda m: f"{m[1]} >= toDateTime({f}) AND {m[1]} <= toDateTime({t})", sql)
    sql = re.sub(r"\$__dateFilter\(([^)]+)\)",
                 lambda m: f"{m[1]} >= toDate('{fday}') AND {m[1]} <= toDate('{tday}')", sql)
    sql = re.sub(r"\$__timeInterval\(([^)]+)\)",
                 lambda m: f"toStartOfInterval(toDateTime({m[1]}), INTERVAL {max(interval_s, 1)} second)", sql)
    sql = sql.replace("$__fromTime", f"toDateTime({f})").replace("$__toTime", f"toDateTime({t})")
    sql = sql.replace("$__interval_s", str(max(interval_s, 1)))
    if "$__" in sql or re.search(r"\$\{?\w", sql):
        raise ValueError(f"a macro or variable is left unexpanded: {sql}")
    return sql


def main() -> int:
    from stream.analytics.pricing import load_pricing

    sys.stdout.write(render(load_pricing(env={})))  # the bundled prices: the file is the same on every machine
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
