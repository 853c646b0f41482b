"""OTLP/HTTP request bodies → rows of the OpenTelemetry Collector ClickHouse exporter's tables.

Decoding uses the official `opentelemetry-proto` messages: protobuf bodies parse directly, JSON bodies go
through protobuf's JSON mapping after the one OTLP deviation from it is undone (trace and span ids are hex in
OTLP/JSON, base64 in the proto3 mapping). The rows carry the exporter's column names and its string forms
(attribute values as text, `SpanKind` "Server", `StatusCode` "Error", ids as lowercase hex), so dashboards
made for that exporter read them unchanged (stream/store/otel_schema.py has the tables).

Every row also gets `RecordId`, a hash of everything it carries: the same record exported again (a retry
after a lost answer, a replayed Kafka message) gets the same id, so the tables' ReplacingMergeTree keys,
which end with it, keep one copy.

Pure: no I/O. Exponential histograms and summaries have no table here; they are counted as rejected points
(the OTLP partial-success answer says so) rather than silently dropped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

SIGNALS = ("logs", "metrics", "traces")
LOGS, TRACES = "otel_logs", "otel_traces"
SUM, GAUGE, HISTOGRAM = "otel_metrics_sum", "otel_metrics_gauge", "otel_metrics_histogram"
TABLES = (LOGS, TRACES, SUM, GAUGE, HISTOGRAM)

# the attribute that names Claude Code's session on its events and metrics
SESSION_ATTRIBUTE = "session.id"

_REQUESTS: dict[str, type[Message]] = {
    "logs": ExportLogsServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "traces": ExportTraceServiceRequest,
}
_ID_KEYS = {"traceId": 16, "spanId": 8, "parentSpanId": 8}
_SPAN_KINDS = {0: "Unspecified", 1: "Internal", 2: "Server", 3: "Client", 4: "Producer", 5: "Consumer"}
_STATUS_CODES = {0: "Unset", 1: "Ok", 2: "Error"}

Row = dict[str, Any]


class BadRequest(ValueError):
    """The body is not a valid OTLP request of its signal; the message says what is wrong (answered 400)."""


@dataclass
class Decoded:
    """What one request holds: rows per table, and how many items had no table (rejected, not lost
    silently)."""

    rows: dict[str, list[Row]] = field(default_factory=lambda: {t: [] for t in TABLES})
    rejected: int = 0
    reject_reason: str = ""

    def count(self) -> int:
        return sum(len(v) for v in self.rows.values())


def parse_request(signal: str, body: bytes, is_json: bool) -> Message:
    """The export request message of `signal` from a protobuf or OTLP/JSON body."""
    cls = _REQUESTS[signal]
    msg = cls()
    if is_json:
        try:
            obj = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"body is not JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise BadRequest("an OTLP/JSON body must be a JSON object")
        try:
            json_format.ParseDict(_hex_ids_to_base64(obj), msg, ignore_unknown_fields=True)
        except (json_format.ParseError, ValueError, TypeError) as exc:
            raise BadRequest(f"not an OTLP/JSON {signal} request: {exc}") from exc
        return msg
    try:
        msg.ParseFromString(body)
    except (DecodeError, ValueError) as exc:
        raise BadRequest(f"not a protobuf {signal} request: {exc or 'truncated or malformed'}") from exc
    return msg


def decode(signal: str, body: bytes, is_json: bool) -> Decoded:
    """Rows for the exporter's tables from one request body; raises BadRequest for an invalid body."""
    if signal not in _REQUESTS:
        raise BadRequest(f"unknown signal {signal!r}")
    msg = parse_request(signal, body, is_json)
    out = Decoded()
    if signal == "logs":
        _logs(msg, out)
    elif signal == "traces":
        _traces(msg, out)
    else:
        _metrics(msg, out)
    return out


def session_of(table: str, row: Row) -> str:
    """The Claude Code session a row belongs to ('' when it names none): record attributes first, then the
    resource's."""
    attrs = row.get("LogAttributes") if table == LOGS else (
        row.get("SpanAttributes") if table == TRACES else row.get("Attributes"))
    return str((attrs or {}).get(SESSION_ATTRIBUTE) or row.get("ResourceAttributes", {}).get(SESSION_ATTRIBUTE)
               or "")


# ---- values ------------------------------------------------------------------------------------------------


def _hex_ids_to_base64(obj: Any) -> Any:
    """OTLP/JSON writes trace and span ids as hex; protobuf's JSON mapping expects bytes as base64."""
    if isinstance(obj, list):
        return [_hex_ids_to_base64(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    out = {}
    for k, v in obj.items():
        if k in _ID_KEYS and isinstance(v, str):
            try:
                raw = bytes.fromhex(v)
            except ValueError as exc:
                raise BadRequest(f"{k} {v!r} is not hex") from exc
            if raw and len(raw) != _ID_KEYS[k]:
                raise BadRequest(f"{k} {v!r} must be {_ID_KEYS[k]} bytes")
            out[k] = base64.b64encode(raw).decode()
        else:
            out[k] = _hex_ids_to_base64(v)
    return out


def _float_text(v: float) -> str:
    """A double the way the exporter writes it (Go's FormatFloat 'f', -1): shortest digits, no exponent."""
    if math.isnan(v) or math.isinf(v):
        return "NaN" if math.isnan(v) else ("+Inf" if v > 0 else "-Inf")
    if v == int(v) and abs(v) < 1e21:
        return str(int(v))
    text = repr(v)
    if "e" in text or "E" in text:
        from decimal import Decimal

        text = format(Decimal(text), "f")
    return text


def _plain(v: AnyValue) -> Any:
    """An AnyValue as a JSON-able Python value (for arrays and maps inside attributes)."""
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "int_value":
        return v.int_value
    if kind == "double_value":
        return v.double_value
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    if kind == "array_value":
        return [_plain(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _plain(kv.value) for kv in v.kvlist_value.values}
    return None


def value_text(v: AnyValue) -> str:
    """An attribute value as the exporter's map stores it (pcommon AsString)."""
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return "true" if v.bool_value else "false"
    if kind == "int_value":
        return str(v.int_value)
    if kind == "double_value":
        return _float_text(v.double_value)
    if kind is None:
        return ""
    return json.dumps(_plain(v), separators=(",", ":"), ensure_ascii=False)


def attributes(kvs: Iterable[KeyValue]) -> dict[str, str]:
    return {kv.key: value_text(kv.value) for kv in kvs}


def _hex(b: bytes) -> str:
    return binascii.hexlify(b).decode() if any(b) else ""


def record_id(table: str, row: Row) -> str:
    """A stable hash of a row's content (keys sorted): equal for the same record exported twice."""
    blob = json.dumps([table, row], sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def _add(out: Decoded, table: str, row: Row) -> None:
    row["RecordId"] = record_id(table, row)
    out.rows[table].append(row)


def _resource(rs: Any) -> tuple[dict[str, str], str]:
    attrs = attributes(rs.resource.attributes)
    return attrs, attrs.get("service.name", "")


def _exemplars(exs: Iterable[Any]) -> dict[str, list[Any]]:
    exs = list(exs)
    return {
        "Exemplars.FilteredAttributes": [attributes(e.filtered_attributes) for e in exs],
        "Exemplars.TimeUnix": [int(e.time_unix_nano) for e in exs],
        "Exemplars.Value": [float(e.as_double) if e.WhichOneof("value") == "as_double" else float(e.as_int)
                            for e in exs],
        "Exemplars.SpanId": [_hex(e.span_id) for e in exs],
        "Exemplars.TraceId": [_hex(e.trace_id) for e in exs],
    }


# ---- signals -----------------------------------------------------------------------------------------------


def _logs(msg: Any, out: Decoded) -> None:
    for rl in msg.resource_logs:
        res_attrs, service = _resource(rl)
        for sl in rl.scope_logs:
            scope_attrs = attributes(sl.scope.attributes)
            for lr in sl.log_records:
                ts = int(lr.time_unix_nano or lr.observed_time_unix_nano)
                _add(out, LOGS, {
                    "Timestamp": ts,
                    "TraceId": _hex(lr.trace_id),
                    "SpanId": _hex(lr.span_id),
                    "TraceFlags": int(lr.flags) & 0xFF,
                    "SeverityText": lr.severity_text,
                    "SeverityNumber": int(lr.severity_number),
                    "ServiceName": service,
                    "Body": value_text(lr.body),
                    "ResourceSchemaUrl": rl.schema_url,
                    "ResourceAttributes": res_attrs,
                    "ScopeSchemaUrl": sl.schema_url,
                    "ScopeName": sl.scope.name,
                    "ScopeVersion": sl.scope.version,
                    "ScopeAttributes": scope_attrs,
                    "LogAttributes": attributes(lr.attributes),
                })


def _traces(msg: Any, out: Decoded) -> None:
    for rs in msg.resource_spans:
        res_attrs, service = _resource(rs)
        for ss in rs.scope_spans:
            for sp in ss.spans:
                start, end = int(sp.start_time_unix_nano), int(sp.end_time_unix_nano)
                _add(out, TRACES, {
                    "Timestamp": start,
                    "TraceId": _hex(sp.trace_id),
                    "SpanId": _hex(sp.span_id),
                    "ParentSpanId": _hex(sp.parent_span_id),
                    "TraceState": sp.trace_state,
                    "SpanName": sp.name,
                    "SpanKind": _SPAN_KINDS.get(int(sp.kind), "Unspecified"),
                    "ServiceName": service,
                    "ResourceAttributes": res_attrs,
                    "ScopeName": ss.scope.name,
                    "ScopeVersion": ss.scope.version,
                    "SpanAttributes": attributes(sp.attributes),
                    "Duration": max(0, end - start),
                    "StatusCode": _STATUS_CODES.get(int(sp.status.code), "Unset"),
                    "StatusMessage": sp.status.message,
                    "Events.Timestamp": [int(e.time_unix_nano) for e in sp.events],
                    "Events.Name": [e.name for e in sp.events],
                    "Events.Attributes": [attributes(e.attributes) for e in sp.events],
                    "Links.TraceId": [_hex(lk.trace_id) for lk in sp.links],
                    "Links.SpanId": [_hex(lk.span_id) for lk in sp.links],
                    "Links.TraceState": [lk.trace_state for lk in sp.links],
                    "Links.Attributes": [attributes(lk.attributes) for lk in sp.links],
                })


def _metrics(msg: Any, out: Decoded) -> None:
    for rm in msg.resource_metrics:
        res_attrs, service = _resource(rm)
        for sm in rm.scope_metrics:
            base = {
                "ResourceAttributes": res_attrs,
                "ResourceSchemaUrl": rm.schema_url,
                "ScopeName": sm.scope.name,
                "ScopeVersion": sm.scope.version,
                "ScopeAttributes": attributes(sm.scope.attributes),
                "ScopeDroppedAttrCount": int(sm.scope.dropped_attributes_count),
                "ScopeSchemaUrl": sm.schema_url,
                "ServiceName": service,
            }
            for m in sm.metrics:
                meta = {**base, "MetricName": m.name, "MetricDescription": m.description, "MetricUnit": m.unit}
                kind = m.WhichOneof("data")
                if kind in ("sum", "gauge"):
                    data = getattr(m, kind)
                    for p in data.data_points:
                        row = {**meta, **_point(p),
                               "Value": float(p.as_double) if p.WhichOneof("value") == "as_double"
                               else float(p.as_int),
                               **_exemplars(p.exemplars)}
                        if kind == "sum":
                            row["AggregationTemporality"] = int(data.aggregation_temporality)
                            row["IsMonotonic"] = bool(data.is_monotonic)
                        _add(out, SUM if kind == "sum" else GAUGE, row)
                elif kind == "histogram":
                    for p in m.histogram.data_points:
                        _add(out, HISTOGRAM, {
                            **meta, **_point(p),
                            "Count": int(p.count),
                            "Sum": float(p.sum),
                            "BucketCounts": [int(c) for c in p.bucket_counts],
                            "ExplicitBounds": [float(b) for b in p.explicit_bounds],
                            **_exemplars(p.exemplars),
                            "Min": float(p.min),
                            "Max": float(p.max),
                            "AggregationTemporality": int(m.histogram.aggregation_temporality),
                        })
                elif kind is not None:
                    points = len(getattr(m, kind).data_points)
                    out.rejected += points
                    out.reject_reason = f"{kind} metrics are not stored (no table for them): {m.name}"


def _point(p: Any) -> Row:
    return {
        "Attributes": attributes(p.attributes),
        "StartTimeUnix": int(p.start_time_unix_nano),
        "TimeUnix": int(p.time_unix_nano),
        "Flags": int(p.flags),
    }
