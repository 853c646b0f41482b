"""The OTLP/HTTP receiver: Claude Code's own telemetry into Kafka `ccstream.otel`, as a mode Service of the
edge role (so `ccstream up` has it too).

``POST /v1/logs``, ``/v1/metrics``, ``/v1/traces`` with protobuf or JSON bodies, gzip or not, on
`otlp_host`:`otlp_port` (127.0.0.1:4318 by default; port 0 turns it off). A request is answered 200 only after
every message made from it was acknowledged by the broker (acks=all), so an exporter that got 200 can forget
its data. With the broker unreachable or not acknowledging within PRODUCE_TIMEOUT it answers 503 with
Retry-After, which the OTLP exporters retry; a request may then reach Kafka twice, and the tables' RecordId
keys keep one copy. Bad input (truncated protobuf, wrong content type, oversized body, bad token) gets a 4xx
with a message saying what to do; nothing of it is produced, and the receiver goes on serving.

The receiver has an aiohttp server and an aiokafka producer of its own (as the bridge has), so it answers
from the moment the worker starts, independent of Faust's producer. A port already taken, or a bind beyond
loopback without a token, is logged as one line and leaves the receiver off; the rest of the worker runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from google.protobuf import json_format
from mode import Service

from stream.config import Settings
from stream.contract.otel_record import OtelRecord, split
from stream.otel import guard
from stream.otel.decode import BadRequest, decode, session_of

log = logging.getLogger("ccstream.otel")

PRODUCE_TIMEOUT = 10.0  # seconds for the broker to acknowledge a request's messages before answering 503
RETRY_AFTER_SECONDS = 2  # what a 503 asks the exporter to wait
PATHS = {"/v1/logs": "logs", "/v1/metrics": "metrics", "/v1/traces": "traces"}


@dataclass
class ReceiverStats:
    requests: int = 0
    accepted: int = 0
    refused: int = 0
    unavailable: int = 0
    rows_produced: int = 0
    messages_produced: int = 0


class BrokerUnavailable(RuntimeError):
    """Kafka did not acknowledge in time; the request is answered 503."""


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def status_body(code: int, message: str, kind: str | None) -> tuple[bytes, str]:
    """A google.rpc.Status (what OTLP/HTTP answers 4xx/5xx with) in the request's encoding. Encoded by hand:
    two fields, and no dependency on googleapis-common-protos for them."""
    if kind == guard.PROTOBUF:
        msg = message.encode()
        return b"\x08" + _varint(code) + b"\x12" + _varint(len(msg)) + msg, "application/x-protobuf"
    return json.dumps({"code": code, "message": message}).encode(), "application/json"


def _grpc_code(http_status: int) -> int:
    # google.rpc.Code for the HTTP status: INVALID_ARGUMENT, UNAUTHENTICATED, UNAVAILABLE, ...
    return {400: 3, 401: 16, 413: 3, 415: 3, 503: 14}.get(http_status, 2)


def success_body(signal: str, rejected: int, reason: str, kind: str) -> tuple[bytes, str]:
    """The Export*ServiceResponse, with partial_success when some items had no table."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    resp: Any
    if signal == "logs":
        resp = ExportLogsServiceResponse()
    elif signal == "metrics":
        resp = ExportMetricsServiceResponse()
        if rejected:
            resp.partial_success.rejected_data_points = rejected
            resp.partial_success.error_message = reason
    else:
        resp = ExportTraceServiceResponse()
    if kind == guard.JSON:
        return json_format.MessageToJson(resp, indent=None).encode(), "application/json"
    return resp.SerializeToString(), "application/x-protobuf"


class OtlpReceiver(Service):
    """The receiver as a Service: listening from on_start, closed (server, then producer) on on_stop."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        self.settings = settings
        self.stats = ReceiverStats()
        self.limit = max(1024, settings.otlp_max_body_bytes)
        self.topic = settings.topic_otel
        self.listening = False
        self._runner: web.AppRunner | None = None
        self._producer: Any = None
        self._producer_lock = asyncio.Lock()
        super().__init__(**kwargs)

    # ---- HTTP -----------------------------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        # client_max_size above our own limit: the handler reads and refuses with its own message
        app = web.Application(client_max_size=self.limit + 1)
        for path in PATHS:
            app.router.add_post(path, self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        self.stats.requests += 1
        signal = PATHS[request.path]
        kind: str | None = None
        try:
            guard.check_auth(request.headers.get("Authorization"), self.settings.otlp_token)
            kind = guard.content_kind(request.headers.get("Content-Type"))
            guard.check_length(request.content_length, self.limit)
            raw = await self._read(request)
            body = guard.inflate(raw, request.headers.get("Content-Encoding"), self.limit)
            decoded = await asyncio.to_thread(decode, signal, body, kind == guard.JSON)
        except guard.Refused as r:
            return self._refuse(r.status, r.message, kind, signal)
        except BadRequest as exc:
            return self._refuse(400, str(exc), kind, signal)
        assert kind is not None
        triples = [(session_of(t, row), t, row) for t, rows in decoded.rows.items() for row in rows]
        records = split(signal, self.settings.host, time.time(), triples)
        try:
            await self.produce(records)
        except BrokerUnavailable as exc:
            self.stats.unavailable += 1
            log.warning("OTLP %s request answered 503: %s", signal, exc)
            data, ctype = status_body(_grpc_code(503), f"Kafka unavailable, retry later: {exc}", kind)
            return web.Response(status=503, body=data, content_type=ctype,
                                headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        self.stats.accepted += 1
        self.stats.rows_produced += decoded.count()
        data, ctype = success_body(signal, decoded.rejected, decoded.reject_reason, kind)
        return web.Response(status=200, body=data, content_type=ctype)

    async def _read(self, request: web.Request) -> bytes:
        buf = bytearray()
        async for chunk in request.content.iter_chunked(64 * 1024):
            buf += chunk
            if len(buf) > self.limit:
                raise guard.Refused(413, f"request body exceeds the limit of {self.limit} bytes "
                                         "(CCSTREAM_OTLP_MAX_BODY_BYTES); export smaller batches")
        return bytes(buf)

    def _refuse(self, status: int, message: str, kind: str | None, signal: str) -> web.Response:
        self.stats.refused += 1
        log.warning("OTLP %s request refused (%d): %s", signal, status, message)
        data, ctype = status_body(_grpc_code(status), message, kind)
        return web.Response(status=status, body=data, content_type=ctype)

    # ---- Kafka ----------------------------------------------------------------------------------------------
    async def _get_producer(self) -> Any:
        from aiokafka import AIOKafkaProducer

        from stream.contract.kafka import aiokafka_kwargs, bootstrap

        async with self._producer_lock:
            if self._producer is not None:
                return self._producer
            producer = AIOKafkaProducer(
                **aiokafka_kwargs(self.settings), acks="all", enable_idempotence=False,
                compression_type="zstd", linger_ms=5, request_timeout_ms=int(PRODUCE_TIMEOUT * 1000),
                max_request_size=self.limit * 4 + 1024 * 1024)
            try:
                await asyncio.wait_for(producer.start(), PRODUCE_TIMEOUT)
            except Exception as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise BrokerUnavailable(f"cannot reach Kafka at {bootstrap(self.settings)}: {exc!r}") from exc
            self._producer = producer
            return producer

    async def _drop_producer(self, producer: Any) -> None:
        async with self._producer_lock:
            if self._producer is producer:
                self._producer = None
        with contextlib.suppress(Exception):
            await producer.stop()

    async def produce(self, records: list[OtelRecord]) -> None:
        """Send every message and wait for every acknowledgement; BrokerUnavailable otherwise (the next
        request starts from a fresh producer and fresh metadata)."""
        if not records:
            return
        producer = await self._get_producer()
        try:
            async def send_all() -> None:
                futures = [await producer.send(self.topic, r.encode(), key=r.key()) for r in records]
                await asyncio.gather(*futures)
            await asyncio.wait_for(send_all(), PRODUCE_TIMEOUT)
        except Exception as exc:
            await self._drop_producer(producer)
            raise BrokerUnavailable(f"Kafka did not acknowledge {len(records)} messages: {exc!r}") from exc
        self.stats.messages_produced += len(records)

    # ---- lifecycle ------------------------------------------------------------------------------------------
    async def on_start(self) -> None:
        s = self.settings
        if not s.otlp_port:
            return
        try:
            guard.check_bind(s.otlp_host, s.otlp_token)
        except ValueError as exc:
            log.error("OTLP receiver off: %s", exc)
            return
        # the body is inflated by guard.inflate, under the size limit, not by aiohttp without one
        runner = web.AppRunner(self.make_app(), access_log=None, auto_decompress=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, s.otlp_host, s.otlp_port).start()
        except OSError as exc:
            await runner.cleanup()
            log.error("OTLP receiver off: cannot listen on %s:%d (%s); set CCSTREAM_OTLP_PORT to a free port, "
                      "or 0 to turn it off", s.otlp_host, s.otlp_port, exc.strerror or exc)
            return
        self._runner = runner
        self.listening = True
        log.info("OTLP receiver listening on http://%s:%d (v1/logs, v1/metrics, v1/traces) → %s",
                 s.otlp_host, s.otlp_port, self.topic)

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            st = self.stats
            log.info("OTLP receiver stopped: %d requests, %d accepted (%d rows, %d messages), %d refused, %d "
                     "answered 503", st.requests, st.accepted, st.rows_produced, st.messages_produced, st.refused,
                     st.unavailable)
        self.listening = False
        if self._producer is not None:
            await self._drop_producer(self._producer)
