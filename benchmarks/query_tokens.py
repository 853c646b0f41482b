"""Token usage by session by day over ~1M rows: p50 of the analytics query (target < 200 ms).

Data: the fixture corpus (18,918 objects) extracted into chDB, then replayed 52 times inside ClickHouse under
new ids (session, file, uuid, message and request ids, tool ids) and shifted by a week per copy, so every
copy is a distinct set of sessions and API responses: 53 x 18,918 = 1,002,654 rows of claude_raw_traces.
The measured query is exactly what `ccstream tokens --by session,day` runs (queries.tokens_sql: the
ccusage-style dedup view token_usage over its insert-time aggregate, cost applied from the price table), through the same
clickhouse-connect client the worker uses, result rows converted to dicts included.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.report import write_section

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "fixtures" / "claude-code" / "projects"
COPIES = 52  # replays on top of the original
RUNS = 15

# how each column of a replayed copy is derived from the original row and the copy number n
_ID = "if({c} = '', '', toString(reinterpretAsUUID(MD5(concat({c}, '#', toString(n))))))"
REWRITE = {
    "file_id": "substring(hex(MD5(concat(file_id, '#', toString(n)))), 1, 16)",
    "file_path": "replaceOne(file_path, '/projects/', concat('/projects/replay', toString(n), '-'))",
    "session_id": _ID.format(c="session_id"),
    "uuid": _ID.format(c="uuid"),
    "parent_uuid": _ID.format(c="parent_uuid"),
    "logical_parent_uuid": _ID.format(c="logical_parent_uuid"),
    "timestamp": "timestamp + toIntervalDay(7 * n)",
    "message_id": "if(message_id = '', '', concat(message_id, '_r', toString(n)))",
    "request_id": "if(request_id = '', '', concat(request_id, '_r', toString(n)))",
    "tool_use_ids": "arrayMap(x -> concat(x, '_r', toString(n)), tool_use_ids)",
    "tool_result_ids": "arrayMap(x -> concat(x, '_r', toString(n)), tool_result_ids)",
    "ingested_at": "now64(3)",
}


def records_of(path: Path) -> list[Any]:
    from stream.contract.raw_chunk import Record

    dec = json.JSONDecoder()
    out, offset = [], 0
    for line_no, line in enumerate(path.read_bytes().split(b"\n"), 1):
        text, i = line.decode(), 0
        while i < len(text):
            _, j = dec.raw_decode(text, i)
            out.append(Record(offset + len(text[:i].encode()), line_no, text[i:j].encode()))
            i = j
        offset += len(line) + 1
    return out


def load_seed(ch: Any) -> int:
    from stream.contract.identity import file_id_for
    from stream.contract.raw_chunk import RawChunk
    from stream.store.extract import RAW_TRACES_COLUMNS, extract_chunk

    now = dt.datetime.now(dt.UTC)
    n = 0
    for path in sorted(CORPUS.rglob("*.jsonl")):
        rel = path.relative_to(CORPUS).parts
        session = rel[-3] if len(rel) >= 4 and rel[-2] == "subagents" else path.stem
        agent = path.stem[6:] if path.stem.startswith("agent-") else None
        recs = records_of(path)
        chunk = RawChunk.from_records("bench", "bench", str(path), file_id_for("bench", str(path)), 0, "", session, agent,
                         recs, path.stat().st_size, recs[-1].line_no if recs else 0)
        rows = extract_chunk(chunk, now)
        ch.insert("claude_raw_traces", rows, RAW_TRACES_COLUMNS)
        n += len(rows)
    return n


def replay_copies(ch: Any, copies: int) -> None:
    from stream.store.extract import RAW_TRACES_COLUMNS

    cols = ", ".join(RAW_TRACES_COLUMNS)
    select = ", ".join(REWRITE.get(c, c) for c in RAW_TRACES_COLUMNS)
    ch.command("CREATE TABLE seed AS claude_raw_traces")
    ch.command("INSERT INTO seed SELECT * FROM claude_raw_traces")
    for n0 in range(1, copies + 1, 13):  # a few copies per INSERT keeps memory modest
        n1 = min(n0 + 13, copies + 1)
        ch.command(f"INSERT INTO claude_raw_traces ({cols}) SELECT {select} FROM seed "
                   f"ARRAY JOIN range({n0}, {n1}) AS n")
    ch.command("DROP TABLE seed")


def timed(ch: Any, sql: str, params: dict[str, Any] | None, runs: int) -> tuple[list[float], int]:
    rows = ch.query_dicts(sql, params)  # warm-up (first read of the parts)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        rows = ch.query_dicts(sql, params)
        times.append((time.perf_counter() - t0) * 1000)
    return times, len(rows)


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(REPO))
    from stream.analytics import queries as q
    from stream.analytics.pricing import load_pricing
    from stream.store.client import connect
    from stream.store.schema import MIGRATIONS, migrate

    pricing = load_pricing(env={})
    with tempfile.TemporaryDirectory(prefix="ccstream-bench-q-") as tmp:
        ch = connect(f"chdb://{tmp}/chdb?database=bench")
        migrate(ch, MIGRATIONS)
        t0 = time.monotonic()
        seed = load_seed(ch)
        t1 = time.monotonic()
        replay_copies(ch, COPIES)
        t2 = time.monotonic()
        total = int(ch.query_rows("SELECT count() FROM claude_raw_traces")[0][0])
        parts = int(ch.query_rows("SELECT count() FROM system.parts WHERE active AND database = 'bench' "
                                  "AND table = 'claude_raw_traces'")[0][0])
        assistant = int(ch.query_rows("SELECT count() FROM claude_raw_traces WHERE type = 'assistant'")[0][0])
        sql = q.tokens_sql(["session", "day"], q.Filters(), pricing)
        load = os.getloadavg()[0]
        times, nrows = timed(ch, sql, None, RUNS)
        check = q.token_totals(ch.query_dicts, q.Filters(), pricing)
        by_day_times, _ = timed(ch, q.tokens_sql(["day"], q.Filters(), pricing), None, RUNS)
        ses_times, nses = timed(ch, q.sessions_sql(q.Filters(), pricing), None, 5)
        ch.command("OPTIMIZE TABLE claude_raw_traces FINAL")
        opt_times, _ = timed(ch, sql, None, RUNS)
        ch.close()

    def p(ts: list[float], k: float) -> float:
        return sorted(ts)[min(len(ts) - 1, int(round(k * (len(ts) - 1))))]

    p50 = statistics.median(times)
    ok = p50 < 200
    print(f"{total:,} rows ({parts} parts; {assistant:,} assistant lines); tokens by session,day: {nrows:,} rows, "
          f"p50 {p50:.0f} ms, p95 {p(times, 0.95):.0f} ms (target < 200 ms: {'met' if ok else 'MISSED'}); "
          f"output tokens {check['output_tokens']:,} = 53 x 452,387: {check['output_tokens'] == 53 * 452_387}")
    write_section("query-tokens", f"""## Token usage by session by day over 1M rows (`python -m benchmarks query_tokens`)

Data: the fixture corpus ({seed:,} objects) loaded into chDB, then replayed {COPIES} times under new ids (session,
file, uuid, message/request and tool ids; timestamps shifted a week per copy): **{total:,} rows** of
`claude_raw_traces` ({assistant:,} assistant lines), {parts} active parts as inserted. Query: what
`ccstream tokens --by session,day` runs (the `token_usage` view: `(message_id, request_id)` dedup over the
insert-time aggregate `token_usage_state`, fed by a materialized view; then cost per model from the price
table), {RUNS} runs after one warm-up, through clickhouse-connect's chDB client, rows converted to dicts.
The machine is shared (2 cores): the load average at the start of the runs was {load:.2f}.

| query | result rows | p50 | p95 | min |
|---|---:|---:|---:|---:|
| tokens by session, day (as inserted) | {nrows:,} | **{p50:.0f} ms** | {p(times, 0.95):.0f} ms | {min(times):.0f} ms |
| tokens by session, day (after `OPTIMIZE … FINAL`) | {nrows:,} | {statistics.median(opt_times):.0f} ms | {p(opt_times, 0.95):.0f} ms | {min(opt_times):.0f} ms |
| tokens by day | — | {statistics.median(by_day_times):.0f} ms | {p(by_day_times, 0.95):.0f} ms | {min(by_day_times):.0f} ms |
| sessions list (`ccstream sessions`, all {nses:,}) | {nses:,} | {statistics.median(ses_times):.0f} ms | {p(ses_times, 0.95):.0f} ms | {min(ses_times):.0f} ms |

Target p50 < 200 ms: **{'met' if ok else 'missed'}**. Sanity: deduplicated output tokens over all copies =
{check['output_tokens']:,} (53 x 452,387 = {53 * 452_387:,}). Loading the seed took {t1 - t0:.1f} s and the
replay INSERT … SELECT {t2 - t1:.1f} s (not part of the figure).""")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
