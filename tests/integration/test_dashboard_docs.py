"""stream.analytics.dashboard over the fixture corpus in chDB: a session's document agrees with the views and
with `ccstream show`, for every session of the corpus.

Fed: all 63 corpus files through the sink's writer (tests/integration/test_analytics.py: load).
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stream.analytics import dashboard as dash
from stream.analytics import queries as q
from stream.analytics.pricing import load_pricing
from stream.cli import analytics as cli
from stream.store.client import ClickHouse, connect
from stream.store.schema import MIGRATIONS, migrate
from tests.integration.test_analytics import load

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ch(chdb_dir: Path, corpus: Path) -> Iterator[ClickHouse]:
    client = connect(f"chdb://{chdb_dir}?database=t_dashdocs_{uuid.uuid4().hex[:6]}")
    migrate(client, MIGRATIONS)
    assert load(client, corpus) == 18_918
    yield client


def test_every_session_document_agrees_with_the_views_and_show(ch: ClickHouse) -> None:
    pricing = load_pricing(env={})
    sessions = q.sessions(ch.query_dicts, q.Filters(), pricing)
    assert len(sessions) > 40
    checked_calls = 0
    for s in sessions:
        sid = s["session_id"]
        doc = dash.session(ch.query_dicts, sid, pricing)
        assert doc is not None and doc["summary"]["cost_usd"] == s["cost_usd"]
        # tool timings from the session's own lines = the tool_calls view
        want = {c["tool_use_id"]: c for c in q.tool_calls(ch.query_dicts, sid)}
        for t in doc["turns"]:
            for u in t["tool_uses"]:
                c = want[u["id"]]
                assert (u["has_result"], u["duration_ms"], u["is_error"]) == (
                    bool(c["has_result"]), c["duration_ms"], bool(c["is_error"])), (sid, u, c)
                checked_calls += 1
        # the turns are those of `ccstream show --json`, in its order
        out = io.StringIO()
        assert cli.main_show([sid, "--json"], query=ch.query_dicts, out=out) == 0
        shown = json.loads(out.getvalue())
        assert [(t["uuid"], t["depth"], t["kind"]) for t in doc["turns"]] == [
            (t["uuid"], t["depth"], t["kind"]) for t in shown["turns"]]
        # the subagent tree is the subagents view's, asked only when there are subagents
        tree = q.subagent_tree(q.subagents(ch.query_dicts, sid))
        assert [(a["depth"], a["agent_id"]) for a in doc["subagents"]] == [(d, r["agent_id"]) for d, r in tree]
        costs = doc["cost_over_time"]
        assert costs == sorted(costs, key=lambda p: p["cost_usd"])  # a running total never falls
        if costs:
            assert costs[-1]["cost_usd"] == pytest.approx(s["cost_usd"], abs=1e-5)
    assert checked_calls > 2000


def test_an_unknown_session_is_none(ch: ClickHouse) -> None:
    assert dash.session(ch.query_dicts, "no-such-session", load_pricing(env={})) is None


def test_tools_document(ch: ClickHouse) -> None:
    doc: dict[str, Any] = dash.tools(ch.query_dicts, q.Filters())
    assert [t["tool_name"] for t in doc["tools"]] == [t["tool_name"] for t in q.tools(ch.query_dicts, q.Filters())]
    assert doc["mcp_servers"] and doc["mcp_servers"][0]["server"] == "linear-server"
    mcp = [t for t in q.tools(ch.query_dicts, q.Filters()) if t["tool_name"].startswith("mcp__linear-server__")]
    assert doc["mcp_servers"][0]["calls"] == sum(t["calls"] for t in mcp)
    assert doc["mcp_servers"][0]["errors"] == sum(t["errors"] for t in mcp)
    assert all(int(c["is_error"]) == 1 for c in doc["failing"])
    slow = [c["duration_ms"] for c in doc["slowest"]]
    assert slow == sorted(slow, reverse=True) and len(slow) == 25
