"""Claude Code's own telemetry joined to the transcripts: views over the exporter's tables (otel_schema.py).

* `otel_events`: one row per Claude Code event (otel_logs FINAL), the documented attributes as columns:
  who (user.email, user.account_uuid, organization.id), what (event.name), and the event's figures.
* `otel_api_requests`: one row per API request (`request_id` of api_request / api_error events): Claude
  Code's own cost, latency, tokens, attempts, errors and the last error.
* `otel_sessions`: one row per `session.id`: the user's identity, Claude Code's cost and request counts,
  tool decisions, prompts.
* `otel_session_metrics`: per session and metric (claude_code.cost.usage, token.usage, lines_of_code,
  active_time...) and its `type`/`model` attributes, the total: delta points summed, cumulative series at
  their last value.
* `otel_request_join`: every API request seen by either side, OTel beside the transcript (claude_raw_traces,
  keyed by the transcript's `requestId`). ccstream's cost needs the price table, applied at query time
  (stream/otel/queries.py), as every cost in ccstream is.

Plain views (no state): always current; they read FINAL, so a record exported twice counts once.
"""

from __future__ import annotations

OTEL_EVENTS = r"""
CREATE OR REPLACE VIEW otel_events AS
SELECT
    Timestamp                                                           AS timestamp,
    LogAttributes['session.id']                                         AS session_id,
    if(LogAttributes['event.name'] != '', LogAttributes['event.name'],
       replaceRegexpOne(Body, '^claude_code\\.', ''))                   AS event,
    LogAttributes['prompt.id']                                          AS prompt_id,
    LogAttributes['user.email']                                         AS user_email,
    LogAttributes['user.account_uuid']                                  AS user_account_uuid,
    LogAttributes['user.id']                                            AS user_id,
    LogAttributes['organization.id']                                    AS organization_id,
    if(LogAttributes['app.version'] != '', LogAttributes['app.version'],
       ResourceAttributes['service.version'])                           AS app_version,
    LogAttributes['terminal.type']                                      AS terminal_type,
    LogAttributes['request_id']                                         AS request_id,
    LogAttributes['model']                                              AS model,
    toFloat64OrZero(LogAttributes['cost_usd'])                          AS cost_usd,
    toFloat64OrZero(LogAttributes['duration_ms'])                       AS duration_ms,
    toUInt64OrZero(LogAttributes['input_tokens'])                       AS input_tokens,
    toUInt64OrZero(LogAttributes['output_tokens'])                      AS output_tokens,
    toUInt64OrZero(LogAttributes['cache_read_tokens'])                  AS cache_read_tokens,
    toUInt64OrZero(LogAttributes['cache_creation_tokens'])              AS cache_creation_tokens,
    toUInt32OrZero(LogAttributes['attempt'])                            AS attempt,
    LogAttributes['status_code']                                        AS status_code,
    LogAttributes['error']                                              AS error,
    LogAttributes['tool_name']                                          AS tool_name,
    LogAttributes['decision']                                           AS decision,
    LogAttributes['source']                                             AS decision_source,
    LogAttributes['success']                                            AS success,
    toUInt64OrZero(LogAttributes['prompt_length'])                      AS prompt_length,
    ServiceName                                                         AS service_name,
    LogAttributes                                                       AS attributes,
    ResourceAttributes                                                  AS resource_attributes,
    RecordId                                                            AS record_id
FROM otel_logs FINAL
"""

OTEL_API_REQUESTS = r"""
CREATE OR REPLACE VIEW otel_api_requests AS
SELECT
    request_id,
    any(session_id)                                                     AS session_id,
    argMaxIf(user_email, timestamp, user_email != '')                   AS user_email,
    argMaxIf(model, timestamp, model != '')                             AS model,
    minIf(timestamp, event = 'api_request')                             AS requested_at,
    sumIf(cost_usd, event = 'api_request')                              AS cc_cost_usd,
    maxIf(duration_ms, event = 'api_request')                           AS duration_ms,
    sumIf(input_tokens, event = 'api_request')                          AS cc_input_tokens,
    sumIf(output_tokens, event = 'api_request')                         AS cc_output_tokens,
    sumIf(cache_read_tokens, event = 'api_request')                     AS cc_cache_read_tokens,
    sumIf(cache_creation_tokens, event = 'api_request')                 AS cc_cache_creation_tokens,
    countIf(event = 'api_request')                                      AS successes,
    countIf(event = 'api_error')                                        AS errors,
    -- a failed attempt before the answer is a retry; `attempt` numbers them where Claude Code sends it
    greatest(max(attempt), toUInt32(countIf(event IN ('api_request', 'api_error'))))  AS attempts,
    toUInt32(greatest(attempts, 1) - 1)                                 AS retries,
    argMaxIf(error, timestamp, event = 'api_error')                     AS last_error,
    argMaxIf(status_code, timestamp, event = 'api_error')               AS last_status_code
FROM otel_events
WHERE request_id != '' AND event IN ('api_request', 'api_error')
GROUP BY request_id
"""

OTEL_SESSIONS = r"""
CREATE OR REPLACE VIEW otel_sessions AS
SELECT
    session_id,
    argMaxIf(user_email, timestamp, user_email != '')                   AS user_email,
    argMaxIf(user_account_uuid, timestamp, user_account_uuid != '')     AS user_account_uuid,
    argMaxIf(user_id, timestamp, user_id != '')                         AS user_id,
    argMaxIf(organization_id, timestamp, organization_id != '')         AS organization_id,
    argMaxIf(app_version, timestamp, app_version != '')                 AS app_version,
    argMaxIf(terminal_type, timestamp, terminal_type != '')             AS terminal_type,
    min(timestamp)                                                      AS first_event,
    max(timestamp)                                                      AS last_event,
    count()                                                             AS events,
    countIf(event = 'user_prompt')                                      AS prompts,
    countIf(event = 'api_request')                                      AS api_requests,
    countIf(event = 'api_error')                                        AS api_errors,
    sumIf(cost_usd, event = 'api_request')                              AS cc_cost_usd,
    sumIf(duration_ms, event = 'api_request')                           AS api_duration_ms,
    countIf(event = 'tool_decision' AND decision = 'accept')            AS tool_accepts,
    countIf(event = 'tool_decision' AND decision = 'reject')            AS tool_rejects,
    countIf(event = 'tool_result')                                      AS tool_results,
    countIf(event = 'tool_result' AND success = 'false')                AS tool_failures
FROM otel_events
WHERE session_id != ''
GROUP BY session_id
"""

OTEL_SESSION_METRICS = r"""
CREATE OR REPLACE VIEW otel_session_metrics AS
SELECT
    session_id, metric, type, model,
    sum(series_value)                                                   AS value,
    max(last_time)                                                      AS last_time
FROM
(
    SELECT
        Attributes['session.id']                                        AS session_id,
        MetricName                                                      AS metric,
        Attributes['type']                                              AS type,
        Attributes['model']                                             AS model,
        -- delta points add up; a cumulative series (AggregationTemporality 2) counts at its last value
        if(any(AggregationTemporality) = 2, argMax(Value, TimeUnix), sum(Value)) AS series_value,
        max(TimeUnix)                                                   AS last_time
    FROM otel_metrics_sum FINAL
    WHERE Attributes['session.id'] != ''
    GROUP BY session_id, metric, type, model, Attributes, StartTimeUnix
)
GROUP BY session_id, metric, type, model
"""

OTEL_REQUEST_JOIN = r"""
CREATE OR REPLACE VIEW otel_request_join AS
SELECT
    if(o.request_id != '', o.request_id, t.t_request_id)                AS request_id,
    if(o.session_id != '', o.session_id, t.t_session_id)                AS session_id,
    o.request_id != ''                                                  AS in_otel,
    t.t_request_id != ''                                                AS in_transcript,
    o.user_email                                                        AS user_email,
    if(o.model != '', o.model, t.t_model)                               AS model,
    o.requested_at                                                      AS requested_at,
    o.cc_cost_usd                                                       AS cc_cost_usd,
    o.duration_ms                                                       AS duration_ms,
    o.attempts                                                          AS attempts,
    o.retries                                                           AS retries,
    o.errors                                                            AS errors,
    o.last_error                                                        AS last_error,
    o.cc_input_tokens                                                   AS cc_input_tokens,
    o.cc_output_tokens                                                  AS cc_output_tokens,
    o.cc_cache_read_tokens                                              AS cc_cache_read_tokens,
    o.cc_cache_creation_tokens                                          AS cc_cache_creation_tokens,
    t.t_model                                                           AS transcript_model,
    t.t_in                                                              AS input_tokens,
    t.t_out                                                             AS output_tokens,
    t.t_cc                                                              AS cache_creation_input_tokens,
    t.t_cr                                                              AS cache_read_input_tokens,
    t.t_cc1h                                                            AS cache_creation_1h,
    t.t_timestamp                                                       AS transcript_timestamp
FROM otel_api_requests AS o
FULL OUTER JOIN
(
    -- the transcript's side from claude_raw_traces itself (not token_usage: this migration must not need the
    -- analytics views). A response written over several lines repeats its usage as it grows, so each
    -- message counts at its largest figures, then a request's messages add up.
    SELECT request_id AS t_request_id, any(m_session_id) AS t_session_id, any(m_model) AS t_model,
           sum(m_in) AS t_in, sum(m_out) AS t_out, sum(m_cc) AS t_cc, sum(m_cr) AS t_cr, sum(m_cc1h) AS t_cc1h,
           min(m_timestamp) AS t_timestamp
    FROM
    (
        SELECT request_id, message_id, any(session_id) AS m_session_id, any(model) AS m_model,
               max(input_tokens) AS m_in, max(output_tokens) AS m_out, max(cache_creation_input_tokens) AS m_cc,
               max(cache_read_input_tokens) AS m_cr, max(cache_creation_1h) AS m_cc1h, min(timestamp) AS m_timestamp
        FROM claude_raw_traces FINAL
        WHERE request_id != '' AND type = 'assistant'
        GROUP BY request_id, message_id
    )
    GROUP BY request_id
) AS t ON o.request_id = t.t_request_id
"""

OTEL_VIEWS_DDL = [OTEL_EVENTS, OTEL_API_REQUESTS, OTEL_SESSIONS, OTEL_SESSION_METRICS, OTEL_REQUEST_JOIN]
