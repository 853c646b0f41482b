"""Every API response counted once, wherever Claude Code wrote it (issue 12).

Fed: (1) the fixture corpus (63 files, 18,918 objects) against ccusage 20.0.24's daily report recorded in
tests/fixtures/ccusage/daily.json; (2) hand-made transcripts, one line per usage case (a streaming placeholder
and its final line, the nested cache split under a flat 0, web search and fetch, an unknown model, subagent
echoes with and without the subagent's own line, fast mode, both sides of a long-context threshold, record
types extraction does not model, an advisor call), stored through the sink's writer into chDB, on a current
store and on a store filled before migration 4.
"""

from __future__ import annotations

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
from stream.contract.identity import file_id_for
from stream.contract.raw_chunk import RawChunk
from stream.store.client import ClickHouse, connect
from stream.store.schema import MIGRATIONS, migrate
from stream.store.writer import TraceWriter
from tests.integration.test_analytics import load
from tests.unit.store.test_extract import consecutive_records

pytestmark = pytest.mark.integration

DAILY = Path(__file__).resolve().parents[1] / "fixtures" / "ccusage" / "daily.json"
KINDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
CC_KINDS = ("inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens")


@pytest.fixture(scope="module")
def pricing() -> Any:
    return load_pricing(env={})


@pytest.fixture(scope="module")
def corpus_store(chdb_dir: Path, corpus: Path) -> Iterator[ClickHouse]:
    client = connect(f"chdb://{chdb_dir}?database=t_accounting_{uuid.uuid4().hex[:6]}")
    migrate(client, MIGRATIONS)
    assert load(client, corpus) == 18_918
    yield client


def ccusage_daily() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DAILY.read_text())
    return doc


# ---- the corpus against ccusage daily ------------------------------------------------------------------------


def test_tokens_by_day_equal_ccusage_daily(corpus_store: ClickHouse, pricing: Any) -> None:
    daily = {d["date"]: d for d in ccusage_daily()["daily"]}
    assert len(daily) == 33
    out = io.StringIO()
    assert cli.main_tokens(["--by", "day", "--json"], query=corpus_store.query_dicts, pricing=pricing, out=out) == 0
    doc = json.loads(out.getvalue())
    rows = {r["day"]: r for r in doc["rows"]}
    assert set(rows) == set(daily)
    for day, want in daily.items():  # every day: four token kinds exact, cost within 1e-4
        got = rows[day]
        assert tuple(got[k] for k in KINDS) == tuple(want[k] for k in CC_KINDS), day
        assert got["cost_usd"] == pytest.approx(want["totalCost"], abs=1e-4), day
    totals = ccusage_daily()["totals"]
    assert tuple(doc["totals"][k] for k in KINDS) == tuple(totals[k] for k in CC_KINDS) == (
        83_769, 453_920, 10_541_939, 228_591_775)
    assert doc["totals"]["cost_usd"] == pytest.approx(totals["totalCost"], abs=1e-4)
    assert totals["totalCost"] == pytest.approx(187.92228015, abs=1e-8)
    assert doc["pricing"]["unpriced_models"] == []


@pytest.mark.parametrize("by", ["session", "model", "project", "agent", "session,day", "host,user"])
def test_every_grouping_adds_up_to_the_same_totals(corpus_store: ClickHouse, pricing: Any, by: str) -> None:
    totals = ccusage_daily()["totals"]
    rows = q.tokens(corpus_store.query_dicts, by.split(","), q.Filters(), pricing)
    assert tuple(sum(r[k] for r in rows) for k in KINDS) == tuple(totals[k] for k in CC_KINDS)
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(totals["totalCost"], abs=1e-4)
    assert sum(r["responses"] for r in rows) == 2_767


def test_models_per_day_as_ccusage_breaks_them_down(corpus_store: ClickHouse, pricing: Any) -> None:
    rows = q.tokens(corpus_store.query_dicts, ["day", "model"], q.Filters(), pricing)
    got = {(str(r["day"]), r["model"]): (*(r[k] for k in KINDS), r["cost_usd"]) for r in rows
           if r["model"] != "<synthetic>"}
    want = {(d["date"], m["modelName"]): (*(m[k] for k in CC_KINDS), m["cost"])
            for d in ccusage_daily()["daily"] for m in d["modelBreakdowns"]}
    assert set(got) == set(want)
    for key, w in want.items():
        assert got[key][:4] == w[:4], key
        assert got[key][4] == pytest.approx(w[4], abs=1e-4), key


# ---- hand-made lines, one per usage case -----------------------------------------------------------------------

S = "11111111-2222-4333-8444-555555555555"
ROOT = "/home/u/.claude/projects/-home-u-proj"
CWD = "/home/u/proj"


def usage(i: int = 0, o: int = 0, cc: int = 0, cr: int = 0, **extra: Any) -> dict[str, Any]:
    return {"input_tokens": i, "output_tokens": o, "cache_creation_input_tokens": cc, "cache_read_input_tokens": cr,
            **extra}


def assistant(mid: str, model: str, u: dict[str, Any], ts: str = "2026-03-01T10:00:00.000Z",
              **extra: Any) -> dict[str, Any]:
    return {"type": "assistant", "sessionId": S, "cwd": CWD, "timestamp": ts, "uuid": f"u-{mid}-{ts}",
            "requestId": f"req_{mid}", "message": {"id": f"msg_{mid}", "model": model, "role": "assistant",
                                                   "content": [{"type": "text", "text": "x"}], "usage": u}, **extra}


def echo(mid: str, model: str, u: dict[str, Any], ts: str, line_ts: str, agent: str = "sub1") -> dict[str, Any]:
    return {"type": "progress", "sessionId": S, "cwd": CWD, "timestamp": line_ts, "uuid": f"p-{mid}",
            "isSidechain": False, "toolUseID": "agent_msg_x", "parentToolUseID": "toolu_task",
            "data": {"type": "agent_progress", "agentId": agent, "prompt": "do it", "normalizedMessages": [],
                     "message": {"type": "assistant", "timestamp": ts, "requestId": f"req_{mid}",
                                 "uuid": f"e-{mid}", "message": {"id": f"msg_{mid}", "model": model,
                                                                 "content": [], "usage": u}}}}


OPUS, SONNET45, SONNET46, HAIKU = ("claude-opus-4-6", "claude-sonnet-4-5-20250929", "claude-sonnet-4-6",
                                   "claude-haiku-4-5-20251001")
PARENT: list[dict[str, Any]] = [
    # a streaming placeholder (output still 1), then the final line of the same response
    assistant("place", OPUS, usage(3, 1, 0, 1000)),
    assistant("place", OPUS, usage(3, 450, 0, 1000), ts="2026-03-01T10:00:02.000Z"),
    # the flat count written as 0 (Claude Code before 2.1.152): the nested split counts
    assistant("nested", SONNET46, usage(5, 10, 0, 0, cache_creation={"ephemeral_5m_input_tokens": 100,
                                                                      "ephemeral_1h_input_tokens": 2000})),
    # server tools, tier and geo
    assistant("web", HAIKU, usage(10, 20, 0, 0, server_tool_use={"web_search_requests": 3, "web_fetch_requests": 2},
                                  service_tier="standard", inference_geo="global")),
    # a model the table does not know
    assistant("unk", "claude-zebra-9", usage(1000, 1000, 0, 0)),
    # an echo whose response the subagent's file holds (with its final output): adds nothing
    echo("e1", OPUS, usage(2, 5, 0, 500), ts="2026-03-01T10:01:00.000Z", line_ts="2026-03-01T10:01:00.000Z"),
    # an echo that is the only record of its request; its day is the echoed message's
    echo("e2", OPUS, usage(7, 70, 300, 900), ts="2026-03-02T00:00:01.000Z", line_ts="2026-03-01T23:59:59.000Z"),
    # fast mode
    assistant("fast", OPUS, usage(1000, 2000, 0, 10_000, speed="fast", service_tier="standard")),
    # Sonnet 4.5 on both sides of 200K prompt tokens, the same day and model
    assistant("long", SONNET45, usage(1000, 1000, 50_000, 150_000,
                                      cache_creation={"ephemeral_5m_input_tokens": 0,
                                                      "ephemeral_1h_input_tokens": 50_000})),
    assistant("short", SONNET45, usage(1000, 1000, 0, 1000)),
    # an advisor call (Opus 4.7 advising Sonnet 4.6) inside the response's usage.iterations, on a line written
    # twice: counted once, under the advisor's model, outside the line's own counts
    *[assistant("adv", SONNET46, usage(2, 491, 7853, 226_584, iterations=[
        {"type": "message", "input_tokens": 1, "output_tokens": 45, "cache_read_input_tokens": 109_696,
         "cache_creation_input_tokens": 7192},
        {"type": "advisor_message", "model": "claude-opus-4-7", "input_tokens": 159_419, "output_tokens": 7805,
         "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
        {"type": "message", "input_tokens": 1, "output_tokens": 446, "cache_read_input_tokens": 116_888,
         "cache_creation_input_tokens": 661}]), advisorModel="claude-opus-4-7") for _ in range(2)],
    # an echo of a user message and record types extraction does not model: stored, never counted
    {"type": "progress", "sessionId": S, "timestamp": "2026-03-01T10:01:00.000Z",
     "data": {"type": "agent_progress", "agentId": "sub1",
              "message": {"type": "user", "timestamp": "2026-03-01T10:01:00.000Z",
                          "message": {"role": "user", "content": "go"}}}},
    {"type": "custom-title", "customTitle": "mine", "sessionId": S},
    {"type": "ai-title", "aiTitle": "A title", "sessionId": S},
    {"type": "attachment", "sessionId": S, "timestamp": "2026-03-01T10:00:00.000Z", "attachment": {"type": "x"}},
    {"type": "a-type-from-the-future", "sessionId": S, "message": {"id": "msg_future", "usage": usage(99, 99)}},
]
SUBAGENT: list[dict[str, Any]] = [
    {**assistant("e1", OPUS, usage(2, 40, 0, 500), ts="2026-03-01T10:01:00.000Z"), "isSidechain": True,
     "agentId": "sub1"},
]

# token_usage, row for row: (message_id, source, session, agent, sidechain, day, model, input, output,
# cache creation, cache read, 5m, 1h, web searches, web fetches, speed, service tier, geo)
EXPECTED = [
    ("msg_adv", "assistant", S, "", 0, "2026-03-01", SONNET46, 2, 491, 7853, 226_584, 0, 0, 0, 0, "", "", ""),
    ("msg_adv:advisor:0", "advisor", S, "", 0, "2026-03-01", "claude-opus-4-7", 159_419, 7805, 0, 0, 0, 0, 0, 0, "",
     "", ""),
    ("msg_e1", "assistant", S, "sub1", 1, "2026-03-01", OPUS, 2, 40, 0, 500, 0, 0, 0, 0, "", "", ""),
    ("msg_e2", "echo", S, "sub1", 1, "2026-03-02", OPUS, 7, 70, 300, 900, 0, 0, 0, 0, "", "", ""),
    ("msg_fast", "assistant", S, "", 0, "2026-03-01", OPUS, 1000, 2000, 0, 10_000, 0, 0, 0, 0, "fast", "standard", ""),
    ("msg_long", "assistant", S, "", 0, "2026-03-01", SONNET45, 1000, 1000, 50_000, 150_000, 0, 50_000, 0, 0, "", "",
     ""),
    ("msg_nested", "assistant", S, "", 0, "2026-03-01", SONNET46, 5, 10, 2100, 0, 100, 2000, 0, 0, "", "", ""),
    ("msg_place", "assistant", S, "", 0, "2026-03-01", OPUS, 3, 450, 0, 1000, 0, 0, 0, 0, "", "", ""),
    ("msg_short", "assistant", S, "", 0, "2026-03-01", SONNET45, 1000, 1000, 0, 1000, 0, 0, 0, 0, "", "", ""),
    ("msg_unk", "assistant", S, "", 0, "2026-03-01", "claude-zebra-9", 1000, 1000, 0, 0, 0, 0, 0, 0, "", "", ""),
    ("msg_web", "assistant", S, "", 0, "2026-03-01", HAIKU, 10, 20, 0, 0, 0, 0, 3, 2, "", "standard", "global"),
]
ROW_SQL = ("SELECT message_id, source, session_id, agent_id, is_sidechain, toString(day), model, input_tokens, "
           "output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cache_creation_5m, "
           "cache_creation_1h, web_search_requests, web_fetch_requests, speed, service_tier, inference_geo "
           "FROM token_usage ORDER BY message_id")


def write(ch: ClickHouse, path: str, objects: list[dict[str, Any]], agent: str | None = None) -> None:
    records, end = consecutive_records([json.dumps(o).encode() for o in objects])
    chunk = RawChunk.from_records(host="h", user="u", path=path, file_id=file_id_for("h", path), incarnation=0,
                                  fingerprint="",
                                  session_id=S, agent_id=agent, records=records, end_offset=end,
                                  end_line=len(records))
    TraceWriter(ch).write_chunks([chunk], f"hand-{uuid.uuid4().hex[:8]}")


def fill(ch: ClickHouse) -> None:
    write(ch, f"{ROOT}/{S}.jsonl", PARENT)
    write(ch, f"{ROOT}/{S}/subagents/agent-sub1.jsonl", SUBAGENT, agent="sub1")


@pytest.fixture(scope="module")
def hand(chdb_dir: Path) -> Iterator[ClickHouse]:
    client = connect(f"chdb://{chdb_dir}?database=t_hand_{uuid.uuid4().hex[:6]}")
    migrate(client, MIGRATIONS)
    fill(client)
    yield client


def python_cost(pricing: Any, row: tuple[Any, ...]) -> float:
    """The row's cost by the Python rules (one request each): the SQL must agree."""
    c = pricing.cost(row[6], row[7], row[8], row[9], row[10], cache_creation_1h=row[12], fast=row[15] == "fast",
                     web_search_requests=row[13])
    return 0.0 if c is None else float(c)


def test_each_usage_case_row_for_row(hand: ClickHouse) -> None:
    assert [tuple(r) for r in hand.query_rows(ROW_SQL)] == EXPECTED
    # the extraction's own columns: usage details of every line, the echo's time, unmodelled types kept raw
    raw = hand.query_rows("SELECT type, message_id, request_id, toUnixTimestamp64Milli(echo_timestamp), "
                          "web_search_requests, web_fetch_requests, service_tier, speed, inference_geo "
                          "FROM claude_raw_traces FINAL WHERE message_id IN ('msg_web', 'msg_e2', 'msg_fast')"
                          " ORDER BY message_id")
    assert [tuple(r) for r in raw] == [
        ("progress", "msg_e2", "req_e2", 1772409601000, 0, 0, "", "", ""),
        ("assistant", "msg_fast", "req_fast", 0, 0, 0, "standard", "fast", ""),
        ("assistant", "msg_web", "req_web", 0, 3, 2, "standard", "", "global"),
    ]
    assert hand.query_rows("SELECT count() FROM claude_raw_traces FINAL") == [(len(PARENT) + len(SUBAGENT),)]


def test_costs_by_day_model_and_session(hand: ClickHouse, pricing: Any) -> None:
    # each response priced by its own tier: Sonnet 4.5's long request at $6/$22.50, the short one at $3/$15
    long_cost = (1000 * 6 + 1000 * 22.5 + 50_000 * 12 + 150_000 * 0.6) / 1e6
    short_cost = (1000 * 3 + 1000 * 15 + 1000 * 0.3) / 1e6
    fast_cost = (1000 * 30 + 2000 * 150 + 10_000 * 3) / 1e6
    nested_cost = (5 * 3 + 10 * 15 + 100 * 3.75 + 2000 * 6) / 1e6
    web_cost = (10 * 1 + 20 * 5) / 1e6 + 3 * 0.01  # searches $10 per 1,000; fetches free
    want = {row[0]: python_cost(pricing, row) for row in EXPECTED}
    assert want["msg_long"] == pytest.approx(long_cost) and want["msg_short"] == pytest.approx(short_cost)
    assert want["msg_fast"] == pytest.approx(fast_cost) and want["msg_nested"] == pytest.approx(nested_cost)
    assert want["msg_web"] == pytest.approx(web_cost) and want["msg_unk"] == 0.0
    by_day = {str(r["day"]): r for r in q.tokens(hand.query_dicts, ["day"], q.Filters(), pricing)}
    assert by_day["2026-03-01"]["cost_usd"] == pytest.approx(sum(v for k, v in want.items() if k != "msg_e2"),
                                                             abs=1e-6)
    assert by_day["2026-03-02"]["cost_usd"] == pytest.approx(want["msg_e2"], abs=1e-6)
    assert by_day["2026-03-01"]["unpriced_models"] == ["claude-zebra-9"]
    assert by_day["2026-03-02"]["unpriced_models"] == []
    assert (by_day["2026-03-01"]["web_search_requests"], by_day["2026-03-01"]["web_fetch_requests"]) == (3, 2)
    models = {r["model"]: r["cost_usd"] for r in q.tokens(hand.query_dicts, ["model"], q.Filters(), pricing)}
    assert models[SONNET45] == pytest.approx(long_cost + short_cost, abs=1e-6)
    assert models["claude-zebra-9"] == 0.0
    session = q.sessions(hand.query_dicts, q.Filters(), pricing)
    assert [(r["session_id"], r["responses"], r["unpriced_models"]) for r in session] == [
        (S, 11, ["claude-zebra-9"])]
    assert session[0]["cost_usd"] == pytest.approx(sum(want.values()), abs=1e-6)


def test_unknown_models_are_named_with_how_to_price_them(hand: ClickHouse, pricing: Any, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CCSTREAM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("CCSTREAM_PRICING_FILE", raising=False)
    monkeypatch.delenv("CCSTREAM_REDIS_URL", raising=False)
    monkeypatch.delenv("CCSTREAM_KAFKA_BOOTSTRAP", raising=False)
    for fn, argv in ((cli.main_tokens, ["--by", "day"]), (cli.main_sessions, ["--json"]),
                     (cli.main_status, ["--json"])):
        out = io.StringIO()
        assert fn(argv, query=hand.query_dicts, pricing=pricing, out=out) == 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, fn
        assert "no price for claude-zebra-9" in err[0] and str(tmp_path / "pricing.json") in err[0], fn
    status = json.loads(out.getvalue())
    assert status["pricing"]["unpriced_models"] == ["claude-zebra-9"]
    assert status["store"]["unmodelled_types"] == {"a-type-from-the-future": 1, "ai-title": 1, "attachment": 1,
                                                   "custom-title": 1}
    # with a price in the override file the model is priced and nothing is said
    (tmp_path / "pricing.json").write_text(json.dumps({"models": {"claude-zebra-9": {
        "input": 1, "output": 2, "cache_write_5m": 1.25, "cache_write_1h": 2, "cache_read": 0.1}}}))
    priced = load_pricing(tmp_path, env={})
    out = io.StringIO()
    assert cli.main_tokens(["--by", "model", "--json"], query=hand.query_dicts, pricing=priced, out=out) == 0
    assert capsys.readouterr().err == ""
    zebra = next(r for r in json.loads(out.getvalue())["rows"] if r["model"] == "claude-zebra-9")
    assert zebra["cost_usd"] == pytest.approx(0.003) and zebra["unpriced_models"] == []


def test_a_store_filled_before_migration_4_counts_the_same(chdb_dir: Path) -> None:
    """Echoes stored by migration 3's extraction lack their message columns, assistant lines their usage
    details: migration 4's backfill reads both from the raw lines, and the rows equal a current store's."""
    client = connect(f"chdb://{chdb_dir}?database=t_hand_old_{uuid.uuid4().hex[:6]}")
    migrate(client, [m for m in MIGRATIONS if m.version in (1, 3)])
    fill(client)
    assert client.query_rows("SELECT count() FROM claude_raw_traces FINAL WHERE type = 'progress' "
                             "AND message_id != ''") == [(0,)]
    assert migrate(client, MIGRATIONS) == [2, 4, 5]
    assert [tuple(r) for r in client.query_rows(ROW_SQL)] == EXPECTED
    fill(client)  # re-delivered after the migration, through the new extraction: still once each
    assert [tuple(r) for r in client.query_rows(ROW_SQL)] == EXPECTED


def test_sql_cost_equals_python_cost_for_every_model_tier_and_speed(hand: ClickHouse, pricing: Any) -> None:
    """One request per (model of the table, fast or not, prompt below or above 100K and 200K): the SQL the
    queries embed and PriceTable.cost agree to the micro-dollar."""
    expr = pricing.sql_cost_expr(model="m", input_tokens="i", output_tokens="o", cache_creation="cc",
                                 cache_read="cr", cache_creation_1h="h", fast="f", web_search_requests="w")
    cases = [(m, f, cr) for m in [*pricing.models, "us.anthropic.claude-opus-4-6-v1:0", "claude-zebra-9"]
             for f in (0, 1) for cr in (50_000, 150_000, 250_000)]
    got = hand.query_rows(
        f"SELECT m, f, cr, {expr} FROM (SELECT tupleElement(c, 1) AS m, toUInt8(tupleElement(c, 2)) AS f, "
        "toUInt64(tupleElement(c, 3)) AS cr, toUInt64(1000) AS i, toUInt64(2000) AS o, toUInt64(30000) AS cc, "
        "toUInt64(10000) AS h, toUInt64(2) AS w FROM (SELECT arrayJoin({c:Array(Tuple(String, UInt8, UInt64))}) "
        "AS c))", {"c": cases})
    assert len(got) == len(cases)
    for m, f, cr, cost in got:
        want = pricing.cost(m, 1000, 2000, 30_000, cr, cache_creation_1h=10_000, fast=bool(f), web_search_requests=2)
        assert cost == pytest.approx(want or 0.0, abs=1e-9), (m, f, cr)
