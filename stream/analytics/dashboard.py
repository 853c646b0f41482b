"""The dashboard's documents: filters in, one JSON-ready dict out per page (overview, sessions, one session,
tools, pipeline).

Every figure the CLI also prints comes from the same function of ``stream.analytics.queries`` and goes
through the CLI's JSON normalisation (``stream.cli.analytics._numeric``), so the page shows exactly what
``ccstream tokens --json`` and ``ccstream sessions --json`` print for the same range. The queries only the
dashboard needs (per MCP server, slowest and failing calls, a session's cost over time, models without a
price) live here. Each function takes a ``Query`` callable like the analytics queries do; nothing here does
I/O of its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from stream.analytics import queries as q
from stream.analytics.pricing import PriceTable
from stream.analytics.queries import Filters, Query

# the tokens groupings the overview shows; each equals `ccstream tokens --by <it> --json` for the range
OVERVIEW_GROUPINGS: dict[str, list[str]] = {
    "by_day_model": ["day", "model"],
    "by_model": ["model"],
    "by_project": ["project"],
    "by_host_user": ["host", "user"],
    "by_day": ["day"],
}


class BadRequest(ValueError):
    """A query-string value the dashboard cannot use; the message says which and why."""


def _numeric(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # the CLI's own normalisation: the page and `--json` must agree to the digit
    from stream.cli.analytics import _numeric as cli_numeric

    return cli_numeric(rows)


def _jsonable(value: Any) -> Any:
    from stream.cli.analytics import jsonable

    return jsonable(value)


def filters_from(params: Mapping[str, str]) -> Filters:
    """since/until (YYYY-MM-DD or YYYYMMDD) and project from a query string; empty values mean unset."""
    def day(name: str) -> dt.date | None:
        text = (params.get(name) or "").strip()
        if not text:
            return None
        try:
            return q.parse_day(text)
        except ValueError:
            raise BadRequest(f"{name}={text!r} is not a day (YYYY-MM-DD or YYYYMMDD)") from None

    since, until = day("since"), day("until")
    if since and until and since > until:
        raise BadRequest(f"since {since} is after until {until}")
    return Filters(since=since, until=until, project=(params.get("project") or "").strip() or None)


def _filters_doc(f: Filters) -> dict[str, Any]:
    return {"since": _jsonable(f.since), "until": _jsonable(f.until), "project": f.project}


def _pricing_doc(pricing: PriceTable) -> dict[str, Any]:
    return {"date": pricing.date, "currency": pricing.currency, "source": pricing.source}


def cache_read_share(totals: Mapping[str, Any]) -> float | None:
    """Pure: the share of input-side tokens (input + cache writes + cache reads) served from the cache."""
    read = float(totals.get("cache_read_input_tokens") or 0)
    side = (float(totals.get("input_tokens") or 0) + float(totals.get("cache_creation_input_tokens") or 0)
            + read)
    return round(read / side, 6) if side else None


# ---- overview -------------------------------------------------------------------------------------------


def overview(query: Query, filters: Filters, pricing: PriceTable) -> dict[str, Any]:
    totals = _numeric([q.token_totals(query, filters, pricing)])[0]
    doc: dict[str, Any] = {"filters": _filters_doc(filters), "pricing": _pricing_doc(pricing), "totals": totals,
                           "cache_read_share": cache_read_share(totals)}
    for key, by in OVERVIEW_GROUPINGS.items():
        doc[key] = _numeric(q.tokens(query, by, filters, pricing))
    sess = _numeric(q.sessions(query, filters, pricing))
    doc["sessions"] = {
        "count": len(sess),
        "cost_usd": round(sum(float(s.get("cost_usd") or 0) for s in sess), 6),
        "with_tool_errors": sum(1 for s in sess if int(s.get("tool_errors") or 0) > 0),
        "with_api_errors": sum(1 for s in sess if int(s.get("api_errors") or 0) > 0),
        "tool_calls": sum(int(s.get("tool_calls") or 0) for s in sess),
        "tool_errors": sum(int(s.get("tool_errors") or 0) for s in sess),
    }
    return doc


# ---- sessions -------------------------------------------------------------------------------------------


def sessions(query: Query, filters: Filters, pricing: PriceTable, model: str | None = None,
             host: str | None = None) -> dict[str, Any]:
    """`ccstream sessions --json` for the range, optionally narrowed to sessions that used ``model``
    (substring of a model name) or ran on ``host`` (exact)."""
    rows = _numeric(q.sessions(query, filters, pricing))
    facets = {"models": sorted({m for r in rows for m in (r.get("models") or [])}),
              "hosts": sorted({str(r.get("host") or "") for r in rows}),
              "projects": sorted({str(r.get("project") or "") for r in rows})}
    if model:
        rows = [r for r in rows if any(model in m for m in (r.get("models") or []))]
    if host:
        rows = [r for r in rows if str(r.get("host") or "") == host]
    return {"filters": {**_filters_doc(filters), "model": model, "host": host}, "facets": facets, "rows": rows}


def _cost_over_time_sql(pricing: PriceTable) -> str:
    cost = pricing.sql_cost_expr(price_index="t_pidx")
    return f"""
SELECT timestamp, agent_id, model, input_tokens + output_tokens + cache_creation_input_tokens
       + cache_read_input_tokens AS tokens, {pricing.sql_price_index("model")} AS t_pidx, {cost} AS cost_usd
FROM token_usage WHERE session_id = {{s:String}}
ORDER BY timestamp, message_id
"""


def cumulative(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pure: per-response costs in time order → running totals (cost and tokens) at each response."""
    out: list[dict[str, Any]] = []
    cost = 0.0
    tokens = 0
    for p in points:
        cost += float(p.get("cost_usd") or 0)
        tokens += int(p.get("tokens") or 0)
        out.append({"timestamp": p.get("timestamp"), "agent_id": p.get("agent_id") or "",
                    "cost_usd": round(cost, 6), "tokens": tokens})
    return out


def _ms(timestamp: str) -> int | None:
    try:
        return int(dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)
    except (ValueError, AttributeError):
        return None


def tool_timings(turns: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """Pure: replayed turns of one session → per tool_use id its start (first assistant line carrying it),
    end (first user line with its result), duration in ms and error flag: the tool_calls view's definition."""
    started: dict[str, int] = {}
    finished: dict[str, int] = {}
    errors: dict[str, bool] = {}
    for t in turns:
        ms = _ms(t.timestamp)
        if ms is None:
            continue
        if t.type == "assistant":
            for b in t.tool_uses:
                started[b.tool_id] = min(started.get(b.tool_id, ms), ms)
        elif t.type == "user":
            for b in t.tool_results:
                finished[b.tool_id] = min(finished.get(b.tool_id, ms), ms)
                errors[b.tool_id] = errors.get(b.tool_id, False) or bool(b.is_error)
    out: dict[str, dict[str, Any]] = {}
    for tool_id, start in started.items():
        end = finished.get(tool_id)
        out[tool_id] = {"has_result": end is not None, "duration_ms": None if end is None else end - start,
                        "is_error": errors.get(tool_id, False)}
    return out


def session(query: Query, session_id: str, pricing: PriceTable) -> dict[str, Any] | None:
    """One session: its `sessions --json` row, the replay of `ccstream show` with each tool call's duration
    and error, the subagent tree and its cost over time. None when the store has no such session."""
    from stream.analytics.replay import replay, turn_lines

    summary = _numeric(query(f"SELECT * FROM ({q.sessions_sql(Filters(), pricing)}) "
                             "WHERE session_id = {sid:String}", {"sid": session_id}))
    rows = q.session_rows(query, session_id)
    if not summary and not rows:
        return None
    conv = replay(rows)
    # from the session's own lines, as the tool_calls view computes them (that view scans every session:
    # too slow for a page that redraws while the session runs)
    calls = tool_timings(t for _, t in conv.walk())
    turns: list[dict[str, Any]] = []
    for depth, t in conv.walk():
        if t.kind == "progress":  # as `ccstream show` without --progress
            continue
        uses = []
        for b in t.tool_uses:
            c = calls.get(b.tool_id, {})
            uses.append({"id": b.tool_id, "name": b.name, "duration_ms": c.get("duration_ms"),
                         "is_error": bool(c.get("is_error")), "has_result": bool(c.get("has_result"))})
        turns.append({
            "depth": depth, "uuid": t.uuid, "agent_id": t.agent_id, "kind": t.kind, "timestamp": t.timestamp,
            "model": t.model, "text": "\n".join(turn_lines(t, fallback=False)), "tool_uses": uses,
            "tool_results": [{"tool_use_id": b.tool_id, "name": b.name, "is_error": b.is_error}
                             for b in t.tool_results],
            "subagents": [{"agent_id": th.agent_id, "link": th.link, "tool_use_id": th.tool_use_id,
                           "subagent_type": th.subagent_type, "description": th.description}
                          for th in t.children],
        })
    # the subagents view scans every session too: asked only when this one has subagents
    has_agents = bool(summary and summary[0].get("subagents")) or any(r.get("agent_id") for r in rows)
    tree = [{"depth": d, **r} for d, r in q.subagent_tree(_numeric(q.subagents(query, session_id)))] \
        if has_agents else []
    return {"session_id": session_id, "summary": summary[0] if summary else None, "turns": turns,
            "subagents": tree,
            "cost_over_time": cumulative(_numeric(query(_cost_over_time_sql(pricing), {"s": session_id})))}


# ---- tools ----------------------------------------------------------------------------------------------


def mcp_servers_sql(filters: Filters) -> str:
    where = q._and(["startsWith(tool_name, 'mcp__')", *q._where(filters, "started_at")])
    return f"""
SELECT
    splitByString('__', tool_name)[2] AS server,
    count() AS calls,
    countIf(is_error = 1) AS errors,
    round(errors / calls, 4) AS error_rate,
    uniqExact(tool_name) AS tools,
    round(quantileExactIf(0.5)(duration_ms, has_result)) AS p50_ms,
    round(quantileExactIf(0.95)(duration_ms, has_result)) AS p95_ms
FROM tool_calls
WHERE {where}
GROUP BY server
ORDER BY calls DESC, server
"""


def calls_sql(filters: Filters, failing: bool, limit: int) -> str:
    """The slowest answered calls, or the failing ones (newest first), each with its session."""
    conds = ["is_error = 1"] if failing else ["has_result"]
    where = q._and([*conds, *q._where(filters, "started_at")])
    order = "started_at DESC, tool_use_id" if failing else "duration_ms DESC, tool_use_id"
    return f"""
SELECT tool_use_id, tool_name, session_id, agent_id, project, started_at, duration_ms, is_error, description
FROM tool_calls
WHERE {where}
ORDER BY {order}
LIMIT {int(limit)}
"""


def tools(query: Query, filters: Filters, limit: int = 25) -> dict[str, Any]:
    params = filters.params()
    return {"filters": _filters_doc(filters), "tools": _numeric(q.tools(query, filters)),
            "mcp_servers": _numeric(query(mcp_servers_sql(filters), params)),
            "slowest": _numeric(query(calls_sql(filters, failing=False, limit=limit), params)),
            "failing": _numeric(query(calls_sql(filters, failing=True, limit=limit), params))}


# ---- pipeline -------------------------------------------------------------------------------------------


def unknown_price_models(query: Query, pricing: PriceTable) -> list[str]:
    """Models in the store the price table does not know (their cost counts as 0)."""
    rows = query("SELECT DISTINCT model FROM token_usage WHERE model NOT IN ('', '<synthetic>') ORDER BY model",
                 None)
    return [str(r["model"]) for r in rows if pricing.lookup(str(r["model"])) is None]


def pipeline(query: Query, pricing: PriceTable, worker: Mapping[str, Any]) -> dict[str, Any]:
    """The store's state plus what the worker reports (followed and lagging files, counters)."""
    store = _numeric([q.store_status(query)])[0]
    lagging = list(worker.get("lagging_files") or [])
    behind = sum(max(int(f.get("size", 0)) - int(f.get("offset", 0)), 0) for f in lagging)
    state = f"importing {len(lagging)} files" if lagging else "caught up"
    return {"state": state, "lagging_files": len(lagging), "bytes_behind": behind,
            "followed_files": worker.get("followed_files", 0), "queued_requests": worker.get("queued_requests", 0),
            "store": store, "dead_letters": store.get("dead_letters"), "last_insert": store.get("last_insert"),
            "unknown_price_models": unknown_price_models(query, pricing),
            "worker": {k: v for k, v in worker.items() if k != "lagging_files"}}
