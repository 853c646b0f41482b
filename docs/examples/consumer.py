#!/usr/bin/env python3
"""A downstream consumer of ccstream.raw-events: per-session counts of transcript records by type.

Self-contained on purpose (only aiokafka, no ccstream import): copy it and change `handle_record`.
Needs `pip install "aiokafka[zstd]"` (ccstream compresses its topics with zstd).

    python consumer.py --bootstrap localhost:9092 --group my-team-counts --timeout 10

Prints one JSON line per session when it stops:
    {"session_id": "...", "records": 812, "types": {"assistant": 402, "user": 377, ...}}
and a summary on stderr. Delivery is at least once, so a record may arrive twice (a chunk re-sent after an
edge restart, possibly cut at other boundaries): repeats are dropped by the record's identity
(file_id, incarnation, byte offset), never by Kafka offset or chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter, defaultdict
from typing import Any

from aiokafka import AIOKafkaConsumer

RAW_CHUNK_VERSION = 1


def decode_chunk(value: bytes) -> tuple[dict[str, Any], list[tuple[int, int, bytes]]]:
    """A raw-events value → (header, [(offset, line_no, record bytes), ...]).

    The value is a JSON header line, then one record per line; records never contain a newline.
    """
    head, *records = value.split(b"\n")
    header = json.loads(head)
    if header.get("v") != RAW_CHUNK_VERSION:
        raise ValueError(f"unknown raw chunk version {header.get('v')!r}")
    if not (len(records) == len(header["offsets"]) == len(header["lines"])):
        raise ValueError("raw chunk header and body disagree on the number of records")
    return header, list(zip(header["offsets"], header["lines"], records, strict=True))


class Counts:
    """Record types per session, each record counted once."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, int, int]] = set()  # (file_id, incarnation, offset)
        self.types: dict[str, Counter[str]] = defaultdict(Counter)
        self.records = 0
        self.repeats = 0

    def handle_chunk(self, value: bytes) -> None:
        header, records = decode_chunk(value)
        for offset, _line_no, raw in records:
            identity = (header["file_id"], header["incarnation"], offset)
            if identity in self.seen:
                self.repeats += 1
                continue
            self.seen.add(identity)
            self.handle_record(header, json.loads(raw))

    def handle_record(self, header: dict[str, Any], record: dict[str, Any]) -> None:
        self.records += 1
        self.types[header["session_id"]][str(record.get("type", "?"))] += 1


async def consume(args: argparse.Namespace) -> Counts:
    topic = f"{args.topic_prefix}.raw-events"
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=args.bootstrap, group_id=args.group, auto_offset_reset="earliest",
        enable_auto_commit=False, max_partition_fetch_bytes=8 * 1024 * 1024)
    counts = Counts()
    messages = 0
    await consumer.start()
    try:
        last = time.monotonic()
        while time.monotonic() - last < args.timeout:
            if args.max_messages and messages >= args.max_messages:
                break
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            for records in batches.values():
                for msg in records:
                    counts.handle_chunk(msg.value)
                    messages += 1
                    last = time.monotonic()
            if batches and args.group:
                await consumer.commit()  # after handling: a crash re-reads, the identity set drops repeats
    finally:
        await consumer.stop()
    print(json.dumps({"messages": messages, "records": counts.records, "repeats_dropped": counts.repeats}),
          file=sys.stderr)
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap", default="localhost:9092", help="Kafka bootstrap servers, host:port[,host:port]")
    p.add_argument("--topic-prefix", default="ccstream", help="ccstream's topic prefix (default: ccstream)")
    p.add_argument("--group", default=None, help="consumer group id; offsets are committed (default: none)")
    p.add_argument("--max-messages", type=int, default=0, help="stop after this many Kafka messages (0: no limit)")
    p.add_argument("--timeout", type=float, default=10.0, help="stop after this many seconds without a message")
    args = p.parse_args(argv)
    counts = asyncio.run(consume(args))
    for session_id in sorted(counts.types):
        types = counts.types[session_id]
        print(json.dumps({"session_id": session_id, "records": sum(types.values()), "types": dict(sorted(types.items()))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
