"""Pure: one transcript record (one JSON object of a Claude Code transcript) → one row of claude_raw_traces.

No I/O and no clock: every value comes from the line, its chunk and the `ingested_at` the caller passes, so the
same line always yields the same sort-key columns (session_id, timestamp) and ReplacingMergeTree can merge
re-deliveries (see stream/store/schema.py). The format is open-ended (docs/transcript-format.md):
every field is optional, unknown `type`s are kept (their raw line is stored), `toolUseResult` may be a
string, `content` a string or a list, `usage` absent or full of nulls.

Subagent echoes: a `progress` line with `data.type = "agent_progress"` whose `data.message.type` is
"assistant" carries a subagent's API response (`data.message.message`, `data.message.requestId`,
`data.message.timestamp`). For such a line the message columns (model, message_id, request_id, stop_reason,
usage) describe the echoed response and `echo_timestamp` is its time; `type` stays "progress" (so views over
assistant lines are unchanged) and the sort key keeps the line's own timestamp. Often the echo is the only
record that a request was made (docs/analytics.md).

Advisor calls: `usage.iterations` entries of type "advisor_message" are sub-inferences billed under their own
`model` and left out of the response's top-level counts; `advisor_usage` keeps each as (model, input, output,
cache creation, cache read, 5m writes, 1h writes).

Timestamps travel as int milliseconds since the epoch: that is exactly a DateTime64(3) tick, so
clickhouse-connect writes them without building a datetime per row.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from stream.contract.raw_chunk import RawChunk, Record

RAW_TRACES_COLUMNS: list[str] = [
    "host", "user", "file_id", "incarnation", "byte_offset", "line_no", "file_path",
    "session_id", "agent_id", "is_sidechain", "project", "type", "subtype",
    "uuid", "parent_uuid", "logical_parent_uuid",
    "timestamp", "timestamp_missing", "missing_fields",
    "version", "git_branch", "slug",
    "model", "message_id", "request_id", "stop_reason",
    "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
    "cache_creation_5m", "cache_creation_1h",
    "web_search_requests", "web_fetch_requests", "service_tier", "speed", "inference_geo", "advisor_usage",
    "tool_use_ids", "tool_use_names", "tool_result_ids", "tool_result_is_error",
    "result_agent_id", "progress_type", "progress_agent_id", "echo_timestamp",
    "is_meta", "is_compact_summary", "is_api_error",
    "redactions", "raw", "ingested_at",
]
# record types whose fields extraction or the views interpret; every other type (summary, custom-title, ai-title,
# attachment, pr-link and whatever Claude Code adds next) is stored raw with the common columns only, and
# `ccstream status` counts them by type
MODELLED_TYPES: tuple[str, ...] = ("user", "assistant", "system", "progress", "file-history-snapshot",
                                   "queue-operation")
COLUMN_INDEX: dict[str, int] = {name: i for i, name in enumerate(RAW_TRACES_COLUMNS)}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
UINT64_MAX = 2**64 - 1

# The timestamps taken: ISO-8601 date, optionally with a time (minutes, seconds, up to 9 fraction digits) and a
# Z or ±HH:MM zone, years 1900-2299 (DateTime64's range). One pattern for Python and ClickHouse (RE2), without
# backslashes so it can sit in a SQL string literal as is: what each parser would accept beyond it differs.
TIMESTAMP_PATTERN = (
    "^(19|2[0-2])[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    "([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]{1,9})?)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?)?$"
)
_TIMESTAMP = re.compile(TIMESTAMP_PATTERN)
_DIGITS = re.compile("^[0-9]+$")


def to_millis(dt: datetime) -> int:
    """DateTime64(3) ticks of a datetime; a naive datetime is taken as UTC (never the local zone)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _MS


def parse_timestamp(value: Any) -> int | None:
    """ISO-8601 (`2026-01-06T18:02:36.763Z`, see TIMESTAMP_PATTERN) → epoch milliseconds, or None if absent,
    not a string, not of that shape or not a real date. No zone means UTC, never the local zone."""
    if not isinstance(value, str) or not _TIMESTAMP.match(value):
        return None
    try:
        return to_millis(datetime.fromisoformat(value))
    except ValueError:  # the right shape, but not a date (February 30th)
        return None


def _str(value: Any) -> str:
    """A JSON string's value; any other value (null, a number, an object...) counts as absent."""
    return value if isinstance(value, str) else ""


def _flag(value: Any) -> int:
    """true, 1 (or 1.0) and the strings "true" and "1"."""
    return 1 if value is True or value == 1 or value == "true" or value == "1" else 0


def _tokens(value: Any) -> int:
    """A token count as UInt64: a non-negative integer, a float's integer part below 2^63, or a string of
    ASCII digits; null, negative, boolean, too large or non-numeric → 0 (the raw line keeps the truth)."""
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int):
        return value if 0 <= value <= UINT64_MAX else 0
    if isinstance(value, float) and value == value and 0 <= value < 2**63:  # NaN fails value == value
        return int(value)
    if isinstance(value, str) and _DIGITS.match(value):
        n = int(value)
        return n if n <= UINT64_MAX else 0
    return 0


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def advisor_usage(usage: dict[str, Any]) -> list[tuple[str, int, int, int, int, int, int]]:
    """The advisor sub-inferences of a usage object: iterations of type "advisor_message" with a model."""
    out: list[tuple[str, int, int, int, int, int, int]] = []
    iterations = usage.get("iterations")
    if not isinstance(iterations, list):
        return out
    for it in iterations:
        if not isinstance(it, dict) or it.get("type") != "advisor_message":
            continue
        model = _str(it.get("model"))
        if not model:
            continue
        cc = _dict(it.get("cache_creation"))
        out.append((model, _tokens(it.get("input_tokens")), _tokens(it.get("output_tokens")),
                    _tokens(it.get("cache_creation_input_tokens")), _tokens(it.get("cache_read_input_tokens")),
                    _tokens(cc.get("ephemeral_5m_input_tokens")), _tokens(cc.get("ephemeral_1h_input_tokens"))))
    return out


def decode_object(raw: bytes) -> dict[str, Any] | None:
    """The line as a JSON object, or None (not JSON, not UTF-8, or JSON that is not an object).

    orjson first: JSON decoding is most of the sink's CPU (it parses about twice as fast as json on this
    corpus). json only for what orjson refuses but json takes (integers beyond 64 bits)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return None
    return obj if isinstance(obj, dict) else None


def extract_row(raw: bytes, chunk: RawChunk, record: Record, ingested_at: datetime, redactions: int = 0,
                obj: dict[str, Any] | None = None) -> tuple[Any, ...]:
    """The row of `record` (stored as `raw`, which may be the redacted form of record.raw) in RAW_TRACES_COLUMNS
    order. `obj` may pass the already-decoded line; otherwise `raw` is decoded once here."""
    if obj is None:
        obj = decode_object(raw)
        if obj is None and raw is not record.raw:
            # redaction must keep JSON valid; if it ever did not, columns still come from the line itself
            obj = decode_object(record.raw)
    missing: list[str] = []
    if obj is None:
        obj = {}
        missing.append("json")

    typ = obj.get("type")
    if not isinstance(typ, str) or not typ:
        missing.append("type")
        typ = ""

    session_id = obj.get("sessionId")
    if session_id is None:  # absent or null
        missing.append("sessionId")
    if not isinstance(session_id, str) or not session_id:
        session_id = chunk.session_id  # snapshots and summaries carry none: the file's session

    ts = parse_timestamp(obj.get("timestamp"))
    timestamp_missing = 0
    if ts is None:
        missing.append("timestamp")
        # file-history-snapshot lines keep their time inside the snapshot; otherwise 1970 (never "now":
        # the timestamp is in the sort key and must be the same on every delivery of the line)
        ts = parse_timestamp(_dict(obj.get("snapshot")).get("timestamp"))
        if ts is None:
            ts = 0
            timestamp_missing = 1

    subtype = obj.get("subtype")
    if subtype is None and typ == "queue-operation":
        subtype = obj.get("operation")

    data = _dict(obj.get("data")) if typ == "progress" else {}
    progress_type = _str(data.get("type"))
    progress_agent_id = _str(data.get("agentId")) if progress_type == "agent_progress" else ""
    echo = _dict(data.get("message")) if progress_type == "agent_progress" else {}
    if echo.get("type") != "assistant":
        echo = {}

    # message: model, ids and usage (assistant, or the echoed response), tool_use / tool_result blocks
    # (assistant / user: an echo's blocks are the subagent's, read from its own file)
    top = _dict(obj.get("message"))
    msg = _dict(echo.get("message")) if echo else top
    request_id = echo.get("requestId") if echo else obj.get("requestId")
    echo_ts = (parse_timestamp(echo.get("timestamp")) or 0) if echo else 0
    usage = _dict(msg.get("usage"))
    cache_creation = _dict(usage.get("cache_creation"))
    server_tools = _dict(usage.get("server_tool_use"))
    tool_use_ids: list[str] = []
    tool_use_names: list[str] = []
    tool_result_ids: list[str] = []
    tool_result_is_error: list[int] = []
    content = top.get("content")
    if isinstance(content, list):
        for block in content:
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "tool_use":
                tool_use_ids.append(_str(block.get("id")))
                tool_use_names.append(_str(block.get("name")))
            elif kind == "tool_result":
                tool_result_ids.append(_str(block.get("tool_use_id")))
                tool_result_is_error.append(_flag(block.get("is_error")))

    agent_id = obj.get("agentId")
    if not isinstance(agent_id, str) or not agent_id:
        agent_id = chunk.agent_id or ""

    return (
        chunk.host,
        chunk.user,
        chunk.file_id,
        chunk.incarnation,
        record.offset,
        record.line_no,
        chunk.path,
        session_id,
        agent_id,
        _flag(obj.get("isSidechain")),
        _str(obj.get("cwd")),
        typ,
        _str(subtype),
        _str(obj.get("uuid")),
        _str(obj.get("parentUuid")),
        _str(obj.get("logicalParentUuid")),
        ts,
        timestamp_missing,
        missing,
        _str(obj.get("version")),
        _str(obj.get("gitBranch")),
        _str(obj.get("slug")),
        _str(msg.get("model")),
        _str(msg.get("id")),
        _str(request_id),
        _str(msg.get("stop_reason")),
        _tokens(usage.get("input_tokens")),
        _tokens(usage.get("output_tokens")),
        _tokens(usage.get("cache_creation_input_tokens")),
        _tokens(usage.get("cache_read_input_tokens")),
        _tokens(cache_creation.get("ephemeral_5m_input_tokens")),
        _tokens(cache_creation.get("ephemeral_1h_input_tokens")),
        _tokens(server_tools.get("web_search_requests")),
        _tokens(server_tools.get("web_fetch_requests")),
        _str(usage.get("service_tier")),
        _str(usage.get("speed")),
        _str(usage.get("inference_geo")),
        advisor_usage(usage),
        tool_use_ids,
        tool_use_names,
        tool_result_ids,
        tool_result_is_error,
        _str(_dict(obj.get("toolUseResult")).get("agentId")),  # a string toolUseResult has no agent
        progress_type,
        progress_agent_id,
        echo_ts,
        _flag(obj.get("isMeta")),
        _flag(obj.get("isCompactSummary")),
        _flag(obj.get("isApiErrorMessage")),
        redactions,
        raw,
        to_millis(ingested_at),
    )


def extract_chunk(chunk: RawChunk, ingested_at: datetime) -> list[tuple[Any, ...]]:
    """Rows of every record of a chunk, unredacted (the writer applies its redactor per line)."""
    return [extract_row(r.raw, chunk, r, ingested_at) for r in chunk.records()]
