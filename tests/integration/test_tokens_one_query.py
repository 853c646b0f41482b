"""`tokens_with_totals` (the rows and the totals of `ccstream tokens` from one query) gives exactly what the two
queries `tokens` and `token_totals` give: every row, every key in the same order, the totals' cost to the last
digit (each totals group holds the same integer sums, priced by the same expression, summed in Decimal128).

Fed: the fixture corpus (63 files, 18,918 objects) and the hand-made usage cases of test_accounting.py (fast
mode, both sides of a long-context threshold, an unknown model, web searches, echoes, an advisor call), each
stored through the sink's writer into chDB.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stream.analytics import queries as q
from stream.analytics.pricing import load_pricing
from stream.cli import analytics as cli
from stream.store.client import ClickHouse, connect
from stream.store.schema import MIGRATIONS, migrate
from tests.integration.test_accounting import OPUS, ROOT, S, assistant, fill, usage, write
from tests.integration.test_analytics import load

pytestmark = pytest.mark.integration

BY = (["day"], ["week"], ["month"], ["session"], ["model"], ["project"], ["host", "user"], ["agent"],
      ["session", "model"], ["session", "day"], ["day", "model"], ["model", "day"])
FILTERS = (q.Filters(), q.Filters(timezone="Europe/Berlin"), q.Filters(timezone="America/Los_Angeles"),
           q.Filters(since=dt.date(2026, 2, 10), until=dt.date(2026, 2, 13)), q.Filters(project="spotter"),
           q.Filters(since=dt.date(2026, 3, 2)), q.Filters(since=dt.date(2099, 1, 1)))


@pytest.fixture(scope="module")
def pricing() -> Any:
    return load_pricing(env={})


@pytest.fixture(scope="module")
def stores(chdb_dir: Path, corpus: Path) -> Iterator[dict[str, ClickHouse]]:
    corpus_store = connect(f"chdb://{chdb_dir}?database=t_one_query_{uuid.uuid4().hex[:6]}")
    migrate(corpus_store, MIGRATIONS)
    assert load(corpus_store, corpus) == 18_918
    hand = connect(f"chdb://{chdb_dir}?database=t_one_query_hand_{uuid.uuid4().hex[:6]}")
    migrate(hand, MIGRATIONS)
    fill(hand)
    yield {"corpus": corpus_store, "hand": hand}


def ordered(rows: list[dict[str, Any]]) -> list[list[tuple[str, Any]]]:
    return [list(r.items()) for r in rows]


@pytest.mark.parametrize("store", ["corpus", "hand"])
@pytest.mark.parametrize("grouping", ["ccstream", "ccusage"])
def test_one_query_gives_the_rows_and_totals_of_two(stores: dict[str, ClickHouse], pricing: Any, store: str,
                                                    grouping: str) -> None:
    query = stores[store].query_dicts
    nonempty = 0
    # each grouping with three of the filters, rotating: every filter meets three groupings, and the two
    # timezones meet day and week (LA month too). All 84 pairs took 48 s of the suite for little more.
    for i, by in enumerate(BY):
        for filters in (FILTERS[(i + j) % len(FILTERS)] for j in range(3)):
            rows, totals = q.tokens_with_totals(query, by, filters, pricing, grouping)
            assert ordered(rows) == ordered(q.tokens(query, by, filters, pricing, grouping)), (by, filters)
            assert list(totals.items()) == list(q.token_totals(query, filters, pricing).items()), (by, filters)
            nonempty += bool(rows)
    assert nonempty > len(BY)  # the filters do select something, not only empty results


def test_the_hand_made_cases_reach_the_totals(stores: dict[str, ClickHouse], pricing: Any) -> None:
    """The totals row carries what only some groups have: an unpriced model, web searches, fast mode's price."""
    _, totals = q.tokens_with_totals(stores["hand"].query_dicts, ["day"], q.Filters(), pricing)
    assert totals["unpriced_models"] == ["claude-zebra-9"]
    assert (totals["web_search_requests"], totals["web_fetch_requests"]) == (3, 2)
    assert totals["responses"] == 11


def test_a_session_in_two_cwds_has_one_last_activity(chdb_dir: Path, pricing: Any) -> None:
    """`tokens --by session`: a session's last activity and project are its latest response's, also when its
    responses ran in two cwds (one activity row per session, not one per cwd picked by row order)."""
    ch = connect(f"chdb://{chdb_dir}?database=t_two_cwds_{uuid.uuid4().hex[:6]}")
    migrate(ch, MIGRATIONS)
    lines = [assistant(f"cwd{k}", OPUS, usage(1, 2), ts=f"2026-03-0{k}T10:00:00.000Z") for k in (1, 2, 3)]
    lines[0]["cwd"] = lines[2]["cwd"] = "/home/u/a"
    lines[1]["cwd"] = "/home/u/b"
    write(ch, f"{ROOT}/{S}.jsonl", lines[::-1])  # file order is not time order
    activity = q.session_activity(ch.query_dicts, q.Filters())
    assert [(a["session"], str(a["last_activity"])[:10], a["project_path"]) for a in activity] == [
        (S, "2026-03-03", "/home/u/a")]
    lines[2]["cwd"] = "/home/u/c"
    lines[2]["uuid"] += "-moved"
    write(ch, f"{ROOT}/{S}-2.jsonl", [lines[2]])  # the same response in another file: still one response
    assert [a["project_path"] for a in q.session_activity(ch.query_dicts, q.Filters())] == ["/home/u/a"]
    out = io.StringIO()
    assert cli.main_tokens(["--by", "session", "--json", "--timezone", "UTC"], query=ch.query_dicts,
                           pricing=pricing, out=out) == 0
    rows = json.loads(out.getvalue())["rows"]
    assert [(r["session"], r["responses"], r["last_activity"], r["project_path"]) for r in rows] == [
        (S, 3, "2026-03-03T10:00:00.000Z", "/home/u/a")]


def test_lines_of_one_response_in_two_parts(chdb_dir: Path, pricing: Any) -> None:
    """The same response written twice with equal totals (a line and its copy in another file, inserted apart so
    they sit in two parts until a merge): counted once, its earliest time, its fast mode and its web searches,
    as the view and the table's merge both take them."""
    ch = connect(f"chdb://{chdb_dir}?database=t_two_parts_{uuid.uuid4().hex[:6]}")
    migrate(ch, MIGRATIONS)
    first = assistant("tie", OPUS, usage(10, 20, 30, 40), ts="2026-03-05T23:59:59.000Z")
    second = assistant("tie", OPUS, usage(10, 20, 30, 40, speed="fast", server_tool_use={"web_search_requests": 2}),
                       ts="2026-03-06T00:00:01.000Z")
    second["uuid"] += "-copy"
    write(ch, f"{ROOT}/{S}.jsonl", [second])
    write(ch, f"{ROOT}/{S}-copy.jsonl", [first])
    for by in (["day"], ["model"], ["session", "day"]):
        rows, totals = q.tokens_with_totals(ch.query_dicts, by, q.Filters(), pricing)
        assert ordered(rows) == ordered(q.tokens(ch.query_dicts, by, q.Filters(), pricing)), by
        assert list(totals.items()) == list(q.token_totals(ch.query_dicts, q.Filters(), pricing).items()), by
    rows, totals = q.tokens_with_totals(ch.query_dicts, ["day"], q.Filters(), pricing)
    assert [(str(r["day"]), r["responses"], r["web_search_requests"]) for r in rows] == [("2026-03-05", 1, 2)]
    fast = (10 * 30 + 20 * 150 + 30 * 37.5 + 40 * 3) / 1e6 + 2 * 0.01  # Opus 4.6 fast: 6x; searches $10/1,000
    assert totals["cost_usd"] == pytest.approx(fast, abs=1e-6)
