"""claude_raw_traces' columns computed inside ClickHouse: the sink's fast path, twin of stream/store/extract.py.

Why: in Python the sink spent about 17 µs a row decoding JSON and picking fields, and clickhouse-connect another
~10 µs turning rows into columns, so the sink could not reach half the speed of a plain insert (issue #5). Here
the sink inserts ONE row per raw chunk into the Null table `raw_chunks`: the chunk's header fields, its records'
offsets, line numbers and redaction counts as arrays, and the Kafka message itself (a header line, then one
record per line: the sink neither copies nor splits it, no per-line work happens in Python). The materialized
view `raw_chunks_to_traces` splits the lines, drops the header (ARRAY JOIN; a record count that differs from the
header's is an error, so the chunk is refused whole) and extracts every column with ONE JSONExtract per line
into a typed tuple, in C++ and off the GIL.

stream/store/extract.py stays the specification; tests/integration/test_extraction_sql.py checks that both give the
same row for every line of the fixture corpus and for odd lines of every kind. The shape's leaves are `Dynamic`,
so a value's JSON type is known and a number where a string belongs counts as absent, as in extract.py.

Known differences, accepted because the raw line is stored either way and Claude Code never writes them:
a key repeated in one object (ClickHouse reads the first, Python the last); an array where an object belongs
(ClickHouse fills a named tuple from an array by position; `toolUseResult`, the one container that really is an
array at times, is re-read by path whenever the tuple saw an agentId, so it never differs); and an integer
beyond 64 bits where a string belongs (ClickHouse reads it as the string of its digits).

Changing the SQL here changes what NEW stores get; an applied migration is never re-run, so a change also needs
a migration that creates the new view under a new name and then drops the old one (migration 4 in schema.py):
created first, so a sink inserting meanwhile loses no line (for an instant both views write; the copies have
the same identity and merge), and `view_ddl(3)` keeps producing what migration 3 created.
"""

from __future__ import annotations

from typing import Any

from stream.store.extract import TIMESTAMP_PATTERN

RAW_CHUNKS_TABLE = "raw_chunks"
RAW_CHUNKS_VIEW = "raw_chunks_to_traces_v4"  # migration 4; migration 3 created raw_chunks_to_traces
RAW_CHUNKS_VIEW_V3 = "raw_chunks_to_traces"
# the columns migration 4 added (usage details of current Claude Code, the echoed response's time)
V4_COLUMNS: tuple[str, ...] = ("web_search_requests", "web_fetch_requests", "service_tier", "speed",
                               "inference_geo", "advisor_usage", "echo_timestamp")

# what the sink inserts, one row per chunk (stream/store/writer.py: chunk_row)
RAW_CHUNK_COLUMNS: list[str] = [
    "host", "user", "file_id", "incarnation", "file_path", "file_session_id", "file_agent_id",
    "offsets", "line_nos", "redactions", "message", "ingested_at",
]

RAW_CHUNKS_DDL = f"""
CREATE TABLE IF NOT EXISTS {RAW_CHUNKS_TABLE}
(
    host             String,
    user             String,
    file_id          String,
    incarnation      UInt32,
    file_path        String,
    file_session_id  String,
    file_agent_id    String,
    offsets          Array(UInt64),
    line_nos         Array(UInt32),
    redactions       Array(UInt32),   -- empty: no record was redacted
    message          String,          -- a line the view skips (the Kafka header), then one record per line
    ingested_at      DateTime64(3, 'UTC')
)
ENGINE = Null
"""


def _obj(**fields: str) -> str:
    return "Tuple(" + ", ".join(f"{name} {typ}" for name, typ in fields.items()) + ")"


_ANY = "Dynamic"  # a leaf of any JSON type; dynamicType() tells which
_BLOCK = _obj(type=_ANY, id=_ANY, name=_ANY, tool_use_id=_ANY, is_error=_ANY)
_CACHE_CREATION = _obj(ephemeral_5m_input_tokens=_ANY, ephemeral_1h_input_tokens=_ANY)
_ITERATION = _obj(type=_ANY, model=_ANY, input_tokens=_ANY, output_tokens=_ANY, cache_creation_input_tokens=_ANY,
                  cache_read_input_tokens=_ANY, cache_creation=_CACHE_CREATION)
_USAGE = _obj(input_tokens=_ANY, output_tokens=_ANY, cache_creation_input_tokens=_ANY, cache_read_input_tokens=_ANY,
              cache_creation=_CACHE_CREATION,
              server_tool_use=_obj(web_search_requests=_ANY, web_fetch_requests=_ANY),
              service_tier=_ANY, speed=_ANY, inference_geo=_ANY, iterations=f"Array({_ITERATION})")
LINE_SHAPE = _obj(
    type=_ANY, sessionId=_ANY, timestamp=_ANY, subtype=_ANY, operation=_ANY, cwd=_ANY, uuid=_ANY,
    parentUuid=_ANY, logicalParentUuid=_ANY, version=_ANY, gitBranch=_ANY, slug=_ANY, requestId=_ANY,
    agentId=_ANY, isSidechain=_ANY, isMeta=_ANY, isCompactSummary=_ANY, isApiErrorMessage=_ANY,
    snapshot=_obj(timestamp=_ANY),
    message=_obj(model=_ANY, id=_ANY, stop_reason=_ANY, usage=_USAGE, content=f"Array({_BLOCK})"),
    toolUseResult=_obj(agentId=_ANY),
    # a subagent's response echoed in the parent file (agent_progress): data.message is the subagent's line
    data=_obj(type=_ANY, agentId=_ANY,
              message=_obj(type=_ANY, timestamp=_ANY, requestId=_ANY,
                           message=_obj(model=_ANY, id=_ANY, stop_reason=_ANY, usage=_USAGE))),
)


# ---- the rules of extract.py, as SQL over Dynamic leaves --------------------------------------------------
def text(x: str) -> str:
    """extract._str: a JSON string's value; anything else (absent, null, number, object...) is ''."""
    return f"ifNull(dynamicElement({x}, 'String'), '')"


def flag(x: str) -> str:
    """extract._flag: true, 1 and the strings "true" and "1"."""
    return f"(toString({x}) IN ('true', '1'))"


def tokens(x: str) -> str:
    """extract._tokens: a count as UInt64; negative, fractional beyond 2^63, boolean or non-numeric → 0."""
    return (f"multiIf(dynamicType({x}) = 'Int64', toUInt64(greatest(dynamicElement({x}, 'Int64'), 0)), "
            f"dynamicType({x}) = 'UInt64', assumeNotNull(dynamicElement({x}, 'UInt64')), "
            f"dynamicType({x}) = 'Float64', if(dynamicElement({x}, 'Float64') >= 0 "
            f"AND dynamicElement({x}, 'Float64') < 9223372036854775808., "
            f"toUInt64(assumeNotNull(dynamicElement({x}, 'Float64'))), 0), "
            f"dynamicType({x}) = 'String', if(match({text(x)}, '^[0-9]+$') AND length({text(x)}) <= 20, "
            f"toUInt64OrZero({text(x)}), 0), 0)")


def timestamp(x: str) -> str:
    """extract.parse_timestamp: an ISO-8601 string of the accepted shape → DateTime64(3), else NULL."""
    return (f"if(match({text(x)}, '{TIMESTAMP_PATTERN}'), "
            f"parseDateTime64BestEffortOrNull({text(x)}, 3, 'UTC'), NULL)")


def msg(rule: Any, path: str) -> str:
    """A message field: of the echoed response on an echo line (is_echo), else of the line's own message."""
    return f"if(is_echo, {rule('j.data.message.message.' + path)}, {rule('j.message.' + path)})"


def advisors(iterations: str) -> str:
    """extract.advisor_usage: the advisor_message iterations with a model, as (model, tokens...) tuples."""
    fields = ", ".join(tokens(f"it.{f}") for f in (
        "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
        "cache_creation.ephemeral_5m_input_tokens", "cache_creation.ephemeral_1h_input_tokens"))
    return (f"arrayMap(it -> tuple({text('it.model')}, {fields}), "
            f"arrayFilter(it -> {text('it.type')} = 'advisor_message' AND {text('it.model')} != '', {iterations}))")


_RESULT_AGENT_BY_PATH = "JSONExtract(raw, 'toolUseResult', 'agentId', 'Dynamic')"


def _blocks(kind: str) -> str:
    return f"arrayFilter(b -> {text('b.type')} = '{kind}', j.message.content)"


_COLUMNS: dict[str, str] = {
    "host": "host",
    "user": "user",
    "file_id": "file_id",
    "incarnation": "incarnation",
    "byte_offset": "byte_offset",
    "line_no": "line_no",
    "file_path": "file_path",
    "session_id": f"if({text('j.sessionId')} != '', {text('j.sessionId')}, file_session_id)",
    "agent_id": f"if({text('j.agentId')} != '', {text('j.agentId')}, file_agent_id)",
    "is_sidechain": flag("j.isSidechain"),
    "project": text("j.cwd"),
    "type": text("j.type"),
    "subtype": (f"if(dynamicType(j.subtype) = 'None' AND {text('j.type')} = 'queue-operation', "
                f"{text('j.operation')}, {text('j.subtype')})"),
    "uuid": text("j.uuid"),
    "parent_uuid": text("j.parentUuid"),
    "logical_parent_uuid": text("j.logicalParentUuid"),
    "timestamp": "coalesce(line_ts, snapshot_ts, toDateTime64(0, 3, 'UTC'))",
    "timestamp_missing": "isNull(line_ts) AND isNull(snapshot_ts)",
    "missing_fields": ("arrayFilter(f -> f != '', ["
                       "if(is_object, '', 'json'), "
                       f"if({text('j.type')} = '', 'type', ''), "
                       "if(dynamicType(j.sessionId) = 'None', 'sessionId', ''), "
                       "if(isNull(line_ts), 'timestamp', '')])"),
    "version": text("j.version"),
    "git_branch": text("j.gitBranch"),
    "slug": text("j.slug"),
    "model": msg(text, "model"),
    "message_id": msg(text, "id"),
    "request_id": f"if(is_echo, {text('j.data.message.requestId')}, {text('j.requestId')})",
    "stop_reason": msg(text, "stop_reason"),
    "input_tokens": msg(tokens, "usage.input_tokens"),
    "output_tokens": msg(tokens, "usage.output_tokens"),
    "cache_creation_input_tokens": msg(tokens, "usage.cache_creation_input_tokens"),
    "cache_read_input_tokens": msg(tokens, "usage.cache_read_input_tokens"),
    "cache_creation_5m": msg(tokens, "usage.cache_creation.ephemeral_5m_input_tokens"),
    "cache_creation_1h": msg(tokens, "usage.cache_creation.ephemeral_1h_input_tokens"),
    "web_search_requests": msg(tokens, "usage.server_tool_use.web_search_requests"),
    "web_fetch_requests": msg(tokens, "usage.server_tool_use.web_fetch_requests"),
    "service_tier": msg(text, "usage.service_tier"),
    "speed": msg(text, "usage.speed"),
    "inference_geo": msg(text, "usage.inference_geo"),
    "advisor_usage": msg(advisors, "usage.iterations"),
    "tool_use_ids": f"arrayMap(b -> {text('b.id')}, {_blocks('tool_use')})",
    "tool_use_names": f"arrayMap(b -> {text('b.name')}, {_blocks('tool_use')})",
    "tool_result_ids": f"arrayMap(b -> {text('b.tool_use_id')}, {_blocks('tool_result')})",
    "tool_result_is_error": f"arrayMap(b -> toUInt8({flag('b.is_error')}), {_blocks('tool_result')})",
    # re-read by path only when the tuple saw one: an array toolUseResult must not be read by position
    "result_agent_id": f"if({text('j.toolUseResult.agentId')} = '', '', {text(_RESULT_AGENT_BY_PATH)})",
    "progress_type": f"if({text('j.type')} = 'progress', {text('j.data.type')}, '')",
    "progress_agent_id": (f"if({text('j.type')} = 'progress' AND {text('j.data.type')} = 'agent_progress', "
                          f"{text('j.data.agentId')}, '')"),
    "echo_timestamp": "if(is_echo, coalesce(echo_ts, toDateTime64(0, 3, 'UTC')), toDateTime64(0, 3, 'UTC'))",
    "is_meta": flag("j.isMeta"),
    "is_compact_summary": flag("j.isCompactSummary"),
    "is_api_error": flag("j.isApiErrorMessage"),
    "redactions": "redaction_count",
    "raw": "raw",
    "ingested_at": "ingested_at",
}

# JSONExtract into Dynamic would otherwise turn date-like strings into Date/DateTime64 (and then text() ≠ the
# string): read every JSON string as a String, whatever it looks like.
_VIEW_SETTINGS = "input_format_try_infer_dates = 0, input_format_try_infer_datetimes = 0"


_IS_ECHO = (f"{text('j.type')} = 'progress' AND {text('j.data.type')} = 'agent_progress' "
            f"AND {text('j.data.message.type')} = 'assistant'")


def view_ddl(version: int = 4) -> str:
    """The materialized view from raw_chunks into claude_raw_traces, as migration `version` creates it.

    Version 3 is what migration 3 created: the columns the table had then and no echoes (is_echo is 0, so every
    message column reads the line's own message, exactly as before); a store that ran it keeps it until
    migration 4 replaces it. Version 4 is the current extraction, every column of RAW_TRACES_COLUMNS."""
    from stream.store.extract import RAW_TRACES_COLUMNS

    assert list(_COLUMNS) == RAW_TRACES_COLUMNS, "the view must produce exactly claude_raw_traces' columns"
    columns = {k: v for k, v in _COLUMNS.items() if version >= 4 or k not in V4_COLUMNS}
    name, is_echo = (RAW_CHUNKS_VIEW, _IS_ECHO) if version >= 4 else (RAW_CHUNKS_VIEW_V3, "0")
    select = ",\n    ".join(f"{expr} AS {col}" if expr != col else col for col, expr in columns.items())
    return f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS {name} TO claude_raw_traces AS
SELECT
    {select}
FROM
(
    SELECT
        host, user, file_id, incarnation, file_path, file_session_id, file_agent_id, ingested_at,
        raw, byte_offset, line_no, redaction_count,
        startsWith(raw, '{{') AND isValidJSON(raw) AS is_object,
        JSONExtract(if(is_object, raw, '{{}}'), '{LINE_SHAPE}') AS j,
        {timestamp('j.timestamp')} AS line_ts,
        {timestamp('j.snapshot.timestamp')} AS snapshot_ts,
        {is_echo} AS is_echo,
        {timestamp('j.data.message.timestamp')} AS echo_ts
    FROM {RAW_CHUNKS_TABLE}
    ARRAY JOIN
        arrayPopFront(splitByChar('\\n', message)) AS raw,
        offsets AS byte_offset,
        line_nos AS line_no,
        if(empty(redactions), arrayResize([toUInt32(0)], length(offsets)), redactions) AS redaction_count
)
SETTINGS {_VIEW_SETTINGS}
"""

