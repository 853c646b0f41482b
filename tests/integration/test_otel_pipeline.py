"""Claude Code's telemetry through a real `ccstream worker` (edge and sink roles): its OTLP receiver, real
Tansu, the otel sink, chDB in the worker, rows read back through the worker's SQL page.

* the real opentelemetry-sdk with the OTLP/HTTP protobuf exporters as the client: logs, metrics and spans
  each land once, with their attributes, in the exporter's tables;
* JSON bodies shaped like Claude Code's documented events and metrics land once in the right tables; the
  same export sent again (a retry) and a replay leave one copy (FINAL, and physically after a merge);
* the join: a transcript and OTel events with the same session and request ids give the joined rows, with
  ccstream's cost beside Claude Code's, and `ccstream sessions` shows the user;
* bad input gets a 4xx, stores nothing, and the receiver keeps serving;
* a worker SIGKILLed during an export: the exporter's own retry lands every record once.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import logging
import os
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stream.analytics.pricing import load_pricing
from stream.contract.identity import file_id_for
from stream.contract.raw_chunk import RawChunk
from stream.otel.decode import parse_request
from stream.otel.queries import api_requests
from stream.stack.servers import TansuBroker, free_port, port_open
from tests.integration.workers import CcstreamProcess
from tests.unit.otel import claude_code as cc
from tests.unit.store.test_extract import consecutive_records

pytestmark = pytest.mark.integration
MAX_BODY = 256 * 1024


def start_worker(tansu: TansuBroker, data_dir: Path, prefix: str, otlp_port: int) -> CcstreamProcess:
    roots = data_dir / "projects"
    roots.mkdir(parents=True, exist_ok=True)
    w = CcstreamProcess("worker", data_dir, {
        "kafka_bootstrap": tansu.bootstrap, "broker_is_ephemeral": "1", "app_id": f"{prefix}-app",
        "topic_prefix": prefix, "sink_batch_seconds": "0.2", "sink_retry_max_seconds": "1",
        "claude_roots": str(roots), "otlp_port": str(otlp_port), "scan_interval": "3600",
        "otlp_max_body_bytes": str(MAX_BODY)})
    w.start()
    w.wait_ready(120)
    deadline = time.monotonic() + 30
    while not port_open("127.0.0.1", otlp_port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert port_open("127.0.0.1", otlp_port), w.tail_log(30)
    return w


@pytest.fixture(scope="module")
def worker(tansu: TansuBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CcstreamProcess]:
    port = free_port()
    w = start_worker(tansu, tmp_path_factory.mktemp("otelw"), f"otel{uuid.uuid4().hex[:6]}", port)
    w.otlp_port = port  # type: ignore[attr-defined]
    yield w
    w.stop()


def otlp(worker: CcstreamProcess) -> str:
    return f"http://127.0.0.1:{worker.otlp_port}"  # type: ignore[attr-defined]


def post(url: str, body: bytes, ctype: str, **headers: str) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": ctype, **headers})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def n(worker: CcstreamProcess, sql: str, params: dict[str, Any] | None = None) -> int:
    return int(worker.query(sql, params)[0]["n"])


def wait_rows(worker: CcstreamProcess, sql: str, params: dict[str, Any], want: int, what: str) -> None:
    worker.wait_until(lambda: n(worker, sql, params) >= want, 60, what)
    assert n(worker, sql, params) == want, what


# ---- the real SDK as the client ------------------------------------------------------------------------------


def test_the_sdk_exporters_land_logs_metrics_and_spans_once_with_their_attributes(worker: CcstreamProcess) -> None:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    sid = f"sdk-{uuid.uuid4().hex[:8]}"
    resource = Resource.create({"service.name": "claude-code", "service.version": cc.VERSION})
    base = otlp(worker)

    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=base + "/v1/logs")))
    logger = logs.get_logger("com.anthropic.claude_code.events", cc.VERSION)
    for i in range(5):
        logger.emit(body="claude_code.api_request", event_name="claude_code.api_request",
                    attributes={"event.name": "api_request", "session.id": sid, "user.email": "sdk@example.com",
                                "request_id": f"{sid}-r{i}", "cost_usd": 0.25 * i, "input_tokens": 10 + i,
                                "model": "claude-opus-4-1-20250805"})
    assert logs.force_flush(30_000)
    logs.shutdown()

    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=base + "/v1/metrics"),
                                           export_interval_millis=3_600_000)
    meters = MeterProvider(resource=resource, metric_readers=[reader])
    meter = meters.get_meter("com.anthropic.claude_code", cc.VERSION)
    meter.create_counter("claude_code.cost.usage", unit="USD").add(1.5, {"session.id": sid, "model": "m"})
    meter.create_histogram("claude_code.hook.duration", unit="ms").record(12.0, {"session.id": sid})
    meter.create_observable_gauge("claude_code.active.sessions",
                                  callbacks=[lambda _opts: [Observation(7, {"session.id": sid})]])
    assert meters.force_flush(30_000)
    meters.shutdown()

    traces = TracerProvider(resource=resource)
    traces.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=base + "/v1/traces")))
    tracer = traces.get_tracer("com.anthropic.claude_code")
    with tracer.start_as_current_span("claude_code.interaction", attributes={"session.id": sid}) as outer:
        with tracer.start_as_current_span("claude_code.llm_request", attributes={"session.id": sid}):
            pass
        trace_id = format(outer.get_span_context().trace_id, "032x")
    traces.shutdown()

    p = {"s": sid}
    wait_rows(worker, "SELECT count() AS n FROM otel_logs FINAL WHERE LogAttributes['session.id'] = {s:String}",
              p, 5, "the SDK's log records")
    rows = worker.query("SELECT Body, ServiceName, ScopeName, LogAttributes['request_id'] AS rid, "
                        "LogAttributes['cost_usd'] AS cost, LogAttributes['user.email'] AS email "
                        "FROM otel_logs FINAL WHERE LogAttributes['session.id'] = {s:String} ORDER BY rid", p)
    assert [r["rid"] for r in rows] == [f"{sid}-r{i}" for i in range(5)]
    assert [r["cost"] for r in rows] == ["0", "0.25", "0.5", "0.75", "1"]
    assert {(r["Body"], r["ServiceName"], r["ScopeName"], r["email"]) for r in rows} == {
        ("claude_code.api_request", "claude-code", "com.anthropic.claude_code.events", "sdk@example.com")}

    # force_flush and shutdown each export: a cumulative series, two points of it, with their own times
    wait_rows(worker, "SELECT count() AS n FROM otel_metrics_sum FINAL WHERE Attributes['session.id'] = {s:String}",
              p, 2, "the counter")
    sums = worker.query("SELECT MetricName, MetricUnit, Value, IsMonotonic, AggregationTemporality, "
                        "toString(TimeUnix) AS t FROM otel_metrics_sum FINAL WHERE Attributes['session.id'] = "
                        "{s:String}", p)
    assert {(x["MetricName"], x["MetricUnit"], float(x["Value"]), x["IsMonotonic"], int(x["AggregationTemporality"]))
            for x in sums} == {("claude_code.cost.usage", "USD", 1.5, True, 2)}
    assert len({x["t"] for x in sums}) == 2
    total = worker.query("SELECT value FROM otel_session_metrics WHERE session_id = {s:String} AND "
                         "metric = 'claude_code.cost.usage'", p)
    assert [float(x["value"]) for x in total] == [1.5]  # a cumulative series counts at its last value
    wait_rows(worker, "SELECT count() AS n FROM otel_metrics_histogram FINAL "
              "WHERE Attributes['session.id'] = {s:String}", p, 2, "the histogram")
    hs = worker.query("SELECT Count, Sum, Min, Max, length(BucketCounts) = length(ExplicitBounds) + 1 AS ok "
                      "FROM otel_metrics_histogram FINAL WHERE Attributes['session.id'] = {s:String}", p)
    assert {(int(h["Count"]), float(h["Sum"]), float(h["Min"]), float(h["Max"]), h["ok"]) for h in hs} == {
        (1, 12.0, 12.0, 12.0, 1)}
    wait_rows(worker, "SELECT count() AS n FROM otel_metrics_gauge FINAL WHERE Attributes['session.id'] = {s:String}",
              p, 2, "the gauge")
    assert {float(x["Value"]) for x in worker.query(
        "SELECT Value FROM otel_metrics_gauge FINAL WHERE Attributes['session.id'] = {s:String}", p)} == {7.0}
    wait_rows(worker, "SELECT count() AS n FROM otel_traces FINAL WHERE SpanAttributes['session.id'] = {s:String}",
              p, 2, "the spans")
    spans = worker.query("SELECT SpanName, TraceId, ParentSpanId != '' AS child, SpanKind, StatusCode FROM "
                         "otel_traces FINAL WHERE SpanAttributes['session.id'] = {s:String} ORDER BY SpanName", p)
    assert [(x["SpanName"], x["TraceId"], x["child"]) for x in spans] == [
        ("claude_code.interaction", trace_id, 0), ("claude_code.llm_request", trace_id, 1)]
    assert {(x["SpanKind"], x["StatusCode"]) for x in spans} == {("Internal", "Unset")}


# ---- Claude Code's documented events and metrics, as JSON --------------------------------------------------


def test_claude_code_json_lands_once_in_the_right_tables_and_a_retry_changes_nothing(
        worker: CcstreamProcess) -> None:
    sid = f"json-{uuid.uuid4().hex[:8]}"
    logs = cc.logs_body(cc.session_events(sid, [f"{sid}-r1", f"{sid}-r2"]))
    metrics = cc.metrics_body(sid)
    assert post(otlp(worker) + "/v1/logs", logs, "application/json")[0] == 200
    assert post(otlp(worker) + "/v1/metrics", gzip.compress(metrics), "application/json",
                **{"Content-Encoding": "gzip"})[0] == 200
    p = {"s": sid}
    events = "SELECT count() AS n FROM otel_logs FINAL WHERE LogAttributes['session.id'] = {s:String}"
    points = "SELECT count() AS n FROM otel_metrics_sum FINAL WHERE Attributes['session.id'] = {s:String}"
    wait_rows(worker, events, p, 6, "the events")
    wait_rows(worker, points, p, 5, "the metric points")
    by_event = {r["event"]: int(r["n"]) for r in worker.query(
        "SELECT event, count() AS n FROM otel_events WHERE session_id = {s:String} GROUP BY event", p)}
    assert by_event == {"user_prompt": 1, "api_error": 1, "api_request": 2, "tool_decision": 1, "tool_result": 1}
    tool = worker.query("SELECT tool_name, decision, decision_source FROM otel_events WHERE session_id = {s:String} "
                        "AND event = 'tool_decision'", p)[0]
    assert (tool["tool_name"], tool["decision"], tool["decision_source"]) == ("Bash", "accept", "config")
    tokens = {r["t"]: float(r["v"]) for r in worker.query(
        "SELECT Attributes['type'] AS t, Value AS v FROM otel_metrics_sum FINAL WHERE Attributes['session.id'] = "
        "{s:String} AND MetricName = 'claude_code.token.usage'", p)}
    assert tokens == {"input": 33.0, "output": 600.0, "cacheRead": 9000.0, "cacheCreation": 450.0}
    # nothing of it in the other tables
    for table, attrs in (("otel_traces", "SpanAttributes"), ("otel_metrics_gauge", "Attributes"),
                         ("otel_metrics_histogram", "Attributes")):
        assert n(worker, f"SELECT count() AS n FROM {table} WHERE {attrs}['session.id'] = {{s:String}}", p) == 0

    # the exporter retrying the same exports (its answer was lost), once as protobuf: same records, same ids
    before = worker.status()["rows_inserted"]
    assert post(otlp(worker) + "/v1/logs", logs, "application/json")[0] == 200
    proto = parse_request("metrics", metrics, is_json=True).SerializeToString()
    assert post(otlp(worker) + "/v1/metrics", proto, "application/x-protobuf")[0] == 200
    worker.wait_until(lambda: worker.status()["rows_inserted"] - before >= 11, 60, "the retried exports")
    assert n(worker, events, p) == 6 and n(worker, points, p) == 5
    worker.query("OPTIMIZE TABLE otel_logs FINAL")
    worker.query("OPTIMIZE TABLE otel_metrics_sum FINAL")
    assert n(worker, events.replace(" FINAL", ""), p) == 6  # physically one copy once merged
    assert n(worker, points.replace(" FINAL", ""), p) == 5
    s = worker.query("SELECT user_email, user_account_uuid, organization_id, api_requests, api_errors, "
                     "round(cc_cost_usd, 4) AS cost, tool_accepts FROM otel_sessions WHERE session_id = {s:String}",
                     p)[0]
    assert (s["user_email"], s["user_account_uuid"], s["organization_id"]) == ("ada@example.com", "acc-1", "org-1")
    assert (int(s["api_requests"]), int(s["api_errors"]), float(s["cost"]), int(s["tool_accepts"])) == (
        2, 1, 0.0369, 1)
    m = {(r["metric"], r["type"]): float(r["value"]) for r in worker.query(
        "SELECT metric, type, value FROM otel_session_metrics WHERE session_id = {s:String}", p)}
    assert m[("claude_code.cost.usage", "")] == pytest.approx(0.0369)
    assert m[("claude_code.token.usage", "cacheRead")] == 9000.0


# ---- the join --------------------------------------------------------------------------------------------


def _transcript_chunk(sid: str, request_ids: list[str], host: str) -> RawChunk:
    lines = [json.dumps({"type": "user", "sessionId": sid, "uuid": f"{sid}-u0", "timestamp": "2026-01-01T00:00:00Z",
                         "cwd": "/w/proj", "message": {"role": "user", "content": "hello"}}).encode()]
    for i, rid in enumerate(request_ids):
        lines.append(json.dumps({
            "type": "assistant", "sessionId": sid, "uuid": f"{sid}-a{i}", "parentUuid": f"{sid}-u0",
            "timestamp": f"2026-01-01T00:00:0{i + 1}Z", "requestId": rid, "cwd": "/w/proj",
            "message": {"id": f"msg_{sid}_{i}", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
                        "type": "message", "content": [{"type": "text", "text": "hi"}],
                        "usage": {"input_tokens": 10 + i, "output_tokens": 200, "cache_creation_input_tokens": 150,
                                  "cache_read_input_tokens": 3000}}}).encode())
    records, end = consecutive_records(lines)
    path = f"/home/u/.claude/projects/-w-proj/{sid}.jsonl"
    return RawChunk.from_records(host, "u1", path, file_id_for(host, path), 0, "fp", sid, None, records, end, len(records))


async def _produce(bootstrap: str, topic: str, chunk: RawChunk) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        await (await producer.send(topic, chunk.encode(), key=chunk.session_id.encode()))
    finally:
        await producer.stop()


def test_a_transcript_and_otel_events_of_one_session_join_per_request_and_per_session(
        worker: CcstreamProcess, tansu: TansuBroker) -> None:
    sid = f"join-{uuid.uuid4().hex[:8]}"
    rids = [f"req_{sid}_1", f"req_{sid}_2"]
    prefix = (worker.env or {})["CCSTREAM_TOPIC_PREFIX"]
    asyncio.run(_produce(tansu.bootstrap, f"{prefix}.raw-events", _transcript_chunk(sid, rids + [f"req_{sid}_only"],
                                                                                     "join-host")))
    assert post(otlp(worker) + "/v1/logs", cc.logs_body(cc.session_events(sid, rids)), "application/json")[0] == 200
    p = {"s": sid}
    wait_rows(worker, "SELECT count() AS n FROM claude_raw_traces FINAL WHERE session_id = {s:String}", p, 4,
              "the transcript")
    wait_rows(worker, "SELECT count() AS n FROM otel_events WHERE session_id = {s:String}", p, 6, "the events")

    pricing = load_pricing()
    rows = api_requests(worker.query, pricing, session_id=sid)
    by_id = {r["request_id"]: r for r in rows}
    assert set(by_id) == {*rids, f"req_{sid}_only"}
    first, second, only = by_id[rids[0]], by_id[rids[1]], by_id[f"req_{sid}_only"]
    assert (first["in_otel"], first["in_transcript"], only["in_otel"], only["in_transcript"]) == (1, 1, 0, 1)
    assert first["user_email"] == "ada@example.com"
    # Claude Code's figures beside the transcript's: cost, latency, the failed attempt before the answer
    assert float(first["cc_cost_usd"]) == pytest.approx(0.0123) and float(second["cc_cost_usd"]) == pytest.approx(
        0.0246)
    assert (float(first["duration_ms"]), int(first["attempts"]), int(first["retries"]), int(first["errors"])) == (
        1500.0, 2, 1, 1)
    assert first["last_error"] == "Overloaded" and int(second["retries"]) == 0
    assert (int(first["cc_input_tokens"]), int(first["input_tokens"])) == (10, 10)
    assert (int(second["cc_output_tokens"]), int(second["output_tokens"])) == (200, 200)
    assert (int(first["cc_cache_read_tokens"]), int(first["cache_read_input_tokens"])) == (3000, 3000)
    expected = pricing.cost("claude-sonnet-4-5-20250929", 10, 200, 150, 3000)
    assert expected > 0
    assert float(first["ccstream_cost_usd"]) == pytest.approx(expected, abs=1e-6)  # rounded to 6 places

    # `ccstream sessions` shows the user and Claude Code's cost beside ccstream's
    from stream.cli.analytics import main_sessions

    out = io.StringIO()
    assert main_sessions(["--json"], query=worker.query, pricing=pricing, out=out) == 0
    mine = [r for r in json.loads(out.getvalue()) if r["session_id"] == sid]
    assert len(mine) == 1
    assert mine[0]["otel_user"] == "ada@example.com"
    assert float(mine[0]["cc_cost_usd"]) == pytest.approx(0.0369)
    assert float(mine[0]["cost_usd"]) > 0
    table = io.StringIO()
    assert main_sessions([], query=worker.query, pricing=pricing, out=table) == 0
    assert "ada@example.com" in table.getvalue()


# ---- bad input -------------------------------------------------------------------------------------------


def test_bad_input_gets_a_4xx_stores_nothing_and_the_receiver_keeps_serving(worker: CcstreamProcess) -> None:
    sid = f"bad-{uuid.uuid4().hex[:8]}"
    good = cc.logs_body(cc.session_events(sid, [f"{sid}-r1"]))
    proto = parse_request("logs", good, is_json=True).SerializeToString()
    url = otlp(worker) + "/v1/logs"
    assert post(url, proto[:-9], "application/x-protobuf")[0] == 400
    assert post(url, good, "text/plain")[0] == 415
    status, body = post(url, b"{" + b" " * MAX_BODY + b"}", "application/json")
    assert status == 413 and b"CCSTREAM_OTLP_MAX_BODY_BYTES" in body
    time.sleep(2)  # what a wrongly accepted request would need to reach the table
    p = {"s": sid}
    assert n(worker, "SELECT count() AS n FROM otel_logs WHERE LogAttributes['session.id'] = {s:String}", p) == 0
    assert post(url, proto, "application/x-protobuf")[0] == 200
    wait_rows(worker, "SELECT count() AS n FROM otel_logs FINAL WHERE LogAttributes['session.id'] = {s:String}",
              p, 5, "the good request after the bad ones")


# ---- SIGKILL during an export ------------------------------------------------------------------------------


def test_a_worker_killed_during_an_export_the_exporters_retry_lands_every_record_once(
        tansu: TansuBroker, tmp_path: Path, procs: list[CcstreamProcess],
        caplog: pytest.LogCaptureFixture) -> None:
    """The worker is frozen (SIGSTOP), so the export's request is accepted by the kernel and sent but never
    answered: the export is in flight. Then the worker is SIGKILLed (the exporter sees its connection reset)
    and started again on the same port; the SDK exporter's own retries (connection errors, then 503 while the
    new worker's broker connection comes up) deliver the batch. Every record is stored once."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    port = free_port()
    prefix = f"okill{uuid.uuid4().hex[:6]}"
    first = start_worker(tansu, tmp_path / "w", prefix, port)
    procs.append(first)
    sid = f"kill-{uuid.uuid4().hex[:8]}"
    total = 400
    logs = LoggerProvider(resource=Resource.create({"service.name": "claude-code"}))
    logs.add_log_record_processor(BatchLogRecordProcessor(
        OTLPLogExporter(endpoint=f"http://127.0.0.1:{port}/v1/logs", timeout=150),
        schedule_delay_millis=3_600_000, max_export_batch_size=total, max_queue_size=total * 2))
    logger = logs.get_logger("com.anthropic.claude_code.events")
    for i in range(total):
        logger.emit(body="claude_code.tool_result", attributes={"event.name": "tool_result", "session.id": sid,
                                                                "event.sequence": i, "tool_name": "Read"})
    caplog.set_level(logging.WARNING, logger="opentelemetry")
    os.kill(first.pid, signal.SIGSTOP)  # type: ignore[arg-type]
    result: list[bool] = []
    flusher = threading.Thread(target=lambda: result.append(logs.force_flush(160_000)))
    flusher.start()
    time.sleep(1.0)  # the request is sent and waits for an answer that will not come
    assert flusher.is_alive(), "the export finished although the worker was frozen"
    first.kill()
    second = start_worker(tansu, tmp_path / "w", prefix, port)
    procs.append(second)
    flusher.join(170)
    assert result == [True], second.tail_log(30)
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert retries, "the export landed without a retry: the kill did not interrupt it"
    p = {"s": sid}
    sql = "SELECT count() AS n, uniqExact(LogAttributes['event.sequence']) AS u FROM otel_logs FINAL " \
          "WHERE LogAttributes['session.id'] = {s:String}"
    second.wait_until(lambda: int(second.query(sql, p)[0]["n"]) >= total, 90, "every record")
    row = second.query(sql, p)[0]
    assert (int(row["n"]), int(row["u"])) == (total, total)
    second.query("OPTIMIZE TABLE otel_logs FINAL")
    assert n(second, "SELECT count() AS n FROM otel_logs WHERE LogAttributes['session.id'] = {s:String}", p) == total
    logs.shutdown()
