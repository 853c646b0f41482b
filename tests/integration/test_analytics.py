"""Analytics over the real fixture corpus loaded into chDB: token dedup against ccusage 20, the views, the CLI.

ccstream counts assistant lines and subagent echoes (agent_progress lines) in one accounting, which equals
ccusage 20.0.24's daily report (tests/integration/test_accounting.py). ccusage's session report skips echoes;
here it is matched by the responses whose kept line is an assistant line (token_usage.source = 'assistant'),
and the 203 echo-only responses are pinned session by session.

Fed: all 63 files of tests/fixtures/claude-code/projects (18,918 JSON objects), framed into RawChunks here
and stored through the sink's writer into a database of the shared chDB path; views from migration 2.
"""

from __future__ import annotations

import csv
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
from stream.contract.raw_chunk import RawChunk, Record
from stream.store.client import ClickHouse, connect
from stream.store.schema import MIGRATIONS, migrate
from stream.store.views import TOKEN_USAGE_GROUPS_BACKFILL

pytestmark = pytest.mark.integration

HOST, USER = "bench-host", "dev"
SESSION = "4d5611e5-241a-462a-8d15-5122611a9569"

# `ccusage claude session --offline --timezone UTC --json` (ccusage 20.0.24) over the fixture folder:
# (projectPath, sessionId) -> (input, output, cache creation, cache read, totalCost USD)
CCUSAGE_SESSIONS: dict[tuple[str, str], tuple[int, int, int, int, float]] = {
    ('amac0__ClaudeStatus', 'example'): (37, 366, 19556, 172177, 0.1305891),
    ('amac0__ClaudeStatus', 'example2'): (9453, 12400, 192394, 16755632, 5.962526099999996),
    ('entireio__cli', '062a8bdd-4322-4ffa-bc38-3e8b8bfb5a56'): (299, 1394, 637373, 15576859, 14.1985045),
    ('entireio__cli', '0790ea37-90df-4d30-8fdf-0bfe301b8f3e'): (18, 424, 9249, 41665, 0.08932874999999998),
    ('entireio__cli', '0bdbfa06-acf1-473a-b3e4-6a03313d1d0e'): (234, 91, 164082, 1831131, 1.9445229999999996),
    ('entireio__cli', '0c97beba-bfcb-4f84-9950-e0354bfc808b'): (114, 134, 64028, 864045, 1.0762225),
    ('entireio__cli', '130d7b7e-5801-4345-9bd6-f32fd9b8429b'): (346, 7047, 168250, 2618979, 2.5389569999999995),
    ('entireio__cli', '1b3e6441-62e3-4b41-8a0c-9d252f531f7a'): (18, 16, 35030, 34788, 0.23682150000000002),
    ('entireio__cli', '277dae78-39d1-4703-aeec-74104e4b1585'): (5, 395, 19172, 113385, 0.2583125),
    ('entireio__cli', '2b945d54-dd2b-4f60-b3b0-7b0252349003'): (13, 217, 53281, 502296, 0.7894479999999999),
    ('entireio__cli', '3b1b6293-65e1-4c3e-9f95-d530143332f2'): (286, 142, 136019, 2372982, 2.0415897499999995),
    ('entireio__cli', '4ded0de6-8acf-40a5-ba46-7f9bb1ad903c'): (526, 126, 248537, 6940441, 5.961370500000001),
    ('entireio__cli', '559081d6-534c-40b9-afeb-5eb72cd84309'): (84, 3281, 66741, 157550, 0.34701075000000003),
    ('entireio__cli', '5a3bb1c8-c3ce-466e-b487-24212cbf1da1'): (10, 4, 38385, 0, 0.24005625000000003),
    ('entireio__cli', '645ea3df-c4e9-44bc-b333-22c9893c32c5'): (70, 26, 118843, 329215, 1.0964773),
    ('entireio__cli', '6da7d497-00e2-460d-a6b4-d280e0314cfd'): (12, 471, 53147, 206288, 0.6464490000000002),
    ('entireio__cli', '70c88cff-cb35-404f-a974-2a08bab4e4bc'): (150, 32, 152740, 1329665, 2.1937825),
    ('entireio__cli', '78368290-ee0b-474f-8052-bb65a9a581d6'): (15, 347, 36887, 461487, 0.6083635000000001),
    ('entireio__cli', '839b35f7-4dbd-4d93-9772-3c272cc87caa'): (1509, 165, 412197, 10462660, 4.691538749999999),
    ('entireio__cli', '86cc3044-7515-43f1-9c25-1444738c64c9'): (631, 1991, 330249, 3334164, 2.938190049999999),
    ('entireio__cli', '8b418ea5-895d-4ad5-abe8-4489d36e454f'): (620, 89, 103404, 909116, 1.1061580000000002),
    ('entireio__cli', '9265dc4e-fa94-4c08-9932-fca495724501'): (30, 471, 8745, 96572, 0.147661),
    ('entireio__cli', '97007e37-53bd-4456-9a49-c0f8081081a7'): (362, 7693, 79083, 2282942, 1.8298747499999999),
    ('entireio__cli', '9b76dc0f-dc1b-4822-ac56-53cfa3fbc032'): (4, 10, 8055, 44519, 0.1030795),
    ('entireio__cli', '9d440bfc-a64f-43be-aa10-10a3764a59ea'): (7, 805, 13211, 136049, 0.22029450000000003),
    ('entireio__cli', '9ff9c26d-319d-4a47-843a-3d60f73295c9'): (1349, 22145, 275238, 1025640, 0.5586855000000001),
    ('entireio__cli', 'a2b25ca9-1cbb-41d7-a3b1-89c66f8697f9'): (518, 181, 449634, 4956533, 5.295594000000001),
    ('entireio__cli', 'acdd84ab-e724-42c8-925d-420b2a4f1861'): (20, 439, 38452, 425120, 0.608155),
    ('entireio__cli', 'b00b80af-879f-4265-b95b-48db0938673c'): (1204, 75508, 1280052, 14988341, 17.388215500000012),
    ('entireio__cli', 'b2273d7d-fb20-41f7-93fb-265486aae975'): (50, 1118, 43530, 208671, 0.40459799999999996),
    ('entireio__cli', 'b82405ba-a054-4152-bc86-e9b0d4832b68'): (2549, 887, 507658, 17686955, 13.95497749999999),
    ('entireio__cli', 'bc3bf53b-19fe-4209-b30a-a1acffaf6703'): (42, 8, 27063, 193753, 0.3679165),
    ('entireio__cli', 'c010174c-a7cd-4bcc-b7d4-61258d6c463f'): (109, 9985, 536714, 9599581, 10.417100500000005),
    ('entireio__cli', 'cab865ac-8278-406e-b5c2-c73d24d7f9ad'): (134, 2513, 13852, 1639402, 0.9697709999999998),
    ('entireio__cli', 'cde341db-b80a-44f5-b0f2-94db2ef7a164'): (70, 12098, 99805, 2995725, 2.4244437500000005),
    ('entireio__cli', 'ce24e94d-ea12-40cb-9b87-ceb55770af78'): (6, 53, 20667, 159260, 0.287655),
    ('entireio__cli', 'cf564e14-9b07-42ad-8d9a-4faa1b79a0ed'): (34, 744, 41434, 122052, 0.33875849999999996),
    ('entireio__cli', 'd563fb6b-39cf-4895-bb5f-681c33e58bbc'): (152, 42, 60069, 563052, 0.6587672500000001),
    ('entireio__cli', 'efea9d52-9e4f-4189-8bae-4e8049647900'): (436, 26891, 405534, 4967508, 5.6927965),
    ('jimmc414__cctrace', '132b2f66-ee5f-46f6-8904-32d9dc4d36c3'): (2016, 64185, 622125, 10172221, 10.589096750000001),
    ('marot__spotter', '258c7280-ae70-4798-800f-63464d01a85d'): (198, 38908, 394137, 14972534, 12.22573119999999),
    ('marot__spotter', '4d5611e5-241a-462a-8d15-5122611a9569'): (233, 28899, 559475, 12387553, 10.113695550000003),
    ('marot__spotter', '6c2214d7-b87e-4432-8e41-22ba294ea584'): (219, 28, 39438, 457858, 0.1250208),
    ('marot__spotter', '8463c716-a2ea-4c14-9efa-87158ebd9f20'): (2578, 40359, 276819, 16207141, 11.664362700000002),
    ('marot__spotter', 'ae4a77f8-aedd-4bc1-888f-c94edc91af04'): (2653, 49482, 377624, 16600744, 6.172571800000003),
    ('marot__spotter', 'fa812bfe-b295-4cca-9c2f-fdf01028cb46'): (1627, 36307, 360809, 16175673, 10.512349749999998),
    ('marot__spotter', 'short'): (3, 13, 13835, 11515, 0.1444475),
    ('marot__spotter', 'subagent'): (1576, 1586, 25842, 427286, 0.5195930000000001),
    ('marot__spotter', 'tool_heavy'): (54, 212, 17696, 88231, 0.2266455),
    ('microsoft__vscode-copilot-chat/src/extension/agents/claude/node/test', 'fixtures'): (4, 27, 428, 14996, 0.0065208),
    ('oneryalcin__fasthooks', 'agent-af1ff21'): (728, 152, 0, 0, 0.001488),
    ('oneryalcin__fasthooks', 'c45af7b1-cb7c-4e51-93db-8cbb250a877a'): (132, 1480, 8467, 223265, 0.04044225),
}
CCUSAGE_TOTALS = (33_547, 452_387, 9_665_055, 214_845_217, 173.10652914999997)  # the session report's
# `ccusage claude daily` (tests/fixtures/ccusage/daily.json): the session report plus the echo-only responses
DAILY_TOTALS = (83_769, 453_920, 10_541_939, 228_591_775, 187.92228015000003)
# responses recorded only by a subagent echo in the parent file (Entire copies keep no subagent files; the
# marot test file subagent.jsonl lacks 5 of its subagent's responses): ccusage session -> (responses, input,
# output, cache creation, cache read), all attributed to the subagent and the parent's session
ECHO_ONLY: dict[tuple[str, str], tuple[int, int, int, int, int]] = {
    ("entireio__cli", "3b1b6293-65e1-4c3e-9f95-d530143332f2"): (15, 784, 147, 47_787, 547_502),
    ("entireio__cli", "70c88cff-cb35-404f-a974-2a08bab4e4bc"): (14, 2, 62, 49_382, 550_095),
    ("entireio__cli", "acdd84ab-e724-42c8-925d-420b2a4f1861"): (13, 39, 31, 63_773, 562_897),
    ("entireio__cli", "b82405ba-a054-4152-bc86-e9b0d4832b68"): (156, 49_373, 1_286, 701_657, 11_990_721),
    ("marot__spotter", "subagent"): (5, 24, 7, 14_285, 95_343),
}


def chunks_of(path: Path, root: Path, size: int = 2000) -> Iterator[RawChunk]:
    """A file as the tailer would ship it: glued objects split, offsets of each object's first byte."""
    rel = path.relative_to(root).parts
    agent = path.stem[len("agent-"):] if path.stem.startswith("agent-") else None
    session = rel[-3] if len(rel) >= 4 and rel[-2] == "subagents" else path.stem
    records: list[Record] = []
    dec = json.JSONDecoder()
    offset = 0
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete = lines if data.endswith(b"\n") else lines  # the corpus's unterminated last lines are whole
    for line_no, line in enumerate(complete, 1):
        text = line.decode()
        i = 0
        while i < len(text):
            _, j = dec.raw_decode(text, i)
            records.append(Record(offset + len(text[:i].encode()), line_no, text[i:j].encode()))
            i = j
        offset += len(line) + 1
    for start in range(0, len(records), size):
        part = records[start:start + size]
        last = records[start + size] if start + size < len(records) else None
        yield RawChunk.from_records(host=HOST, user=USER, path=str(path), file_id=file_id_for(HOST, str(path)), incarnation=0,
                       fingerprint="", session_id=session, agent_id=agent, records=part,
                       end_offset=last.offset if last else len(data), end_line=part[-1].line_no)


def load(ch: ClickHouse, root: Path) -> int:
    from stream.store.writer import TraceWriter

    writer = TraceWriter(ch)
    n = 0
    for k, path in enumerate(sorted(root.rglob("*.jsonl"))):
        chunks = list(chunks_of(path, root))
        writer.write_chunks(chunks, f"analytics-test-{k}")
        n += sum(c.record_count() for c in chunks)
    return n


@pytest.fixture(scope="module")
def ch(chdb_dir: Path, corpus: Path) -> Iterator[ClickHouse]:
    client = connect(f"chdb://{chdb_dir}?database=t_analytics_{uuid.uuid4().hex[:6]}")
    migrate(client, MIGRATIONS)
    assert load(client, corpus) == 18_918
    yield client


@pytest.fixture(scope="module")
def pricing() -> Any:
    return load_pricing(env={})


def run_cli(fn: Any, argv: list[str], ch: ClickHouse, **kw: Any) -> str:
    out = io.StringIO()
    assert fn(argv, query=ch.query_dicts, out=out, **kw) == 0
    return out.getvalue()


# ---- tokens: the ccusage-comparable grouping matches ccusage 20 to the token ---------------------------------


def test_stored_rows_and_views_exist(ch: ClickHouse) -> None:
    assert ch.query_rows("SELECT count() FROM claude_raw_traces FINAL") == [(18_918,)]
    assert ch.query_rows("SELECT max(version) FROM schema_migrations") == [(max(m.version for m in MIGRATIONS),)]


def test_the_session_figures_are_ccusages_recorded_output() -> None:
    """CCUSAGE_SESSIONS above is ccusage's session report as recorded in tests/fixtures/ccusage/session.json."""
    doc = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "ccusage" / "session.json").read_text())
    assert {(r["projectPath"], r["sessionId"]): (r["inputTokens"], r["outputTokens"], r["cacheCreationTokens"],
                                                 r["cacheReadTokens"], r["totalCost"]) for r in doc["sessions"]} == (
        CCUSAGE_SESSIONS)
    t = doc["totals"]
    assert (t["inputTokens"], t["outputTokens"], t["cacheCreationTokens"], t["cacheReadTokens"],
            t["totalCost"]) == CCUSAGE_TOTALS


def test_tokens_per_session_match_ccusage(ch: ClickHouse, pricing: Any) -> None:
    # ccusage's session report counts assistant lines only: ccstream's responses kept from an assistant line
    cost = pricing.sql_cost_expr(fast="speed = 'fast'", web_search_requests="web_search_requests")
    assistant = ch.query_dicts(
        "SELECT ccusage_project AS project, ccusage_session AS session, sum(input_tokens) AS i, "
        "sum(output_tokens) AS o, sum(cache_creation_input_tokens) AS cc, sum(cache_read_input_tokens) AS cr, "
        f"sum({cost}) AS cost FROM token_usage WHERE source = 'assistant' GROUP BY project, session")
    assert {(r["project"], r["session"]): (r["i"], r["o"], r["cc"], r["cr"]) for r in assistant} == {
        k: v[:4] for k, v in CCUSAGE_SESSIONS.items()}
    for r in assistant:  # the price table reproduces ccusage's cost session by session
        assert r["cost"] == pytest.approx(CCUSAGE_SESSIONS[(r["project"], r["session"])][4], abs=1e-6)
    # everything ccstream reports: the session report plus the echo-only responses, exactly where they are
    rows = q.tokens(ch.query_dicts, ["session"], q.Filters(), pricing, grouping="ccusage")
    got = {(r["project"], r["session"]): (r["input_tokens"], r["output_tokens"], r["cache_creation_input_tokens"],
                                          r["cache_read_input_tokens"]) for r in rows}
    zero = (0, 0, 0, 0, 0)
    assert got == {k: tuple(a + b for a, b in zip(v[:4], ECHO_ONLY.get(k, zero)[1:], strict=True))
                   for k, v in CCUSAGE_SESSIONS.items()}
    assert len(rows) == 52
    echoes = ch.query_rows("SELECT ccusage_project, ccusage_session, count(), sum(input_tokens), "
                           "sum(output_tokens), sum(cache_creation_input_tokens), sum(cache_read_input_tokens), "
                           "min(agent_id != ''), min(is_sidechain) FROM token_usage WHERE source = 'echo' "
                           "GROUP BY 1, 2")
    assert {(r[0], r[1]): tuple(r[2:7]) for r in echoes} == ECHO_ONLY
    assert all(r[7] == 1 and r[8] == 1 for r in echoes)  # attributed to the subagent, a sidechain


def test_token_totals_match_ccusage(ch: ClickHouse, pricing: Any) -> None:
    t = q.token_totals(ch.query_dicts, q.Filters(), pricing)
    assert (t["input_tokens"], t["output_tokens"], t["cache_creation_input_tokens"],
            t["cache_read_input_tokens"]) == DAILY_TOTALS[:4]
    assert t["cost_usd"] == pytest.approx(DAILY_TOTALS[4], abs=1e-5)
    assert t["unpriced_models"] == []
    # (message.id, requestId) groups: 2,564 kept from assistant lines (out of 5,489 assistant objects) and 203
    # that only echoes recorded (out of 389 echo lines)
    assert t["responses"] == 2564 + 203
    assert ch.query_rows("SELECT source, count() FROM token_usage GROUP BY source ORDER BY source") == [
        ("assistant", 2564), ("echo", 203)]
    assert ch.query_rows("SELECT sum(input_tokens), sum(output_tokens), sum(cache_creation_input_tokens), "
                         "sum(cache_read_input_tokens) FROM token_usage WHERE source = 'assistant'") == [
        CCUSAGE_TOTALS[:4]]
    assert ch.query_rows("SELECT count() FROM claude_raw_traces FINAL WHERE type = 'assistant'") == [(5_489,)]


def test_ccstream_session_grouping_differs_only_where_documented(ch: ClickHouse, pricing: Any) -> None:
    rows = q.tokens(ch.query_dicts, ["session"], q.Filters(), pricing)
    got = {r["session"]: (r["input_tokens"], r["output_tokens"], r["cache_creation_input_tokens"],
                          r["cache_read_input_tokens"]) for r in rows}
    # against ccstream's ccusage grouping (same responses, grouped by file path as ccusage does)
    cc = {r["session"]: (r["input_tokens"], r["output_tokens"], r["cache_creation_input_tokens"],
                         r["cache_read_input_tokens"])
          for r in q.tokens(ch.query_dicts, ["session"], q.Filters(), pricing, grouping="ccusage")}
    # by sessionId: the flat legacy agent file joins its parent session; the 1.0.31 file holding two
    # sessions splits; the copilot fixture is its own id rather than ccusage's folder name "fixtures";
    # example.jsonl (a copy of the start of example2) is session 2fc9b73b…, and the marot test files
    # (short, subagent, tool_heavy) carry real session ids.
    moved = {"agent-af1ff21", "c45af7b1-cb7c-4e51-93db-8cbb250a877a", "example", "example2", "fixtures",
             "short", "subagent", "tool_heavy"}
    assert {s: v for s, v in got.items() if s in cc and s not in moved} == {
        s: v for s, v in cc.items() if s not in moved}
    assert got["c45af7b1-cb7c-4e51-93db-8cbb250a877a"] == tuple(
        a + b for a, b in zip(cc["c45af7b1-cb7c-4e51-93db-8cbb250a877a"], cc["agent-af1ff21"], strict=True))
    assert got["553dd2b5-8a53-4fbf-9db2-240632522fe5"] == cc["fixtures"]
    first, second = got["2fc9b73b-2bd2-497c-a77b-3a272bf84e1f"], got["ec5cec52-c3e8-4504-92cf-74c7778052ee"]
    assert tuple(a + b for a, b in zip(first, second, strict=True)) == tuple(
        a + b for a, b in zip(cc["example"], cc["example2"], strict=True))
    assert len(rows) == 51
    assert sum(r["output_tokens"] for r in rows) == DAILY_TOTALS[1]


def test_views_on_a_store_filled_before_them_and_repeats(chdb_dir: Path, corpus: Path, pricing: Any) -> None:
    """Rows stored before migration 2 are backfilled; a second backfill and re-delivered chunks change nothing."""
    from stream.store.writer import TraceWriter

    client = connect(f"chdb://{chdb_dir}?database=t_backfill_{uuid.uuid4().hex[:6]}")
    # the tables and the extraction of migration 3 only: no analytics views, echoes stored without their
    # message columns (as every store before migration 4 holds them)
    migrate(client, [m for m in MIGRATIONS if m.version in (1, 3)])
    files = [corpus / "marot__spotter" / f"{SESSION}.jsonl",
             *sorted((corpus / "marot__spotter" / SESSION / "subagents").glob("*.jsonl"))]
    chunks = [c for f in files for c in chunks_of(f, corpus, size=300)]
    TraceWriter(client).write_chunks(chunks[:3], "before")
    assert migrate(client, MIGRATIONS) == [2, 4, 5]
    TraceWriter(client).write_chunks(chunks[3:], "after")  # through the materialized view
    want = CCUSAGE_SESSIONS[("marot__spotter", SESSION)]

    def got() -> tuple[int, int, int, int]:
        t = q.token_totals(client.query_dicts, q.Filters(), pricing)
        return (t["input_tokens"], t["output_tokens"], t["cache_creation_input_tokens"],
                t["cache_read_input_tokens"])

    assert got() == want[:4]
    # rows stored before migration 4 keep their columns (echoes without message columns); the backfill reads
    # those from the raw line (an echo-only response through that path: test_accounting.py)
    assert client.query_rows("SELECT count() FROM claude_raw_traces FINAL WHERE progress_type = 'agent_progress' "
                             "AND message_id = '' AND raw LIKE '%\"type\":\"assistant\"%'")[0][0] > 0
    client.command(TOKEN_USAGE_GROUPS_BACKFILL)  # the migration's backfill once more
    TraceWriter(client).write_chunks(chunks[:5], "again")  # a re-delivery under a new token
    assert got() == want[:4]
    assert client.query_rows("SELECT count() FROM claude_raw_traces FINAL") == [(1661,)]
    # `ccstream status` counts identities: the re-delivered rows do not count twice even before a merge
    assert q.store_status(client.query_dicts)["rows"] == 1661


def test_tokens_by_day_with_filters(ch: ClickHouse, pricing: Any) -> None:
    rows = q.tokens(ch.query_dicts, ["day"], q.Filters(since=q.parse_day("20260210"),
                                                         until=q.parse_day("2026-02-11")), pricing)
    # as ccusage daily (tests/fixtures/ccusage/daily.json): 2026-02-10 holds 5 echo-only responses
    assert [(str(r["day"]), r["responses"], r["output_tokens"]) for r in rows] == [
        ("2026-02-10", 48, 3_046), ("2026-02-11", 324, 79_614)]
    spotter = q.tokens(ch.query_dicts, ["project"], q.Filters(project="SPOTTER-dov"), pricing)
    assert [(r["project"], r["output_tokens"]) for r in spotter] == [
        ("/home/USER/projects/spotter-worktrees/spotter-dov", 28_899)]


def test_sql_cost_matches_python_cost(ch: ClickHouse, pricing: Any) -> None:
    expr = pricing.sql_cost_expr(model="m", input_tokens="i", output_tokens="o", cache_creation="cc",
                                 cache_read="cr", cache_creation_1h="h")
    for model in ["claude-opus-4-6", "claude-opus-4-1-20250805", "claude-opus-4-20250514",
                  "us.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-3-5-haiku-20241022", "gpt-4o"]:
        got = ch.query_rows(f"SELECT {expr} FROM (SELECT {{m:String}} AS m, toUInt64(1000) AS i, "
                            "toUInt64(2000) AS o, toUInt64(30000) AS cc, toUInt64(400000) AS cr, toUInt64(10000) AS h)",
                            {"m": model})[0][0]
        want = pricing.cost(model, 1000, 2000, 30000, 400000, 10000)
        assert got == pytest.approx(want or 0.0, abs=1e-12), model


# ---- sessions, tools, subagents -----------------------------------------------------------------------------


def test_session_summary(ch: ClickHouse, pricing: Any) -> None:
    rows = {r["session_id"]: r for r in q.sessions(ch.query_dicts, q.Filters(), pricing)}
    assert len(rows) == 51  # ids that only file-history-snapshot lines named (a file stem) are not sessions
    s = rows[SESSION]
    assert (s["turns"], s["lines"], s["files"], s["tool_calls"], s["tool_errors"], s["compactions"],
            s["subagents"], s["api_errors"]) == (3, 1661, 3, 183, 13, 1, 2, 0)
    assert s["models"] == ["claude-opus-4-6", "claude-sonnet-4-5-20250929"]
    assert str(s["started_at"]).startswith("2026-02-12 16:02:23.545")
    assert s["duration_s"] == pytest.approx(18070.661)
    assert (s["input_tokens"], s["output_tokens"]) == CCUSAGE_SESSIONS[("marot__spotter", SESSION)][:2]
    assert s["cost_usd"] == pytest.approx(CCUSAGE_SESSIONS[("marot__spotter", SESSION)][4], abs=1e-6)
    assert s["project"] == "/home/USER/projects/spotter-worktrees/spotter-dov"


def test_tool_calls_join_results_and_subagents(ch: ClickHouse) -> None:
    task = ch.query_dicts("SELECT * FROM tool_calls WHERE tool_use_id = 'toolu_017pLRuPHYTX5t99EnLyV53m'")[0]
    assert (task["tool_name"], task["session_id"], task["result_agent_id"], task["subagent_type"],
            task["is_error"], task["has_result"]) == ("Task", SESSION, "a2898e3", "Explore", 0, 1)
    # the Task line (2026-02-12T16:02:46.148Z) to its result line (16:05:08.022Z), from the file
    assert task["duration_ms"] == 141_874
    top = q.tools(ch.query_dicts, q.Filters(), limit=3)
    assert [(r["tool_name"], r["calls"], r["errors"]) for r in top] == [
        ("Bash", 1117, 92), ("Edit", 562, 21), ("Read", 530, 19)]
    totals = ch.query_rows("SELECT count(), countIf(has_result) FROM tool_calls")
    assert totals == [(2834, 2829)]


def test_subagent_tree(ch: ClickHouse) -> None:
    tree = q.subagent_tree(q.subagents(ch.query_dicts, SESSION))
    assert [(d, r["agent_id"], r["link"], r["subagent_type"], r["lines"]) for d, r in tree] == [
        (0, "a2898e3", "task", "Explore", 144), (0, "acompact-e1f845", "compaction", "", 5)]
    orphan = q.subagents(ch.query_dicts, "6c2214d7-b87e-4432-8e41-22ba294ea584")
    assert [(r["agent_id"], r["link"], r["lines"]) for r in orphan] == [("afc096d", "unlinked", 199)]
    # Entire copies keep no subagent files: the agents are known from the Task results only
    entire = q.subagents(ch.query_dicts, "9ff9c26d-319d-4a47-843a-3d60f73295c9")
    assert len(entire) == 5 and {(r["link"], r["has_file"], r["lines"]) for r in entire} == {("task", 0, 0)}


# ---- the CLI --------------------------------------------------------------------------------------------


def test_show_reconstructs_the_conversation(ch: ClickHouse, corpus: Path) -> None:
    doc = json.loads(run_cli(cli.main_show, ["4d5611e5", "--json", "--progress"], ch))
    assert doc["session_id"] == SESSION
    turns = doc["turns"]
    main_file = corpus / "marot__spotter" / f"{SESSION}.jsonl"
    main_objs = [json.loads(x) for x in main_file.read_text().splitlines()]
    main_uuids = [o["uuid"] for o in main_objs if o.get("uuid")]
    assert [t["uuid"] for t in turns if t["depth"] == 0] == main_uuids
    assert len(turns) == 1497 + 144 + 5
    k = next(i for i, t in enumerate(turns) if any(u["id"] == "toolu_017pLRuPHYTX5t99EnLyV53m" for u in t["tool_uses"]))
    assert [t["depth"] for t in turns[k:k + 146]] == [0] + [1] * 144 + [0]
    assert [(s["agent_id"], s["link"]) for s in doc["subagents"]] == [("a2898e3", "task"), ("acompact-e1f845",
                                                                                              "compaction")]
    # without --progress the progress lines are left out
    plain = json.loads(run_cli(cli.main_show, [SESSION, "--json"], ch))
    assert all(t["kind"] != "progress" for t in plain["turns"]) and len(plain["turns"]) == 1646 - 1083 - 70


def test_show_raw_prints_every_stored_line(ch: ClickHouse, corpus: Path) -> None:
    text = run_cli(cli.main_show, [SESSION, "--raw"], ch)
    files = [corpus / "marot__spotter" / f"{SESSION}.jsonl", *sorted(
        (corpus / "marot__spotter" / SESSION / "subagents").glob("*.jsonl"))]
    want = sorted(x for f in files for x in f.read_text().splitlines())
    assert sorted(text.splitlines()) == want
    table = run_cli(cli.main_show, [SESSION], ch)
    assert "subagent a2898e3 (Explore: Explore transcript rendering codebase)" in table
    assert "→ Task(" in table


def test_show_unknown_session(ch: ClickHouse, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main_show(["nope"], query=ch.query_dicts, out=io.StringIO()) == 1
    assert "no session 'nope'" in capsys.readouterr().err


def test_tokens_cli_json_and_csv(ch: ClickHouse, pricing: Any) -> None:
    doc = json.loads(run_cli(cli.main_tokens, ["--by", "day", "--json", "--since", "2026-02-12",
                                               "--until", "2026-02-12"], ch, pricing=pricing))
    assert doc["by"] == ["day"] and doc["pricing"]["date"] == "2026-12-03"
    assert [(r["day"], r["output_tokens"], r["models"]) for r in doc["rows"]] == [
        ("2026-02-12", 114_688, ["claude-haiku-4-5-20251001", "claude-opus-4-6", "claude-sonnet-4-5-20250929"])]
    assert doc["totals"]["output_tokens"] == 114_688
    text = run_cli(cli.main_tokens, ["--by", "session", "--grouping", "ccusage", "--csv"], ch, pricing=pricing)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 52
    assert sum(int(r["output_tokens"]) for r in rows) == DAILY_TOTALS[1]
    table = run_cli(cli.main_tokens, ["--by", "model"], ch, pricing=pricing)
    assert "claude-opus-4-6" in table and "453,920" in table


def test_sessions_cli(ch: ClickHouse, pricing: Any) -> None:
    doc = json.loads(run_cli(cli.main_sessions, ["--json", "--project", "spotter-dov"], ch, pricing=pricing))
    assert [r["session_id"] for r in doc] == [SESSION]
    assert doc[0]["started_at"] == "2026-02-12T16:02:23.545Z"
    assert doc[0]["models"] == ["claude-opus-4-6", "claude-sonnet-4-5-20250929"]
    day = json.loads(run_cli(cli.main_sessions, ["--json", "--since", "20260212", "--until", "20260212"], ch,
                             pricing=pricing))
    assert [r["session_id"] for r in day] == [
        SESSION, "fa812bfe-b295-4cca-9c2f-fdf01028cb46", "ae4a77f8-aedd-4bc1-888f-c94edc91af04"]
    table = run_cli(cli.main_sessions, ["--limit", "3"], ch, pricing=pricing)
    assert "c010174c" in table and "3 sessions" in table


def test_tools_and_status_cli(ch: ClickHouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = json.loads(run_cli(cli.main_tools, ["--json", "--limit", "2"], ch))
    assert [(r["tool_name"], r["calls"], r["error_rate"]) for r in doc] == [("Bash", 1117, 0.0824),
                                                                            ("Edit", 562, 0.0374)]
    monkeypatch.setenv("CCSTREAM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("CCSTREAM_REDIS_URL", raising=False)
    monkeypatch.delenv("CCSTREAM_KAFKA_BOOTSTRAP", raising=False)
    status = json.loads(run_cli(cli.main_status, ["--json"], ch))
    assert status["store"]["rows"] == 18_918 and status["store"]["dead_letters"] == 0
    # record types extraction does not model, stored raw and counted (the corpus has 17 summaries, 2 pr-links)
    assert status["store"]["unmodelled_types"] == {"summary": 17, "pr-link": 2}
    assert status["pricing"]["unpriced_models"] == []
    assert status["followed_files"] == 63
    assert status["redis"] == {"state": "not configured and `ccstream up` not running"}


def test_status_reports_redis_and_kafka_lag(ch: ClickHouse, redis_server: Any, tansu: Any, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Fed: 3 hook events in the Redis stream, 1 of them read by the bridge group and not acked; 5 raw
    chunks in Kafka that the sink's group never consumed, 2 tail requests for a split `up`'s edge group.
    Out: length 3, pending 1, lag 2; Kafka lag 5 for the sink's group, 2 for the edge's, each by name."""
    import asyncio

    import redis
    from aiokafka import AIOKafkaProducer

    prefix = f"st{uuid.uuid4().hex[:6]}"
    key = f"{prefix}:sessions"
    r = redis.Redis.from_url(redis_server.url)
    r.xgroup_create(key, "ccstream-bridge", id="0", mkstream=True)
    for i in range(3):
        r.xadd(key, {"event": str(i)})
    r.xreadgroup("ccstream-bridge", "c1", {key: ">"}, count=1)

    async def produce() -> None:
        p = AIOKafkaProducer(bootstrap_servers=tansu.bootstrap)
        await p.start()
        try:
            for _ in range(5):
                await p.send_and_wait(f"{prefix}.raw-events", b"chunk", key=b"s")
            for _ in range(2):
                await p.send_and_wait(f"{prefix}.ccstream-edge.tail-requests", b"request", key=b"s")
        finally:
            await p.stop()

    asyncio.run(produce())
    for name, value in {"DATA_DIR": str(tmp_path), "REDIS_URL": redis_server.url, "STREAM_KEY": key,
                        "KAFKA_BOOTSTRAP": tansu.bootstrap, "TOPIC_PREFIX": prefix}.items():
        monkeypatch.setenv(f"CCSTREAM_{name}", value)
    status = json.loads(run_cli(cli.main_status, ["--json"], ch))
    assert {k: status["redis"][k] for k in ("length", "pending", "lag")} == {"length": 3, "pending": 1, "lag": 2}
    kafka = status["kafka"]
    assert kafka["groups"] == "ccstream, ccstream-edge"
    assert (kafka[f"{prefix}.raw-events end"], kafka[f"{prefix}.raw-events lag (ccstream)"]) == (5, 5)
    edge_requests = f"{prefix}.ccstream-edge.tail-requests"
    assert (kafka[f"{edge_requests} end"], kafka[f"{edge_requests} lag (ccstream-edge)"]) == (2, 2)
    assert f"{edge_requests} lag (ccstream)" not in kafka  # the sink's group never reads the edge's queue
    assert kafka[f"{prefix}.sessions"] == "no such topic yet"
