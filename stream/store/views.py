"""Analytics views over ``claude_raw_traces`` (schema migration 2 onward).

Every view reads ``claude_raw_traces FINAL`` (or, for tokens, an aggregate that is immune to repeats) so a
line delivered twice (same file identity and byte offset) counts once. Costs are not in the views: prices change and may be overridden per install, so the queries in
``stream/analytics/queries.py`` apply :meth:`stream.analytics.pricing.PriceTable.sql_cost_expr` at query time.

* ``token_usage``  one row per API response, counted once wherever Claude Code wrote it (docs/analytics.md;
  migration 4): assistant lines and subagent echoes (``agent_progress`` lines, whose message columns are the
  echoed response's) grouped by ``(message_id, request_id)`` globally across files, the kept line is the one
  with the largest token total (the last streamed line: its output count is final), ties to the first by
  (file path, byte offset); lines without a message id stand alone. ``source`` says whether an assistant
  line or only an echo recorded the response. Carries both session groupings: ``session_id`` (ccstream: the
  line's sessionId) and ``ccusage_project``/``ccusage_session`` (ccusage: derived from the file path).
  Migration 2's version (assistant lines only, over ``token_usage_state``) is kept below as it was applied.
* ``tool_calls``   one row per tool_use id, joined to its tool_result: duration, is_error, the subagent a
  Task started (``toolUseResult.agentId``), subagent type and description from the Task input.
* ``subagents``    one row per (session, agent): how it was started (task / compaction / unlinked), by which
  tool_use in which parent agent ('' = main thread), its lines and time span. Parent links form the tree.
* ``session_summary`` one row per session id: start, end, duration, turns, models, tokens, tools used, tool
  errors, API errors, compactions, subagents.
"""

from __future__ import annotations

# token_usage is served from an aggregate kept at insert time, because a FINAL + GROUP BY over every assistant
# line costs ~1 s per million rows here. token_usage_state holds one row per (message_id, group_key,
# -total tokens) with min/max simple aggregates: min and max are idempotent, so a line delivered twice, or
# this migration's backfill run twice, changes nothing, and no FINAL over claude_raw_traces is needed.
# group_key is the requestId, or the line's identity for a line without a message id (which so stands alone
# and still dedups against its own re-deliveries). The view keeps, per (message_id, group_key), the row of
# the largest total (argMin on -total), i.e. the last streamed line; among equal totals the first file path,
# which is what ccusage 20 keeps (it reads files in path order and replaces only on a strictly larger total).
_STATE_SELECT = """
SELECT
    message_id,
    group_key,
    neg_total,
    min(r_file_path) AS file_path,
    min(r_timestamp) AS timestamp,
    min(r_session_id) AS session_id,
    min(r_agent_id) AS agent_id,
    min(r_is_sidechain) AS is_sidechain,
    min(r_project) AS project,
    min(r_model) AS model,
    min(r_host) AS host,
    min(r_user) AS user,
    max(r_input) AS input_tokens,
    max(r_output) AS output_tokens,
    max(r_cache_creation) AS cache_creation_input_tokens,
    max(r_cache_read) AS cache_read_input_tokens,
    max(r_cache_5m) AS cache_creation_5m,
    max(r_cache_1h) AS cache_creation_1h
FROM
(
    -- prefixed names: an aggregate's alias must never shadow a column another expression reads
    SELECT
        message_id,
        if(message_id = '', concat('@', file_id, ':', toString(incarnation), ':', toString(byte_offset)),
           request_id) AS group_key,
        -toInt64(input_tokens + output_tokens + cache_creation_input_tokens + cache_read_input_tokens)
            AS neg_total,
        toString(file_path) AS r_file_path, timestamp AS r_timestamp, session_id AS r_session_id,
        agent_id AS r_agent_id, is_sidechain AS r_is_sidechain, toString(project) AS r_project,
        toString(model) AS r_model, toString(host) AS r_host, toString(user) AS r_user,
        input_tokens AS r_input, output_tokens AS r_output, cache_creation_input_tokens AS r_cache_creation,
        cache_read_input_tokens AS r_cache_read, cache_creation_5m AS r_cache_5m,
        cache_creation_1h AS r_cache_1h
    FROM claude_raw_traces
    WHERE type = 'assistant'
)
GROUP BY message_id, group_key, neg_total
"""

TOKEN_USAGE_STATE = """
CREATE TABLE IF NOT EXISTS token_usage_state
(
    message_id                  String,
    group_key                   String,
    neg_total                   Int64,
    file_path                   SimpleAggregateFunction(min, String),
    timestamp                   SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    session_id                  SimpleAggregateFunction(min, String),
    agent_id                    SimpleAggregateFunction(min, String),
    is_sidechain                SimpleAggregateFunction(min, UInt8),
    project                     SimpleAggregateFunction(min, String),
    model                       SimpleAggregateFunction(min, String),
    host                        SimpleAggregateFunction(min, String),
    user                        SimpleAggregateFunction(min, String),
    input_tokens                SimpleAggregateFunction(max, UInt64),
    output_tokens               SimpleAggregateFunction(max, UInt64),
    cache_creation_input_tokens SimpleAggregateFunction(max, UInt64),
    cache_read_input_tokens     SimpleAggregateFunction(max, UInt64),
    cache_creation_5m           SimpleAggregateFunction(max, UInt64),
    cache_creation_1h           SimpleAggregateFunction(max, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (message_id, group_key, neg_total)
"""

TOKEN_USAGE_MV = "CREATE MATERIALIZED VIEW IF NOT EXISTS token_usage_mv TO token_usage_state AS" + _STATE_SELECT

# rows stored before the materialized view existed (a re-run only repeats min/max values: no change)
TOKEN_USAGE_BACKFILL = "INSERT INTO token_usage_state" + _STATE_SELECT

TOKEN_USAGE = r"""
CREATE OR REPLACE VIEW token_usage AS
SELECT
    message_id,
    if(startsWith(group_key, '@'), '', group_key) AS request_id,
    host, user, file_path, session_id, agent_id, is_sidechain, project, timestamp, toDate(timestamp) AS day,
    model, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens,
    cache_creation_5m, cache_creation_1h,
    splitByChar('/', file_path) AS _parts,
    arraySlice(_parts, indexOf(_parts, 'projects') + 1) AS _rel,
    length(_rel) AS _n,
    multiIf(_n = 2, replaceRegexpOne(_rel[2], '\\.jsonl$', ''),
            _n >= 4 AND _rel[_n - 1] = 'subagents', _rel[_n - 2],
            _n >= 2, _rel[_n - 1], 'unknown') AS ccusage_session,
    multiIf(_n = 2, _rel[1],
            _n >= 4 AND _rel[_n - 1] = 'subagents', arrayStringConcat(arraySlice(_rel, 1, _n - 3), '/'),
            _n > 2, arrayStringConcat(arraySlice(_rel, 1, _n - 2), '/'), 'Unknown Project') AS ccusage_project
FROM
(
    SELECT
        message_id,
        group_key,
        -- the row of the largest total is the one with the smallest neg_total. Without FINAL, rows of equal
        -- (message_id, group_key, neg_total) may still sit in several parts, each with its own min(...):
        -- ordering by (neg_total, value) takes the min across them, exactly what FINAL would have merged,
        -- for ~half the cost. Token counts and the model are equal among equal totals of one response.
        argMin(file_path, (neg_total, file_path)) AS file_path,
        argMin(timestamp, (neg_total, timestamp)) AS timestamp,
        argMin(session_id, (neg_total, session_id)) AS session_id,
        argMin(agent_id, (neg_total, agent_id)) AS agent_id,
        argMin(is_sidechain, (neg_total, is_sidechain)) AS is_sidechain,
        argMin(project, (neg_total, project)) AS project,
        argMin(model, neg_total) AS model,
        argMin(host, (neg_total, host)) AS host,
        argMin(user, (neg_total, user)) AS user,
        argMin(input_tokens, neg_total) AS input_tokens,
        argMin(output_tokens, neg_total) AS output_tokens,
        argMin(cache_creation_input_tokens, neg_total) AS cache_creation_input_tokens,
        argMin(cache_read_input_tokens, neg_total) AS cache_read_input_tokens,
        argMin(cache_creation_5m, neg_total) AS cache_creation_5m,
        argMin(cache_creation_1h, neg_total) AS cache_creation_1h
    FROM token_usage_state
    GROUP BY message_id, group_key
)
"""

TOOL_CALLS = r"""
CREATE OR REPLACE VIEW tool_calls AS
SELECT
    u.u_id AS tool_use_id,
    u.u_name AS tool_name,
    u.u_session_id AS session_id,
    u.u_agent_id AS agent_id,
    u.u_host AS host,
    u.u_user AS user,
    u.u_project AS project,
    u.u_uuid AS use_uuid,
    u.u_started_at AS started_at,
    u.u_subagent_type AS subagent_type,
    u.u_description AS description,
    r.r_id != '' AS has_result,
    if(r.r_id != '', r.r_finished_at, NULL) AS finished_at,
    if(r.r_id != '', dateDiff('millisecond', u.u_started_at, r.r_finished_at), NULL) AS duration_ms,
    r.r_is_error AS is_error,
    r.r_agent_id AS result_agent_id
FROM
(
    SELECT
        id AS u_id,
        any(name) AS u_name,
        argMin(session_id, timestamp) AS u_session_id,
        argMin(agent_id, timestamp) AS u_agent_id,
        any(host) AS u_host,
        any(user) AS u_user,
        argMin(project, timestamp) AS u_project,
        argMin(uuid, timestamp) AS u_uuid,
        min(timestamp) AS u_started_at,
        -- Task (Agent in newer builds) input: parsed from the raw line for those calls only
        anyIf(JSONExtractString(arrayFirst(b -> JSONExtractString(b, 'id') = id,
                                           JSONExtractArrayRaw(raw, 'message', 'content')),
                                'input', 'subagent_type'), name IN ('Task', 'Agent')) AS u_subagent_type,
        anyIf(JSONExtractString(arrayFirst(b -> JSONExtractString(b, 'id') = id,
                                           JSONExtractArrayRaw(raw, 'message', 'content')),
                                'input', 'description'), name IN ('Task', 'Agent')) AS u_description
    FROM claude_raw_traces FINAL
    ARRAY JOIN tool_use_ids AS id, tool_use_names AS name
    WHERE type = 'assistant'
    GROUP BY id
) AS u
LEFT JOIN
(
    SELECT
        id AS r_id,
        min(timestamp) AS r_finished_at,
        max(err) AS r_is_error,
        anyIf(result_agent_id, result_agent_id != '') AS r_agent_id
    FROM claude_raw_traces FINAL
    ARRAY JOIN tool_result_ids AS id, tool_result_is_error AS err
    WHERE type = 'user'
    GROUP BY id
) AS r ON u.u_id = r.r_id
"""

SUBAGENTS = r"""
CREATE OR REPLACE VIEW subagents AS
SELECT
    k.session_id AS session_id,
    k.agent_id AS agent_id,
    multiIf(startsWith(k.agent_id, 'acompact'), 'compaction', t.t_tool_use_id != '', 'task', 'unlinked') AS link,
    t.t_tool_use_id AS tool_use_id,
    t.t_parent_agent_id AS parent_agent_id,
    t.t_subagent_type AS subagent_type,
    t.t_description AS description,
    t.t_duration_ms AS task_duration_ms,
    t.t_is_error AS task_is_error,
    f.lines AS lines,
    f.lines > 0 AS has_file,
    if(f.lines > 0, f.first_at, t.t_started_at) AS first_at,
    if(f.lines > 0, f.last_at, t.t_finished_at) AS last_at
FROM
(
    SELECT DISTINCT session_id, agent_id FROM
    (
        SELECT session_id, agent_id FROM claude_raw_traces FINAL WHERE agent_id != ''
        UNION ALL
        SELECT session_id, result_agent_id AS agent_id FROM tool_calls WHERE result_agent_id != ''
    )
) AS k
LEFT JOIN
(
    SELECT session_id AS f_session_id, agent_id AS f_agent_id, min(timestamp) AS first_at,
           max(timestamp) AS last_at, count() AS lines
    FROM claude_raw_traces FINAL
    WHERE agent_id != ''
    GROUP BY session_id, agent_id
) AS f ON k.session_id = f.f_session_id AND k.agent_id = f.f_agent_id
LEFT JOIN
(
    SELECT
        session_id AS t_session_id,
        result_agent_id AS t_agent_id,
        argMin(tool_use_id, started_at) AS t_tool_use_id,
        argMin(agent_id, started_at) AS t_parent_agent_id,
        argMin(subagent_type, started_at) AS t_subagent_type,
        argMin(description, started_at) AS t_description,
        argMin(duration_ms, started_at) AS t_duration_ms,
        argMin(is_error, started_at) AS t_is_error,
        min(started_at) AS t_started_at,
        argMin(finished_at, started_at) AS t_finished_at
    FROM tool_calls
    WHERE result_agent_id != ''
    GROUP BY session_id, result_agent_id
) AS t ON k.session_id = t.t_session_id AND k.agent_id = t.t_agent_id
"""

SESSION_SUMMARY = r"""
CREATE OR REPLACE VIEW session_summary AS
SELECT
    s.s_session_id AS session_id,
    s.s_host AS host,
    s.s_user AS user,
    s.s_project AS project,
    s.s_git_branch AS git_branch,
    s.s_slug AS slug,
    s.s_versions AS versions,
    s.s_started_at AS started_at,
    s.s_ended_at AS ended_at,
    dateDiff('millisecond', s.s_started_at, s.s_ended_at) / 1000. AS duration_s,
    s.s_turns AS turns,
    s.s_lines AS lines,
    s.s_messages AS messages,
    s.s_files AS files,
    s.s_models AS models,
    s.s_tools_used AS tools_used,
    s.s_tool_calls AS tool_calls,
    s.s_tool_errors AS tool_errors,
    s.s_api_errors AS api_errors,
    s.s_compactions AS compactions,
    s.s_subagents AS subagents,
    t.t_responses AS responses,
    t.t_input AS input_tokens,
    t.t_output AS output_tokens,
    t.t_cache_creation AS cache_creation_input_tokens,
    t.t_cache_read AS cache_read_input_tokens,
    t.t_input + t.t_output + t.t_cache_creation + t.t_cache_read AS total_tokens
FROM
(
    SELECT
        session_id AS s_session_id,
        any(host) AS s_host,
        any(user) AS s_user,
        argMinIf(project, timestamp, project != '') AS s_project,
        argMaxIf(git_branch, timestamp, git_branch != '') AS s_git_branch,
        anyIf(slug, slug != '') AS s_slug,
        arraySort(groupUniqArrayIf(version, version != '')) AS s_versions,
        minIf(timestamp, timestamp_missing = 0) AS s_started_at,
        maxIf(timestamp, timestamp_missing = 0) AS s_ended_at,
        -- prompts typed by the human in the main thread: not tool results, not injected, not summaries
        uniqExactIf(uuid, type = 'user' AND agent_id = '' AND is_sidechain = 0 AND is_meta = 0
                          AND is_compact_summary = 0 AND empty(tool_result_ids)) AS s_turns,
        count() AS s_lines,
        -- user/assistant lines: 0 for an id that only snapshot lines carried (named after their file)
        countIf(type IN ('user', 'assistant')) AS s_messages,
        uniqExact(file_id) AS s_files,
        arraySort(groupUniqArrayIf(model, type = 'assistant' AND model NOT IN ('', '<synthetic>'))) AS s_models,
        arraySort(groupUniqArrayArrayIf(tool_use_names, type = 'assistant')) AS s_tools_used,
        length(groupUniqArrayArrayIf(tool_use_ids, type = 'assistant')) AS s_tool_calls,
        length(groupUniqArrayArrayIf(arrayFilter((i, e) -> e = 1, tool_result_ids, tool_result_is_error),
                                     type = 'user')) AS s_tool_errors,
        uniqExactIf(uuid, is_api_error = 1 OR subtype = 'api_error') AS s_api_errors,
        uniqExactIf(uuid, subtype = 'compact_boundary') AS s_compactions,
        length(arrayFilter(a -> a != '', arrayDistinct(arrayConcat(
            groupUniqArray(agent_id), groupUniqArray(result_agent_id), groupUniqArray(progress_agent_id))))) AS s_subagents
    FROM claude_raw_traces FINAL
    WHERE session_id != ''
    GROUP BY session_id
) AS s
LEFT JOIN
(
    SELECT
        session_id AS t_session_id,
        count() AS t_responses,
        sum(input_tokens) AS t_input,
        sum(output_tokens) AS t_output,
        sum(cache_creation_input_tokens) AS t_cache_creation,
        sum(cache_read_input_tokens) AS t_cache_read
    FROM token_usage
    GROUP BY session_id
) AS t ON s.s_session_id = t.t_session_id
"""

# ---- migration 4: every API response counted once, wherever Claude Code wrote it (issue 12) -------------------
#
# Counted: assistant lines AND subagent echoes (agent_progress lines of the parent file, whose message columns
# extract.py fills from the echoed response), in the same (message_id, requestId) groups, the largest total kept.
# An echo therefore adds nothing when the subagent's own line exists, and is the only record of the request
# when it does not (copies that keep only the parent file, responses missing from the subagent file). An echo
# is attributed to the parent file's session, to the subagent (progress_agent_id), to the sidechain, and to the
# echoed message's time. Cache writes: the nested cache_creation split when the flat count is 0 or missing
# (Claude Code wrote 0 there until 2.1.152).
#
# The state moves to a new table, token_usage_groups: its new columns could not be filled in the rows of
# token_usage_state, and a new name lets the migration fill it while the old one still serves (create, fill,
# switch the view, drop the old): a concurrent sink loses nothing, and min/max make the overlap harmless.
_ECHO = "type = 'progress' AND progress_type = 'agent_progress' AND message_id != ''"
# One response line yields its own usage row plus one per advisor sub-inference (advisor_usage: billed under the
# advisor's model, outside the line's top-level counts). An advisor row is its own response,
# "<message_id>:advisor:<n>" with the line's requestId (as ccusage 20 keys it), deduplicated like any other.
_USAGES = ("arrayConcat([tuple(toUInt32(0), toString(model), input_tokens, output_tokens, cache_creation_input_tokens, "
           "cache_read_input_tokens, cache_creation_5m, cache_creation_1h)], "
           "arrayMap((a, i) -> tuple(toUInt32(i), a.1, a.2, a.3, a.4, a.5, a.6, a.7), advisor_usage, "
           "arrayEnumerate(advisor_usage)))")
_GROUPS_SELECT = f"""
SELECT
    r_message_id AS message_id,
    group_key,
    neg_total,
    min(r_file_path) AS file_path,
    min(r_timestamp) AS timestamp,
    min(r_session_id) AS session_id,
    min(r_agent_id) AS agent_id,
    min(r_is_sidechain) AS is_sidechain,
    min(r_project) AS project,
    min(r_model) AS model,
    min(r_host) AS host,
    min(r_user) AS user,
    min(r_is_echo) AS is_echo,
    max(r_is_advisor) AS is_advisor,
    max(r_input) AS input_tokens,
    max(r_output) AS output_tokens,
    max(r_cache_creation) AS cache_creation_input_tokens,
    max(r_cache_read) AS cache_read_input_tokens,
    max(r_cache_5m) AS cache_creation_5m,
    max(r_cache_1h) AS cache_creation_1h,
    max(r_web_search) AS web_search_requests,
    max(r_web_fetch) AS web_fetch_requests,
    max(r_service_tier) AS service_tier,
    max(r_speed) AS speed,
    max(r_inference_geo) AS inference_geo
FROM
(
    -- prefixed names: an aggregate's alias must never shadow a column another expression reads
    SELECT
        u.1 AS r_advisor_n,
        r_advisor_n > 0 AS r_is_advisor,
        if(message_id = '' OR NOT r_is_advisor, message_id,
           concat(message_id, ':advisor:', toString(r_advisor_n - 1))) AS r_message_id,
        if(message_id = '', concat('@', file_id, ':', toString(incarnation), ':', toString(byte_offset),
                                   if(r_is_advisor, concat(':advisor:', toString(r_advisor_n - 1)), '')),
           request_id) AS group_key,
        {_ECHO} AS r_is_echo,
        u.3 AS r_input, u.4 AS r_output, u.6 AS r_cache_read, u.7 AS r_cache_5m, u.8 AS r_cache_1h,
        if(u.5 = 0, u.7 + u.8, u.5) AS r_cache_creation,
        -toInt64(r_input + r_output + r_cache_creation + r_cache_read) AS neg_total,
        toString(file_path) AS r_file_path,
        if(r_is_echo AND toUnixTimestamp64Milli(echo_timestamp) != 0, echo_timestamp, timestamp) AS r_timestamp,
        session_id AS r_session_id,
        if(r_is_echo, progress_agent_id, agent_id) AS r_agent_id,
        if(r_is_echo, toUInt8(1), is_sidechain) AS r_is_sidechain,
        toString(project) AS r_project,
        u.2 AS r_model, toString(host) AS r_host, toString(user) AS r_user,
        -- server tools, tier, speed and geo belong to the line's own request, not to its advisor calls
        if(r_is_advisor, 0, web_search_requests) AS r_web_search,
        if(r_is_advisor, 0, web_fetch_requests) AS r_web_fetch,
        if(r_is_advisor, '', toString(service_tier)) AS r_service_tier,
        if(r_is_advisor, '', toString(speed)) AS r_speed,
        if(r_is_advisor, '', toString(inference_geo)) AS r_inference_geo
    FROM {{source}}
    ARRAY JOIN {_USAGES} AS u
    WHERE type = 'assistant' OR ({_ECHO})
)
GROUP BY r_message_id, group_key, neg_total
"""

TOKEN_USAGE_GROUPS = """
CREATE TABLE IF NOT EXISTS token_usage_groups
(
    message_id                  String,
    group_key                   String,
    neg_total                   Int64,
    file_path                   SimpleAggregateFunction(min, String),
    timestamp                   SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    session_id                  SimpleAggregateFunction(min, String),
    agent_id                    SimpleAggregateFunction(min, String),
    is_sidechain                SimpleAggregateFunction(min, UInt8),
    project                     SimpleAggregateFunction(min, String),
    model                       SimpleAggregateFunction(min, String),
    host                        SimpleAggregateFunction(min, String),
    user                        SimpleAggregateFunction(min, String),
    is_echo                     SimpleAggregateFunction(min, UInt8),
    is_advisor                  SimpleAggregateFunction(max, UInt8),
    input_tokens                SimpleAggregateFunction(max, UInt64),
    output_tokens               SimpleAggregateFunction(max, UInt64),
    cache_creation_input_tokens SimpleAggregateFunction(max, UInt64),
    cache_read_input_tokens     SimpleAggregateFunction(max, UInt64),
    cache_creation_5m           SimpleAggregateFunction(max, UInt64),
    cache_creation_1h           SimpleAggregateFunction(max, UInt64),
    web_search_requests         SimpleAggregateFunction(max, UInt64),
    web_fetch_requests          SimpleAggregateFunction(max, UInt64),
    service_tier                SimpleAggregateFunction(max, String),
    speed                       SimpleAggregateFunction(max, String),
    inference_geo               SimpleAggregateFunction(max, String)
)
ENGINE = AggregatingMergeTree
ORDER BY (message_id, group_key, neg_total)
"""

TOKEN_USAGE_GROUPS_MV = ("CREATE MATERIALIZED VIEW IF NOT EXISTS token_usage_groups_mv TO token_usage_groups AS"
                         + _GROUPS_SELECT.format(source="claude_raw_traces"))

# Echo lines stored before migration 4 were extracted without their message columns: the backfill reads those
# from the raw line (JSON paths of the real format; extract.py's rules for odd values do not matter here,
# since Claude Code writes plain numbers and strings). Every other column is read as stored.
_OLD_ECHO = ("type = 'progress' AND progress_type = 'agent_progress' AND message_id = '' "
             "AND JSONExtractString(raw, 'data', 'message', 'type') = 'assistant'")


# Assistant lines stored before migration 4 lack the usage details it added (all empty): read from raw too.
_OLD_DETAILS = ("type = 'assistant' AND web_search_requests = 0 AND web_fetch_requests = 0 AND service_tier = '' "
                "AND speed = '' AND inference_geo = '' AND empty(advisor_usage)")


def _advisors_from_raw(keys: str) -> str:
    def n(*k: str) -> str:
        return f"JSONExtractUInt(x, {', '.join(repr(p) for p in k)})"

    fields = ", ".join([n("input_tokens"), n("output_tokens"), n("cache_creation_input_tokens"),
                        n("cache_read_input_tokens"), n("cache_creation", "ephemeral_5m_input_tokens"),
                        n("cache_creation", "ephemeral_1h_input_tokens")])
    return (f"arrayMap(x -> tuple(JSONExtractString(x, 'model'), {fields}), "
            f"arrayFilter(x -> JSONExtractString(x, 'type') = 'advisor_message' AND JSONExtractString(x, 'model') "
            f"!= '', JSONExtractArrayRaw(raw, {keys})))")


def _from_raw(column: str, kind: str, *path: str, details: bool = False) -> str:
    def read(keys: str) -> str:
        return _advisors_from_raw(keys) if kind == "Advisors" else f"JSONExtract{kind}(raw, {keys})"

    value = f"if({_OLD_ECHO}, {read(', '.join(repr(p) for p in ('data', 'message', *path)))}, {column})"
    if details:  # the assistant line's own message: path without the echo's data.message prefix
        value = f"if({_OLD_DETAILS}, {read(', '.join(repr(p) for p in path))}, {value})"
    return f"{value} AS {column}"


_BACKFILL_SOURCE = "(SELECT * REPLACE (" + ", ".join([
    _from_raw("message_id", "String", "message", "id"),
    _from_raw("request_id", "String", "requestId"),
    _from_raw("model", "String", "message", "model"),
    _from_raw("input_tokens", "UInt", "message", "usage", "input_tokens"),
    _from_raw("output_tokens", "UInt", "message", "usage", "output_tokens"),
    _from_raw("cache_creation_input_tokens", "UInt", "message", "usage", "cache_creation_input_tokens"),
    _from_raw("cache_read_input_tokens", "UInt", "message", "usage", "cache_read_input_tokens"),
    _from_raw("cache_creation_5m", "UInt", "message", "usage", "cache_creation", "ephemeral_5m_input_tokens"),
    _from_raw("cache_creation_1h", "UInt", "message", "usage", "cache_creation", "ephemeral_1h_input_tokens"),
    _from_raw("web_search_requests", "UInt", "message", "usage", "server_tool_use", "web_search_requests",
              details=True),
    _from_raw("web_fetch_requests", "UInt", "message", "usage", "server_tool_use", "web_fetch_requests",
              details=True),
    _from_raw("service_tier", "String", "message", "usage", "service_tier", details=True),
    _from_raw("speed", "String", "message", "usage", "speed", details=True),
    _from_raw("inference_geo", "String", "message", "usage", "inference_geo", details=True),
    _from_raw("advisor_usage", "Advisors", "message", "usage", "iterations", details=True),
    f"if({_OLD_ECHO}, parseDateTime64BestEffortOrZero(JSONExtractString(raw, 'data', 'message', 'timestamp'), "
    "3, 'UTC'), echo_timestamp) AS echo_timestamp",
]) + ") FROM claude_raw_traces WHERE type IN ('assistant', 'progress'))"

# rows stored before token_usage_groups_mv existed (a re-run only repeats min/max values: no change)
TOKEN_USAGE_GROUPS_BACKFILL = "INSERT INTO token_usage_groups" + _GROUPS_SELECT.format(source=_BACKFILL_SOURCE)

TOKEN_USAGE_V4 = r"""
CREATE OR REPLACE VIEW token_usage AS
SELECT
    message_id,
    if(startsWith(group_key, '@'), '', group_key) AS request_id,
    host, user, file_path, session_id, agent_id, is_sidechain, project, timestamp, toDate(timestamp) AS day,
    model, multiIf(is_advisor = 1, 'advisor', is_echo = 1, 'echo', 'assistant') AS source,
    input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens,
    cache_creation_5m, cache_creation_1h, web_search_requests, web_fetch_requests, service_tier, speed,
    inference_geo,
    splitByChar('/', file_path) AS _parts,
    arraySlice(_parts, indexOf(_parts, 'projects') + 1) AS _rel,
    length(_rel) AS _n,
    multiIf(_n = 2, replaceRegexpOne(_rel[2], '\.jsonl$', ''),
            _n >= 4 AND _rel[_n - 1] = 'subagents', _rel[_n - 2],
            _n >= 2, _rel[_n - 1], 'unknown') AS ccusage_session,
    multiIf(_n = 2, _rel[1],
            _n >= 4 AND _rel[_n - 1] = 'subagents', arrayStringConcat(arraySlice(_rel, 1, _n - 3), '/'),
            _n > 2, arrayStringConcat(arraySlice(_rel, 1, _n - 2), '/'), 'Unknown Project') AS ccusage_project
FROM
(
    SELECT
        message_id,
        group_key,
        -- the row of the largest total is the one with the smallest neg_total; ordering by (neg_total, value)
        -- takes the min across parts not yet merged, what FINAL would have merged (see migration 2)
        argMin(file_path, (neg_total, file_path)) AS file_path,
        argMin(timestamp, (neg_total, timestamp)) AS timestamp,
        argMin(session_id, (neg_total, session_id)) AS session_id,
        argMin(agent_id, (neg_total, agent_id)) AS agent_id,
        argMin(is_sidechain, (neg_total, is_sidechain)) AS is_sidechain,
        argMin(project, (neg_total, project)) AS project,
        argMin(model, neg_total) AS model,
        argMin(host, (neg_total, host)) AS host,
        argMin(user, (neg_total, user)) AS user,
        -- 0 when an assistant line is among the kept ones: 'echo' means the echo is the only record
        argMin(is_echo, (neg_total, is_echo)) AS is_echo,
        max(is_advisor) AS is_advisor,
        argMin(input_tokens, neg_total) AS input_tokens,
        argMin(output_tokens, neg_total) AS output_tokens,
        argMin(cache_creation_input_tokens, neg_total) AS cache_creation_input_tokens,
        argMin(cache_read_input_tokens, neg_total) AS cache_read_input_tokens,
        argMin(cache_creation_5m, neg_total) AS cache_creation_5m,
        argMin(cache_creation_1h, neg_total) AS cache_creation_1h,
        argMin(web_search_requests, (neg_total, -toInt64(web_search_requests))) AS web_search_requests,
        argMin(web_fetch_requests, (neg_total, -toInt64(web_fetch_requests))) AS web_fetch_requests,
        argMin(service_tier, (neg_total, service_tier = '')) AS service_tier,
        argMin(speed, (neg_total, speed = '')) AS speed,
        argMin(inference_geo, (neg_total, inference_geo = '')) AS inference_geo
    FROM token_usage_groups
    GROUP BY message_id, group_key
)
"""

# (version, statements): schema.py applies these after its own migrations, in order, once each
VIEW_MIGRATIONS: list[tuple[int, list[str]]] = [
    (2, [TOKEN_USAGE_STATE, TOKEN_USAGE_MV, TOKEN_USAGE_BACKFILL, TOKEN_USAGE, TOOL_CALLS, SUBAGENTS,
         SESSION_SUMMARY]),
]

# migration 4 (listed in schema.py after the columns it reads are added): create and fill the new state, switch
# the view to it, then drop the old state. session_summary reads token_usage and needs no change.
TOKEN_USAGE_V4_STATEMENTS: list[str] = [
    TOKEN_USAGE_GROUPS, TOKEN_USAGE_GROUPS_MV, TOKEN_USAGE_GROUPS_BACKFILL, TOKEN_USAGE_V4,
    "DROP VIEW IF EXISTS token_usage_mv", "DROP TABLE IF EXISTS token_usage_state",
]
