"""Queries over Claude Code's telemetry joined to the transcripts, with ccstream's own cost beside Claude
Code's. The cost needs the price table, applied at query time as everywhere in ccstream
(stream/analytics/pricing.py), so it is here and not in a view."""

from __future__ import annotations

from typing import Any

from stream.analytics.pricing import PriceTable
from stream.analytics.queries import COST_SUM, priced_groups

Query = Any  # (sql, params) -> rows, as in stream/analytics/queries.py


def api_requests_sql(pricing: PriceTable, session_id: str | None = None, limit: int | None = None) -> str:
    """One row per API request seen by either side (otel_request_join), with `ccstream_cost_usd` computed
    from the transcript's tokens beside Claude Code's `cc_cost_usd`."""
    # priced as every other figure is (fast mode, long-context band, web search): one rule, queries.py's
    select, groups, _ = priced_groups(pricing)
    where = "WHERE j.session_id = {session:String}" if session_id is not None else ""
    lim = f"LIMIT {int(limit)}" if limit else ""
    # the cost per request from token_usage on its own, then joined: the price expression applied inside
    # the view's FULL JOIN makes the query planner give up (TOO_MANY_QUERY_PLAN_OPTIMIZATIONS)
    return f"""
SELECT j.request_id AS request_id, j.session_id AS session_id, in_otel, in_transcript, user_email, j.model AS model,
       requested_at, round(cc_cost_usd, 6) AS cc_cost_usd, round(c.c_cost, 6) AS ccstream_cost_usd,
       duration_ms, attempts, retries, errors, last_error,
       cc_input_tokens, input_tokens, cc_output_tokens, output_tokens,
       cc_cache_read_tokens, cache_read_input_tokens, cc_cache_creation_tokens, cache_creation_input_tokens
FROM otel_request_join AS j
LEFT JOIN
(
    SELECT c_request_id, {COST_SUM} AS c_cost
    FROM (
        SELECT request_id AS c_request_id, {select}
        FROM token_usage
        WHERE request_id != ''
        GROUP BY request_id, {groups}
    )
    GROUP BY c_request_id
) AS c ON j.request_id = c.c_request_id
{where}
ORDER BY if(in_otel, requested_at, transcript_timestamp), request_id
{lim}
"""


def api_requests(query: Query, pricing: PriceTable, session_id: str | None = None,
                 limit: int | None = None) -> list[dict[str, Any]]:
    params = {"session": session_id} if session_id is not None else {}
    rows: list[dict[str, Any]] = query(api_requests_sql(pricing, session_id, limit), params)
    return rows
