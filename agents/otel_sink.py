"""The sink of Claude Code's own telemetry: Kafka `ccstream.otel` into the exporter's tables.

Same discipline as agents/sink.py, whose helpers it uses: batches by count and time, an insert
deduplication token from the batch's offsets and the RecordIds it carries, the insert in a thread with retry
while ClickHouse is unavailable, and the events acknowledged only after the insert.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import faust

from agents.runtime import Runtime
from agents.sink import QUIET_SINK_SECONDS, decode_batch, insert_with_retry, positions
from stream.contract.otel_record import OtelRecord
from stream.otel.writer import write_otel
from stream.store.commit import batch_token

log = logging.getLogger("ccstream.otel.sink")


def register(app: faust.App, rt: Runtime) -> None:
    s = rt.settings
    topic = app.topic(s.topic_otel, key_serializer="raw", value_serializer="raw", partitions=s.topic_partitions)

    @app.agent(topic, name="ccstream.otel-sink")
    async def otel_sink(stream: Any) -> None:
        async for events in stream.take_events(s.sink_batch_messages,
                                               within=max(s.sink_batch_seconds, QUIET_SINK_SECONDS)):
            records = decode_batch(events, OtelRecord.decode, "otel record")
            if not records:
                continue
            token = batch_token(s.topic_otel, positions(events), [i for r in records for i in r.record_ids()])
            stored = await insert_with_retry(rt, f"{sum(r.row_count() for r in records)} otel rows",
                                             functools.partial(write_otel, rt.writer.ch, records, token))
            rt.stats.rows_inserted += stored
            rt.stats.inserts += 1
