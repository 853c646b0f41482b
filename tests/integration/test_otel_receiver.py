"""The OTLP receiver in process (stream/otel/receiver.py): its real aiohttp server, its real aiokafka producer,
against the real Tansu broker, read back from the topic with a real consumer.

* a request is answered 200 only once its messages are on the topic, keyed by session id;
* bad input (truncated protobuf, wrong content type, oversized body, missing token) gets a clear 4xx,
  nothing reaches the topic, and the receiver keeps serving;
* no CORS: a preflight gets no Access-Control-* header;
* with the broker unreachable it answers 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest

from stream.config import Settings
from stream.contract.otel_record import OtelRecord
from stream.otel.decode import parse_request
from stream.otel.receiver import OtlpReceiver
from stream.stack.servers import TansuBroker, free_port
from tests.unit.otel import claude_code as cc

pytestmark = pytest.mark.integration
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "stream/contract/schemas/otel-record.schema.json")
                    .read_text())


def settings(tmp: Path, bootstrap: str, **extra: Any) -> Settings:
    return Settings(data_dir=tmp, kafka_bootstrap=bootstrap, topic_prefix=f"rcv{uuid.uuid4().hex[:6]}",
                    otlp_port=free_port(), **extra)


async def consume(bootstrap: str, topic: str, want: int, timeout: float = 20.0) -> list[tuple[bytes, OtelRecord]]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    out: list[tuple[bytes, OtelRecord]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and (len(out) < want or want == 0):
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                for m in msgs:
                    jsonschema.validate(json.loads(m.value), SCHEMA)  # the topic's contract, on real messages
                    out.append((m.key or b"", OtelRecord.decode(m.value)))
            if want == 0 and loop.time() > deadline - timeout + 3:
                break  # nothing expected: three seconds of nothing is enough
    finally:
        await consumer.stop()
    return out


Run = Callable[[Settings, Callable[[str, OtlpReceiver], Awaitable[None]]], None]


@pytest.fixture()
def run() -> Run:
    def go(s: Settings, body: Callable[[str, OtlpReceiver], Awaitable[None]]) -> None:
        async def main() -> None:
            rcv = OtlpReceiver(s)
            await rcv.start()
            try:
                assert rcv.listening
                await body(f"http://127.0.0.1:{s.otlp_port}", rcv)
            finally:
                await rcv.stop()
        asyncio.run(main())
    return go


async def post(url: str, body: bytes, ctype: str, **headers: str) -> tuple[int, bytes, dict[str, str]]:
    async with aiohttp.ClientSession() as http, http.post(url, data=body,
                                                          headers={"Content-Type": ctype, **headers}) as r:
        return r.status, await r.read(), dict(r.headers)


def test_accepted_requests_are_on_the_topic_keyed_by_session(tansu: TansuBroker, tmp_path: Path, run: Run) -> None:
    s = settings(tmp_path, tansu.bootstrap)
    logs = cc.logs_body(cc.session_events("sess-a", ["r1", "r2"]))
    metrics = cc.metrics_body("sess-b")

    async def body(url: str, rcv: OtlpReceiver) -> None:
        status, data, headers = await post(url + "/v1/logs", logs, "application/json")
        assert status == 200 and headers["Content-Type"].startswith("application/json")
        assert json.loads(data) == {}  # an ExportLogsServiceResponse without partial success
        proto = parse_request("metrics", metrics, is_json=True).SerializeToString()
        status, data, headers = await post(url + "/v1/metrics", gzip.compress(proto), "application/x-protobuf",
                                           **{"Content-Encoding": "gzip"})
        assert status == 200 and headers["Content-Type"] == "application/x-protobuf"
        got = await consume(tansu.bootstrap, s.topic_otel, 2)
        by_key = {k: r for k, r in got}
        assert set(by_key) == {b"sess-a", b"sess-b"}
        assert by_key[b"sess-a"].row_count() == 6 and set(by_key[b"sess-a"].tables) == {"otel_logs"}
        assert by_key[b"sess-b"].row_count() == 5 and set(by_key[b"sess-b"].tables) == {"otel_metrics_sum"}
        assert rcv.stats.accepted == 2 and rcv.stats.refused == 0

    run(s, body)


def test_bad_input_gets_a_clear_4xx_nothing_is_produced_and_serving_goes_on(
        tansu: TansuBroker, tmp_path: Path, run: Run) -> None:
    s = settings(tmp_path, tansu.bootstrap, otlp_max_body_bytes=64 * 1024)
    good = cc.logs_body(cc.session_events("sess-ok", ["r1"]))
    proto = parse_request("logs", good, is_json=True).SerializeToString()

    async def body(url: str, rcv: OtlpReceiver) -> None:
        cases = [
            (proto[: len(proto) - 7], "application/x-protobuf", {}, 400, "protobuf"),
            (good, "text/plain", {}, 415, "application/x-protobuf"),
            (good, "application/x-www-form-urlencoded", {}, 415, "content type"),
            (b"x" * (64 * 1024 + 1), "application/json", {}, 413, "CCSTREAM_OTLP_MAX_BODY_BYTES"),
            (gzip.compress(b" " * (1024 * 1024)), "application/json", {"Content-Encoding": "gzip"}, 413, "inflates"),
            (b"{broken", "application/json", {}, 400, "JSON"),
        ]
        for data, ctype, headers, want, text in cases:
            status, out, resp_headers = await post(url + "/v1/logs", data, ctype, **headers)
            assert status == want, (ctype, out)
            assert text.lower() in out.decode("utf-8", "replace").lower()
            assert not any(h.lower().startswith("access-control-") for h in resp_headers)
        assert await consume(tansu.bootstrap, s.topic_otel, 0) == []  # nothing of it reached Kafka
        # the protobuf error body is a google.rpc.Status: field 1 code, field 2 message
        status, out, _ = await post(url + "/v1/logs", proto[:-7], "application/x-protobuf")
        assert status == 400 and out[0] == 0x08 and b"protobuf" in out
        # a preflight from a web page gets no CORS grant
        async with aiohttp.ClientSession() as http, http.options(url + "/v1/logs", headers={
                "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}) as r:
            assert r.status in (403, 405)
            assert not any(h.lower().startswith("access-control-") for h in r.headers)
        status, _, _ = await post(url + "/v1/logs", proto, "application/x-protobuf")  # still serving
        assert status == 200
        got = await consume(tansu.bootstrap, s.topic_otel, 1)
        assert [k for k, _ in got] == [b"sess-ok"]
        assert rcv.stats.refused == 7

    run(s, body)


def test_a_token_when_configured_is_required(tansu: TansuBroker, tmp_path: Path, run: Run) -> None:
    s = settings(tmp_path, tansu.bootstrap, otlp_token="t0ken-" + uuid.uuid4().hex)
    good = cc.logs_body(cc.session_events("sess-t", ["r1"]))

    async def body(url: str, rcv: OtlpReceiver) -> None:
        status, out, _ = await post(url + "/v1/logs", good, "application/json")
        assert status == 401 and b"OTEL_EXPORTER_OTLP_HEADERS" in out
        status, _, _ = await post(url + "/v1/logs", good, "application/json", Authorization="Bearer nope")
        assert status == 401
        status, _, _ = await post(url + "/v1/logs", good, "application/json",
                                  Authorization=f"Bearer {s.otlp_token}")
        assert status == 200

    run(s, body)


def test_beyond_loopback_without_a_token_the_receiver_stays_off(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, kafka_bootstrap="127.0.0.1:1", otlp_port=free_port(), otlp_host="0.0.0.0")

    async def main() -> None:
        rcv = OtlpReceiver(s)
        await rcv.start()
        try:
            assert not rcv.listening  # refused to bind, logged one line; nothing exposed
        finally:
            await rcv.stop()
    asyncio.run(main())


def test_broker_unreachable_answers_503_with_retry_after(tmp_path: Path, run: Run) -> None:
    s = settings(tmp_path, f"127.0.0.1:{free_port()}")  # nothing listens there
    good = cc.logs_body(cc.session_events("sess-down", ["r1"]))

    async def body(url: str, rcv: OtlpReceiver) -> None:
        status, out, headers = await post(url + "/v1/logs", good, "application/json")
        assert status == 503
        assert int(headers["Retry-After"]) > 0
        assert b"Kafka unavailable" in out
        assert rcv.stats.unavailable == 1

    run(s, body)
