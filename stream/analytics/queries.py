"""The analytics queries: filters in, rows (dicts) out.

Each function takes a ``Query`` callable, ``(sql, parameters) -> list[dict]``, so the same code runs through
the worker's web server (``stream.analytics.sqlclient.run_query``), on a store opened directly, or on a ClickHouse
client's ``query_dicts`` in tests. User input only ever reaches ClickHouse as ``{name:Type}`` parameters;
the only SQL built from data is the cost expression, generated from the price table.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from stream.analytics.pricing import PriceTable
from stream.store.views import TOKEN_USAGE_V4

Query = Callable[[str, dict[str, Any] | None], list[dict[str, Any]]]

TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")

# --by dimensions of `ccstream tokens`: name -> (SQL expression over token_usage, output column)
DIMENSIONS: dict[str, str] = {
    "day": "day",
    "session": "session_id",
    "model": "model",
    "project": "project",
    "host": "host",
    "user": "user",
    "agent": "agent_id",
    # calendar periods: rewritten for --timezone and the first day of the week by _period_expr
    "week": "toStartOfWeek(day, 0)",
    "month": "formatDateTime(day, '%Y-%m')",
}
PERIODS = ("day", "week", "month")
WEEK_MODES = {"sunday": 0, "monday": 1}  # toStartOfWeek's mode: the week's first day (ccusage: sunday)
# ccusage's grouping (by file path), for comparing with `ccusage claude session`
CCUSAGE_DIMENSIONS: dict[str, str] = {"session": "ccusage_session", "project": "ccusage_project"}


@dataclass(frozen=True, slots=True)
class Filters:
    since: dt.date | None = None  # inclusive, a day in ``timezone`` (UTC when None)
    until: dt.date | None = None  # inclusive, likewise
    project: str | None = None  # substring of the project path (cwd), case-insensitive
    timezone: str | None = None  # IANA name the days are taken in (since/until, --by day/week/month); None: UTC

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.since is not None:
            out["since"] = self.since.isoformat()
        if self.until is not None:
            out["until"] = self.until.isoformat()
        if self.project:
            out["project"] = self.project
        return out


def parse_day(text: str) -> dt.date:
    """YYYY-MM-DD or YYYYMMDD (ccusage's form)."""
    text = text.strip()
    if re.fullmatch(r"\d{8}", text):
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return dt.date.fromisoformat(text)


_TZ_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$")


def tz_literal(name: str) -> str:
    """A timezone name as a SQL string literal (toDate's timezone must be a constant, not a parameter);
    only IANA-shaped names pass, so nothing else reaches the SQL."""
    if not _TZ_NAME.match(name):
        raise ValueError(f"{name!r} is not a timezone name (e.g. UTC, Europe/Berlin)")
    return f"'{name}'"


def _to_date(expr: str, filters: Filters) -> str:
    """The day of a DateTime (or of token_usage's ``day``) in the filters' timezone."""
    if not filters.timezone:
        return f"toDate({expr})"
    return f"toDate({'timestamp' if expr == 'day' else expr}, {tz_literal(filters.timezone)})"


def _period_expr(name: str, filters: Filters, week_start: str = "sunday") -> str:
    day = _to_date("day", filters) if filters.timezone else "day"
    if name == "day":
        return day
    if name == "week":
        return f"toStartOfWeek({day}, {WEEK_MODES[week_start]})"
    return f"formatDateTime({day}, '%Y-%m')"


def _where(filters: Filters, day: str, project: str = "project", start: str | None = None) -> list[str]:
    """Conditions for a relation with a day expression (or a start..end span when ``start`` is given)."""
    conds: list[str] = []
    if filters.since is not None:
        conds.append(f"{_to_date(day, filters)} >= {{since:Date}}")
    if filters.until is not None:
        conds.append(f"{_to_date(start or day, filters)} <= {{until:Date}}")
    if filters.project:
        conds.append(f"positionCaseInsensitive({project}, {{project:String}}) > 0")
    return conds


def _and(conds: Sequence[str]) -> str:
    return " AND ".join(conds) if conds else "1"


def _cost(pricing: PriceTable) -> str:
    """Cost of the inner aggregates t_in/t_out/t_cc/t_cr/t_cc1h/t_ws, the price row bound once as t_pidx; the
    aggregates are grouped by model, fast mode (t_fast) and prompt band (t_band), so tiers price right."""
    return pricing.sql_cost_expr(model="model", input_tokens="t_in", output_tokens="t_out", cache_creation="t_cc",
                                 cache_read="t_cr", cache_creation_1h="t_cc1h", price_index="t_pidx",
                                 fast="t_fast", prompt_band="t_band", web_search_requests="t_ws")


# The sum of per-group costs, the same whatever order ClickHouse adds the groups in: a Float64 sum depends on
# the order (parallel aggregation), which moved the sixth decimal between two runs of one query.
COST_SUM = "toFloat64(sum(toDecimal128(t_cost, 12)))"


def priced_groups(pricing: PriceTable) -> tuple[str, str, str]:
    """(select list, group keys, outer aggregates) shared by every query that prices token_usage: per request
    fast mode and prompt band go into the grouping, the sums are priced per group, and models without a price
    are collected by name (`unpriced_models`) so they never pass as free."""
    band = pricing.sql_prompt_band("input_tokens + cache_creation_input_tokens + cache_read_input_tokens")
    select = f"""model,
        speed = 'fast' AS t_fast,
        {band} AS t_band,
        count() AS t_responses,
        sum(input_tokens) AS t_in,
        sum(output_tokens) AS t_out,
        sum(cache_creation_input_tokens) AS t_cc,
        sum(cache_read_input_tokens) AS t_cr,
        sum(cache_creation_1h) AS t_cc1h,
        sum(web_search_requests) AS t_ws,
        sum(web_fetch_requests) AS t_wf,
        {pricing.sql_price_index("model")} AS t_pidx,
        {_cost(pricing)} AS t_cost"""
    outer = ("arraySort(groupUniqArrayIf(model, t_pidx = 0 AND model NOT IN ('', '<synthetic>'))) "
             "AS unpriced_models")
    return select, "model, t_fast, t_band", outer


# ---- tokens -------------------------------------------------------------------------------------------


def _token_dims(by: Sequence[str], filters: Filters, grouping: str, week_start: str) -> list[tuple[str, str]]:
    """(name, SQL expression over token_usage) of each ``--by`` dimension, in order."""
    if not by:
        raise ValueError("group by at least one of: " + ", ".join(DIMENSIONS))
    dims: list[tuple[str, str]] = []
    for name in by:
        if name not in DIMENSIONS:
            raise ValueError(f"unknown dimension {name!r}; known: {', '.join(DIMENSIONS)}")
        col = CCUSAGE_DIMENSIONS.get(name, DIMENSIONS[name]) if grouping == "ccusage" else DIMENSIONS[name]
        if name in PERIODS:
            col = _period_expr(name, filters, week_start)
        dims.append((name, col))
    if grouping == "ccusage" and "session" in by and "project" not in by:
        dims.insert(0, ("project", CCUSAGE_DIMENSIONS["project"]))  # a ccusage session is (project, session)
    return dims


def tokens_sql(by: Sequence[str], filters: Filters, pricing: PriceTable, grouping: str = "ccstream",
               week_start: str = "sunday") -> str:
    """Token usage and cost grouped by the ``by`` dimensions (in that order)."""
    dims = _token_dims(by, filters, grouping, week_start)
    inner_keys = ", ".join(f"{col} AS k_{name}" for name, col in dims)
    outer_keys = ", ".join(f"k_{name} AS {name}" for name, _ in dims)
    group_inner = ", ".join(f"k_{name}" for name, _ in dims)
    select, groups, unpriced = priced_groups(pricing)
    where = _and(_where(filters, "day"))
    return f"""
SELECT
    {outer_keys},
    {_TOKEN_SUMS},
    arraySort(groupUniqArrayIf(model, model NOT IN ('', '<synthetic>'))) AS models,
    {unpriced}
FROM
(
    SELECT
        {inner_keys},
        {select}
    FROM token_usage
    WHERE {where}
    GROUP BY {group_inner}, {groups}
)
GROUP BY {group_inner}
ORDER BY {group_inner}
"""


def _responses_final() -> str:
    """`token_usage` with the winner of each (message_id, group_key) taken by sorting instead of ~20 argMin
    aggregates: token_usage_groups FINAL (rows of equal (message_id, group_key, neg_total) merged as the
    table's own merges would: min/max per column), ordered by the table's key, first row of each group (the
    smallest neg_total = the largest total). The outer columns (day, source, ccusage_*) are the view's own
    text (stream/store/views.py), so the relation is the view's. Where tied lines agree, which every repeated
    line of one response does, the two are equal to the token; where they did not, the view's argMin would pick
    one of them by part order and this takes what the merge keeps. On the 1.5 GB store: 180 -> 130 ms."""
    head = "CREATE OR REPLACE VIEW token_usage AS\n"
    text = TOKEN_USAGE_V4.lstrip()
    select, sep, inner = text[len(head):].partition("\nFROM\n(\n")
    if not text.startswith(head) or not sep or "FROM token_usage_groups\n    GROUP BY message_id, group_key\n)" \
            not in inner:
        raise RuntimeError("stream.store.views.TOKEN_USAGE_V4 changed shape: update queries._responses_final")
    return (f"({select}\nFROM\n(\n    SELECT * FROM token_usage_groups FINAL\n"
            "    ORDER BY message_id, group_key, neg_total\n    LIMIT 1 BY message_id, group_key\n))")


def tokens_with_totals_sql(by: Sequence[str], filters: Filters, pricing: PriceTable, grouping: str = "ccstream",
                           week_start: str = "sunday") -> str:
    """`tokens_sql`'s rows and `token_totals`' row in one query, so the responses are deduplicated once.

    The responses are summed per (keys, model, fast mode, prompt band), integers only. Each of those groups is
    then counted twice (``arrayJoin([0, 1]) AS t_total``): under its keys (the rows) and, with its keys set to
    their type's default, in the totals. Integer sums do not depend on how they are split, so each totals group
    (model, fast mode, band) holds exactly the sums `token_totals` computes from the responses and is priced
    by the same expression on the same numbers: the same Float64 per group, the same Decimal128 sum (a sum of
    the rows' rounded costs would not be). The responses are `_responses_final`'s. ``t_total`` is 1 on the totals row. The outer query reads the model
    as ``t_model``: with `--by model` its own key is named ``model``, and an alias wins over a column."""
    dims = _token_dims(by, filters, grouping, week_start)
    keys = ", ".join(f"k_{name}" for name, _ in dims)
    inner_keys = ", ".join(f"{col} AS k_{name}" for name, col in dims)
    mid_keys = ", ".join(f"if(t_total = 1, defaultValueOfArgumentType(k_{name}), k_{name}) AS m_{name}"
                         for name, _ in dims)
    mids = ", ".join(f"m_{name}" for name, _ in dims)
    outer_keys = ", ".join(f"m_{name} AS {name}" for name, _ in dims)
    band = pricing.sql_prompt_band("input_tokens + cache_creation_input_tokens + cache_read_input_tokens")
    _, groups, _ = priced_groups(pricing)
    where = _and(_where(filters, "day"))
    return f"""
SELECT
    {outer_keys},
    t_total,
    {_TOKEN_SUMS},
    arraySort(groupUniqArrayIf(t_model, t_model NOT IN ('', '<synthetic>'))) AS models,
    arraySort(groupUniqArrayIf(t_model, t_pidx = 0 AND t_model NOT IN ('', '<synthetic>'))) AS unpriced_models
FROM
(
    SELECT
        arrayJoin([0, 1]) AS t_total,
        {mid_keys},
        model AS t_model,
        sum(g_responses) AS t_responses,
        sum(g_in) AS t_in,
        sum(g_out) AS t_out,
        sum(g_cc) AS t_cc,
        sum(g_cr) AS t_cr,
        sum(g_cc1h) AS t_cc1h,
        sum(g_ws) AS t_ws,
        sum(g_wf) AS t_wf,
        {pricing.sql_price_index("model")} AS t_pidx,
        {_cost(pricing)} AS t_cost
    FROM
    (
        SELECT
            {inner_keys},
            model,
            speed = 'fast' AS t_fast,
            {band} AS t_band,
            count() AS g_responses,
            sum(input_tokens) AS g_in,
            sum(output_tokens) AS g_out,
            sum(cache_creation_input_tokens) AS g_cc,
            sum(cache_read_input_tokens) AS g_cr,
            sum(cache_creation_1h) AS g_cc1h,
            sum(web_search_requests) AS g_ws,
            sum(web_fetch_requests) AS g_wf
        FROM {_responses_final()} AS token_usage
        WHERE {where}
        GROUP BY {keys}, {groups}
    )
    GROUP BY t_total, {mids}, {groups}
)
GROUP BY t_total, {mids}
ORDER BY t_total, {mids}
"""


_TOKEN_SUMS = """sum(t_responses) AS responses,
    sum(t_in) AS input_tokens,
    sum(t_out) AS output_tokens,
    sum(t_cc) AS cache_creation_input_tokens,
    sum(t_cr) AS cache_read_input_tokens,
    sum(t_in + t_out + t_cc + t_cr) AS total_tokens,
    sum(t_ws) AS web_search_requests,
    sum(t_wf) AS web_fetch_requests,
    round(toFloat64(sum(toDecimal128(t_cost, 12))), 6) AS cost_usd"""


def tokens(query: Query, by: Sequence[str], filters: Filters, pricing: PriceTable,
           grouping: str = "ccstream", week_start: str = "sunday") -> list[dict[str, Any]]:
    return query(tokens_sql(by, filters, pricing, grouping, week_start), filters.params())


TOTALS_COLUMNS = ("responses", "input_tokens", "output_tokens", "cache_creation_input_tokens",
                  "cache_read_input_tokens", "total_tokens", "web_search_requests", "web_fetch_requests", "cost_usd",
                  "unpriced_models")


def tokens_with_totals(query: Query, by: Sequence[str], filters: Filters, pricing: PriceTable,
                       grouping: str = "ccstream", week_start: str = "sunday"
                       ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """`tokens` and `token_totals` from one query (`tokens_with_totals_sql`); with no response in the filters
    there are no groups, and the totals (zeros) come from `token_totals`."""
    rows: list[dict[str, Any]] = []
    totals: dict[str, Any] | None = None
    for r in query(tokens_with_totals_sql(by, filters, pricing, grouping, week_start), filters.params()):
        if int(r.pop("t_total")):
            totals = {k: r[k] for k in TOTALS_COLUMNS}
        else:
            rows.append(r)
    return rows, totals if totals is not None else token_totals(query, filters, pricing)


def token_totals(query: Query, filters: Filters, pricing: PriceTable) -> dict[str, Any]:
    select, groups, unpriced = priced_groups(pricing)
    sql = f"""
SELECT {_TOKEN_SUMS}, {unpriced}
FROM (
    SELECT {select}
    FROM token_usage WHERE {_and(_where(filters, "day"))} GROUP BY {groups}
)"""
    rows = query(sql, filters.params())
    return rows[0] if rows else {}


def unpriced_models(query: Query, pricing: PriceTable, filters: Filters | None = None) -> list[str]:
    """Models in token_usage (within the filters) that the price table does not know, by name."""
    filters = filters or Filters()
    rows = query(f"SELECT DISTINCT model FROM token_usage WHERE {_and(_where(filters, 'day'))} "
                 f"AND {pricing.sql_price_index('model')} = 0 AND model NOT IN ('', '<synthetic>') ORDER BY model",
                 filters.params())
    return [str(r["model"]) for r in rows]


# ---- sessions -----------------------------------------------------------------------------------------


def sessions_sql(filters: Filters, pricing: PriceTable, limit: int | None = None) -> str:
    select, groups, unpriced = priced_groups(pricing)
    # a session counts for a range it overlaps: ended on/after `since`, started on/before `until`
    where = _and(["messages > 0", *_where(filters, "ended_at", "project", start="started_at")])
    lim = f"LIMIT {int(limit)}" if limit else ""
    return f"""
SELECT
    session_id, host, user, project, git_branch, slug, versions, started_at, ended_at, duration_s,
    turns, messages, lines, files, models, tools_used, tool_calls, tool_errors, api_errors, compactions,
    subagents, responses, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens,
    total_tokens, c.c_web_search AS web_search_requests, round(c.c_cost, 6) AS cost_usd,
    c.unpriced_models AS unpriced_models, o.o_user AS otel_user, round(o.o_cost, 6) AS cc_cost_usd
FROM session_summary AS s
LEFT JOIN
(
    SELECT c_session_id, {COST_SUM} AS c_cost, sum(t_ws) AS c_web_search, {unpriced}
    FROM (
        SELECT session_id AS c_session_id, {select}
        FROM token_usage
        GROUP BY session_id, {groups}
    )
    GROUP BY c_session_id
) AS c ON s.session_id = c.c_session_id
LEFT JOIN
(   -- who, from Claude Code's own telemetry where it is exported to ccstream (docs/otel.md)
    SELECT session_id AS o_session_id, if(user_email != '', user_email, user_account_uuid) AS o_user,
           cc_cost_usd AS o_cost
    FROM otel_sessions
) AS o ON s.session_id = o.o_session_id
WHERE {where}
ORDER BY started_at DESC, session_id
{lim}
"""


def sessions(query: Query, filters: Filters, pricing: PriceTable, limit: int | None = None) -> list[dict[str, Any]]:
    return query(sessions_sql(filters, pricing, limit), filters.params())


def resolve_session(query: Query, prefix: str) -> list[str]:
    """Session ids starting with ``prefix`` (an exact id first)."""
    rows = query(
        "SELECT DISTINCT session_id FROM claude_raw_traces WHERE startsWith(session_id, {p:String}) "
        "ORDER BY session_id != {p:String}, session_id LIMIT 20",
        {"p": prefix},
    )
    return [str(r["session_id"]) for r in rows]


ROW_COLUMNS = ("file_path", "file_id", "incarnation", "byte_offset", "line_no", "agent_id", "type", "subtype",
               "uuid", "parent_uuid", "timestamp", "raw")


def session_rows(query: Query, session_id: str) -> list[dict[str, Any]]:
    """Every stored line of a session (for replay and --raw), in file order."""
    return query(
        f"SELECT {', '.join(ROW_COLUMNS)} FROM claude_raw_traces FINAL WHERE session_id = {{s:String}} "
        "ORDER BY file_path, incarnation, byte_offset",
        {"s": session_id},
    )


# ---- tools and subagents ---------------------------------------------------------------------------------


def tools_sql(filters: Filters, limit: int | None = None) -> str:
    where = _and(_where(filters, "started_at"))
    lim = f"LIMIT {int(limit)}" if limit else ""
    return f"""
SELECT
    tool_name,
    count() AS calls,
    countIf(is_error = 1) AS errors,
    round(errors / calls, 4) AS error_rate,
    countIf(NOT has_result) AS unanswered,
    uniqExact(session_id) AS sessions,
    round(avgIf(duration_ms, has_result)) AS avg_ms,
    round(quantileExactIf(0.5)(duration_ms, has_result)) AS p50_ms,
    round(quantileExactIf(0.95)(duration_ms, has_result)) AS p95_ms
FROM tool_calls
WHERE {where}
GROUP BY tool_name
ORDER BY calls DESC, tool_name
{lim}
"""


def tools(query: Query, filters: Filters, limit: int | None = None) -> list[dict[str, Any]]:
    return query(tools_sql(filters, limit), filters.params())


def tool_calls(query: Query, session_id: str) -> list[dict[str, Any]]:
    return query(
        "SELECT tool_use_id, tool_name, agent_id, started_at, finished_at, duration_ms, is_error, has_result, "
        "result_agent_id, subagent_type, description FROM tool_calls WHERE session_id = {s:String} "
        "ORDER BY started_at, tool_use_id",
        {"s": session_id},
    )


def subagents(query: Query, session_id: str) -> list[dict[str, Any]]:
    return query(
        "SELECT agent_id, link, tool_use_id, parent_agent_id, subagent_type, description, lines, has_file, "
        "first_at, last_at, task_duration_ms, task_is_error FROM subagents WHERE session_id = {s:String} "
        "ORDER BY first_at, agent_id",
        {"s": session_id},
    )


def subagent_tree(rows: Sequence[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Pure: subagents rows of one session → (depth, row) depth-first from the main thread ('')."""
    children: dict[str, list[dict[str, Any]]] = {}
    known = {str(r["agent_id"]) for r in rows}
    for r in rows:
        parent = str(r.get("parent_agent_id") or "")
        children.setdefault(parent if parent in known else "", []).append(r)
    out: list[tuple[int, dict[str, Any]]] = []
    seen: set[str] = set()

    def visit(parent: str, depth: int) -> None:
        for r in children.get(parent, []):
            agent = str(r["agent_id"])
            if agent in seen:
                continue
            seen.add(agent)
            out.append((depth, r))
            visit(agent, depth + 1)

    visit("", 0)
    return out


# ---- pipeline status --------------------------------------------------------------------------------------


def store_status(query: Query) -> dict[str, Any]:
    """What the store knows: rows, sessions, files, last insert, dead letters."""
    out: dict[str, Any] = {}
    row = query(
        # distinct identities, not count(): replays not yet merged by ReplacingMergeTree must not count twice
        "SELECT uniqExact(file_id, incarnation, byte_offset) AS rows, uniqExact(session_id) AS sessions, "
        "uniqExact(file_id) AS files, "
        "max(ingested_at) AS last_insert, max(timestamp) AS last_event FROM claude_raw_traces",
        None,
    )
    out.update(row[0] if row else {})
    # record types extraction does not model (stored raw, common columns only): by type, most frequent first
    from stream.store.extract import MODELLED_TYPES  # here: extract imports orjson and the contract

    modelled = ", ".join(f"'{t}'" for t in MODELLED_TYPES)
    out["unmodelled_types"] = {str(r["type"] or "(no type)"): int(r["n"]) for r in query(
        "SELECT type, uniqExact(file_id, incarnation, byte_offset) AS n FROM claude_raw_traces "
        f"WHERE type NOT IN ({modelled}) GROUP BY type ORDER BY n DESC, type", None)}
    try:
        out["dead_letters"] = int(query("SELECT uniqExact(file_id, incarnation, byte_offset) AS n "
                                        "FROM dead_letters", None)[0]["n"])
    except Exception as exc:  # an older store without the table: say so rather than fail the command
        out["dead_letters"] = f"unavailable ({str(exc).splitlines()[0][:80]})"
    return out


# ---- per-session activity and per-response entries (tokens --by session, blocks) -------------------------


def session_activity(query: Query, filters: Filters, grouping: str = "ccstream") -> list[dict[str, Any]]:
    """Per session: its last response's time and its project (the one of its latest response), for sorting
    `tokens --by session` by last activity and showing where each session ran. A ccusage session is a
    (project folder, session) pair; a ccstream session is its id alone, whatever cwds its responses ran in
    (one row per session: with a row per cwd, which one a session got depended on the order of the rows)."""
    if grouping == "ccusage":
        keys = f"{CCUSAGE_DIMENSIONS['session']} AS session, {CCUSAGE_DIMENSIONS['project']} AS project_key"
        group = "session, project_key"
    else:
        keys, group = "session_id AS session", "session"
    return query(
        f"SELECT {keys}, max(timestamp) AS last_activity, argMax(project, (timestamp, project)) AS project_path "
        f"FROM token_usage WHERE {_and(_where(filters, 'day'))} GROUP BY {group}",
        filters.params(),
    )


def usage_entries(query: Query, filters: Filters) -> list[dict[str, Any]]:
    """One row per API response (deduplicated as ``token_usage`` is), oldest first: the input of the
    5-hour billing blocks (stream/analytics/blocks.py)."""
    return query(
        "SELECT timestamp, model, session_id, project, input_tokens, output_tokens, cache_creation_input_tokens, "
        "cache_read_input_tokens, cache_creation_1h, speed, web_search_requests FROM token_usage "
        f"WHERE {_and(_where(filters, 'day'))} ORDER BY timestamp",
        filters.params(),
    )


def session_cost(query: Query, session_id: str, pricing: PriceTable) -> float:
    """The estimated cost of one session's responses (the header of `ccstream show`), priced like every other
    figure (`priced_groups`)."""
    select, groups, _ = priced_groups(pricing)
    rows = query(f"""SELECT round({COST_SUM}, 6) AS cost_usd FROM (
    SELECT {select} FROM token_usage WHERE session_id = {{s:String}} GROUP BY {groups})""", {"s": session_id})
    return float(rows[0]["cost_usd"] or 0) if rows else 0.0


def store_is_empty(query: Query) -> bool:
    """Nothing imported at all (the analytics commands then say so instead of printing $0.00)."""
    rows = query("SELECT count() AS n FROM (SELECT 1 FROM claude_raw_traces LIMIT 1)", None)
    return not rows or int(rows[0]["n"]) == 0
