"""The Grafana dashboard cannot drift from the schema: every panel's SQL, macros expanded the way
grafana-clickhouse-datasource expands them (stream.analytics.grafana.expand), runs against chDB holding the
fixture corpus, and gives the same numbers as the analytics queries behind the page and the CLI.

Fed: all 63 corpus files through the sink's writer (tests/integration/test_analytics.py: load) into a
database of the shared chDB path; views from the migrations.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stream.analytics import dashboard as dash
from stream.analytics import grafana
from stream.analytics import queries as q
from stream.analytics.pricing import load_pricing
from stream.store.client import ClickHouse, connect
from stream.store.schema import MIGRATIONS, migrate
from tests.integration.test_analytics import load

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "grafana" / "dashboards" / "ccstream.json"
DATASOURCE_YAML = REPO / "grafana" / "provisioning" / "datasources" / "clickhouse.yml"
UTC = dt.UTC
# (Grafana's time range, its `project` variable) ↔ the same range as the CLI's filters
RANGES = [
    (dt.datetime(2000, 1, 1, tzinfo=UTC), dt.datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC), "", q.Filters()),
    (dt.datetime(2026, 1, 10, tzinfo=UTC), dt.datetime(2026, 2, 10, 23, 59, 59, tzinfo=UTC), "entireio",
     q.Filters(since=dt.date(2026, 1, 10), until=dt.date(2026, 2, 10), project="entireio")),
    (dt.datetime(2026, 2, 1, 8, 30, tzinfo=UTC), dt.datetime(2026, 2, 12, 17, 0, tzinfo=UTC), "spotter",
     q.Filters(since=dt.date(2026, 2, 1), until=dt.date(2026, 2, 12), project="spotter")),
]


@pytest.fixture(scope="module")
def ch(chdb_dir: Path, corpus: Path) -> Iterator[ClickHouse]:
    client = connect(f"chdb://{chdb_dir}?database=t_grafana_{uuid.uuid4().hex[:6]}")
    migrate(client, MIGRATIONS)
    assert load(client, corpus) == 18_918
    yield client


@pytest.fixture(scope="module")
def pricing() -> Any:
    return load_pricing(env={})


@pytest.fixture(scope="module")
def board() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def _panels(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len({p["title"] for p in panels}) == len(panels), "panel titles are unique"
    return {p["title"]: p for p in panels}


def test_the_committed_dashboard_is_what_the_builder_makes(board: dict[str, Any], pricing: Any) -> None:
    assert DASHBOARD.read_text() == grafana.render(pricing), (
        "grafana/dashboards/ccstream.json is stale: python -m stream.analytics.grafana > "
        "grafana/dashboards/ccstream.json")
    uid = re.search(r"^\s*uid:\s*(\S+)", DATASOURCE_YAML.read_text(), re.M)
    assert uid is not None
    for p in _panels(board).values():
        assert p["datasource"]["uid"] == uid.group(1) and p["targets"], p["title"]
        assert all(t["datasource"]["type"] == "grafana-clickhouse-datasource" for t in p["targets"])


def _run(ch: ClickHouse, panel: dict[str, Any], start: dt.datetime, end: dt.datetime,
         project: str) -> list[dict[str, Any]]:
    sql = grafana.expand(panel["targets"][0]["rawSql"], start, end, {"project": project})
    return ch.query_dicts(sql)


def _one(rows: list[dict[str, Any]]) -> Any:
    assert len(rows) == 1, rows
    return next(iter(rows[0].values()))


@pytest.mark.parametrize("start,end,project,filters", RANGES, ids=["all", "entireio-jan", "spotter-feb"])
def test_every_panel_runs_and_equals_the_analytics_queries(
        ch: ClickHouse, pricing: Any, board: dict[str, Any], start: dt.datetime, end: dt.datetime, project: str,
        filters: q.Filters) -> None:
    panels = _panels(board)
    got = {title: _run(ch, p, start, end, project) for title, p in panels.items()}  # every one runs
    query = ch.query_dicts
    totals = q.token_totals(query, filters, pricing)
    assert totals["responses"] > 0, "the range holds usage"
    assert _one(got["Cost"]) == totals["cost_usd"]
    assert _one(got["Tokens"]) == totals["total_tokens"]
    assert _one(got["API responses"]) == totals["responses"]
    assert _one(got["Cache-read share"]) == pytest.approx(dash.cache_read_share(totals), abs=1e-6)
    sessions = q.sessions(query, filters, pricing)
    assert _one(got["Sessions"]) == len(sessions)
    assert _one(got["Sessions with tool errors"]) == sum(1 for s in sessions if s["tool_errors"] > 0)
    assert [(r["session_id"], r["cost_usd"], r["tool_errors"]) for r in got["Sessions in range"]] == [
        (s["session_id"], s["cost_usd"], s["tool_errors"]) for s in sessions]

    by_day = q.tokens(query, ["day", "model"], filters, pricing)
    assert {(r["time"].date(), r["model"]): r["cost_usd"] for r in got["Cost per day, by model"]} == {
        (dt.date.fromisoformat(str(r["day"])), r["model"]): r["cost_usd"] for r in by_day}
    for title, by in (("By model", ["model"]), ("By host and user", ["host", "user"]), ("By project", ["project"])):
        want = q.tokens(query, by, filters, pricing)
        cols = [*by, *[c.strip() for c in grafana.TOKEN_COLUMNS.split(",")]]
        assert [{c: r[c] for c in cols} for r in got[title]] == [{c: r[c] for c in cols} for r in want], title

    tools = dash.tools(query, filters)
    assert [(r["tool_name"], r["calls"], r["errors"], r["p95_ms"]) for r in got["Tools"]] == [
        (r["tool_name"], r["calls"], r["errors"], r["p95_ms"]) for r in q.tools(query, filters)]
    assert [r["tool_use_id"] for r in got["Failing calls (newest first)"]] == [
        r["tool_use_id"] for r in tools["failing"]]
    assert [r["tool_use_id"] for r in got["Slowest calls"]] == [r["tool_use_id"] for r in tools["slowest"]]
    assert [r["server"] for r in got["MCP servers"]] == [r["server"] for r in tools["mcp_servers"]]

    assert _one(got["Stored lines"]) == 18_918
    assert _one(got["Dead letters"]) == 0
    assert _one(got["Last insert"]) is not None
    assert [r["model"] for r in got["Models without a price"]] == dash.unknown_price_models(query, pricing)
