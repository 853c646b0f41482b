"""OTLP bodies → the exporter's rows (stream/otel/decode.py), and the ccstream.otel message around them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from stream.contract.otel_record import OtelRecord, split
from stream.otel.decode import (
    GAUGE,
    HISTOGRAM,
    LOGS,
    SUM,
    TRACES,
    BadRequest,
    decode,
    record_id,
    session_of,
    value_text,
)
from tests.unit.otel import claude_code as cc

SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "stream/contract/schemas/otel-record.schema.json")
                    .read_text())


def _proto_of_json(signal: str, body: bytes) -> bytes:
    """The same request as protobuf, made by protobuf itself from the JSON (ids converted the OTLP way)."""
    from stream.otel.decode import parse_request

    return parse_request(signal, body, is_json=True).SerializeToString()


def test_claude_code_events_become_otel_logs_rows_with_their_attributes() -> None:
    body = cc.logs_body(cc.session_events("s-1", ["req_01", "req_02"]))
    d = decode("logs", body, is_json=True)
    rows = d.rows[LOGS]
    assert [r["Body"] for r in rows] == ["claude_code.user_prompt", "claude_code.api_error",
                                          "claude_code.api_request", "claude_code.api_request",
                                          "claude_code.tool_decision", "claude_code.tool_result"]
    api = rows[2]
    assert api["ServiceName"] == "claude-code"
    assert api["Timestamp"] == cc.T0 + 1_000_000_000
    assert api["ScopeName"] == "com.anthropic.claude_code.events" and api["ScopeVersion"] == cc.VERSION
    assert api["ResourceAttributes"]["os.type"] == "linux"
    la = api["LogAttributes"]
    assert la["event.name"] == "api_request" and la["request_id"] == "req_01"
    assert la["session.id"] == "s-1" and la["user.email"] == "ada@example.com"
    assert la["user.account_uuid"] == "acc-1" and la["organization.id"] == "org-1"
    assert la["cost_usd"] == "0.0123" and la["input_tokens"] == "10" and la["duration_ms"] == "1500"
    assert rows[1]["LogAttributes"]["attempt"] == "1" and rows[1]["LogAttributes"]["status_code"] == "529"
    assert all(session_of(LOGS, r) == "s-1" for r in rows)
    assert d.count() == 6 and d.rejected == 0


def test_json_and_protobuf_of_one_request_give_identical_rows() -> None:
    for signal, body in (("logs", cc.logs_body(cc.session_events("s-2", ["r1"]))),
                         ("metrics", cc.metrics_body("s-2"))):
        from_json = decode(signal, body, is_json=True)
        from_proto = decode(signal, _proto_of_json(signal, body), is_json=False)
        assert from_json.rows == from_proto.rows
        assert from_json.count() > 0


def test_claude_code_metrics_become_sum_rows() -> None:
    d = decode("metrics", cc.metrics_body("s-3", cost=0.5), is_json=True)
    rows = d.rows[SUM]
    assert {r["MetricName"] for r in rows} == {"claude_code.cost.usage", "claude_code.token.usage"}
    cost = next(r for r in rows if r["MetricName"] == "claude_code.cost.usage")
    assert cost["Value"] == 0.5 and cost["MetricUnit"] == "USD"
    assert cost["AggregationTemporality"] == 1 and cost["IsMonotonic"] is True
    assert cost["Attributes"]["session.id"] == "s-3" and cost["Attributes"]["model"].startswith("claude-")
    tokens = {r["Attributes"]["type"]: r["Value"] for r in rows if r["MetricName"] == "claude_code.token.usage"}
    assert tokens == {"input": 33.0, "output": 600.0, "cacheRead": 9000.0, "cacheCreation": 450.0}
    assert cost["TimeUnix"] == cc.T0 + 60_000_000_000 and cost["StartTimeUnix"] == cc.T0
    assert cost["Exemplars.TraceId"] == []


def test_gauges_histograms_and_unsupported_kinds() -> None:
    req = ExportMetricsServiceRequest()
    sm = req.resource_metrics.add().scope_metrics.add()
    g = sm.metrics.add(name="g")
    g.gauge.data_points.add(as_int=7, time_unix_nano=5)
    h = sm.metrics.add(name="h")
    p = h.histogram.data_points.add(count=3, sum=6.5, min=1.0, max=4.0, time_unix_nano=6)
    p.bucket_counts.extend([1, 2, 0])
    p.explicit_bounds.extend([2.0, 5.0])
    e = sm.metrics.add(name="e")
    e.exponential_histogram.data_points.add(count=1)
    e.exponential_histogram.data_points.add(count=2)
    d = decode("metrics", req.SerializeToString(), is_json=False)
    assert d.rows[GAUGE][0]["Value"] == 7.0
    hr = d.rows[HISTOGRAM][0]
    assert (hr["Count"], hr["Sum"], hr["BucketCounts"], hr["ExplicitBounds"], hr["Min"], hr["Max"]) == (
        3, 6.5, [1, 2, 0], [2.0, 5.0], 1.0, 4.0)
    assert d.rejected == 2 and "exponential_histogram" in d.reject_reason


def test_spans_take_the_exporters_string_forms() -> None:
    body = json.dumps({"resourceSpans": [{"resource": cc.resource(), "scopeSpans": [{"scope": {"name": "cc"},
        "spans": [{"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                   "parentSpanId": "eee19b7ec3c1b173", "name": "claude_code.interaction", "kind": 3,
                   "startTimeUnixNano": "100", "endTimeUnixNano": "350",
                   "attributes": cc.attrs({"session.id": "s-4"}),
                   "status": {"code": 2, "message": "boom"},
                   "events": [{"timeUnixNano": "120", "name": "retry", "attributes": cc.attrs({"n": 1})}],
                   "links": [{"traceId": "5b8efff798038103d269b633813fc60d", "spanId": "eee19b7ec3c1b175"}]}]}]}]
    }).encode()
    row = decode("traces", body, is_json=True).rows[TRACES][0]
    assert row["TraceId"] == "5b8efff798038103d269b633813fc60c" and row["SpanId"] == "eee19b7ec3c1b174"
    assert row["ParentSpanId"] == "eee19b7ec3c1b173"
    assert (row["SpanKind"], row["StatusCode"], row["StatusMessage"], row["Duration"]) == ("Client", "Error",
                                                                                          "boom", 250)
    assert row["Events.Name"] == ["retry"] and row["Events.Attributes"] == [{"n": "1"}]
    assert row["Links.TraceId"] == ["5b8efff798038103d269b633813fc60d"]
    assert session_of(TRACES, row) == "s-4"
    proto = decode("traces", _proto_of_json("traces", body), is_json=False).rows[TRACES][0]
    assert proto == row


def test_attribute_values_are_written_as_the_exporter_writes_them() -> None:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    assert value_text(AnyValue(double_value=0.0123)) == "0.0123"
    assert value_text(AnyValue(double_value=1e-07)) == "0.0000001"
    assert value_text(AnyValue(double_value=3.0)) == "3"
    assert value_text(AnyValue(int_value=-5)) == "-5"
    assert value_text(AnyValue(bool_value=True)) == "true"
    arr = AnyValue()
    arr.array_value.values.add(string_value="a")
    arr.array_value.values.add(int_value=2)
    assert value_text(arr) == '["a",2]'


@pytest.mark.parametrize("signal,cls", [("logs", ExportLogsServiceRequest), ("metrics", ExportMetricsServiceRequest),
                                        ("traces", ExportTraceServiceRequest)])
def test_truncated_protobuf_is_a_bad_request(signal: str, cls: Any) -> None:
    body = {"logs": lambda: cc.logs_body(cc.session_events("s", ["r"])), "metrics": lambda: cc.metrics_body("s"),
            "traces": lambda: json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
                {"name": "x", "traceId": "5b8efff798038103d269b633813fc60c"}]}]}]}).encode()}[signal]()
    whole = _proto_of_json(signal, body)
    assert decode(signal, whole, is_json=False).count() > 0
    with pytest.raises(BadRequest, match="protobuf"):
        decode(signal, whole[: len(whole) // 2 + 3], is_json=False)


def test_bad_json_bodies_are_bad_requests() -> None:
    for body in (b"{not json", b"[1,2]", b'{"resourceLogs": 5}',
                 b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}',
                 b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"abcd"}]}]}]}'):
        with pytest.raises(BadRequest):
            decode("traces" if b"Spans" in body else "logs", body, is_json=True)


def test_the_same_record_has_the_same_id_and_another_record_another() -> None:
    a = decode("logs", cc.logs_body(cc.session_events("s-5", ["r1", "r2"])), is_json=True).rows[LOGS]
    b = decode("logs", cc.logs_body(cc.session_events("s-5", ["r1", "r2"])), is_json=True).rows[LOGS]
    assert [r["RecordId"] for r in a] == [r["RecordId"] for r in b]
    assert len({r["RecordId"] for r in a}) == len(a)
    other = dict(a[0], Timestamp=a[0]["Timestamp"] + 1)
    other.pop("RecordId")
    assert record_id(LOGS, other) != a[0]["RecordId"]


def test_messages_are_one_session_each_under_the_size_limit_and_valid() -> None:
    rows = []
    for sid in ("s-a", "s-b"):
        d = decode("logs", cc.logs_body(cc.session_events(sid, [f"{sid}-{i}" for i in range(30)])), is_json=True)
        rows += [(session_of(LOGS, r), LOGS, r) for r in d.rows[LOGS]]
    msgs = split("logs", "host-1", 1.5, rows, limit=8_000)
    assert len(msgs) > 2
    assert {m.session_id for m in msgs} == {"s-a", "s-b"}
    assert sorted(i for m in msgs for i in m.record_ids()) == sorted(r["RecordId"] for _, _, r in rows)
    for m in msgs:
        encoded = m.encode()
        assert len(encoded) <= 8_000 + 2_000  # one row may overshoot; rows here are well under 2 kB
        assert m.key() == m.session_id.encode()
        jsonschema.validate(json.loads(encoded), SCHEMA)
        back = OtelRecord.decode(encoded)
        assert back.tables == m.tables and back.session_id == m.session_id and back.host == "host-1"
    metrics = decode("metrics", cc.metrics_body("s-c"), is_json=True)
    for m in split("metrics", "h", 1.0, [(session_of(SUM, r), SUM, r) for r in metrics.rows[SUM]]):
        jsonschema.validate(json.loads(m.encode()), SCHEMA)


def test_messages_of_unknown_versions_or_tables_are_refused() -> None:
    good = json.loads(split("logs", "h", 1.0, [("s", LOGS, {"RecordId": "a" * 32})])[0].encode())
    for bad in ({**good, "v": 2}, {**good, "signal": "profiles"}, {**good, "tables": {"otel_x": []}},
                {**good, "tables": {"otel_logs": [{"Body": "no id"}]}}):
        with pytest.raises(ValueError):
            OtelRecord.decode(json.dumps(bad))
