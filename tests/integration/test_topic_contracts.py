"""The Kafka topic contracts (docs/topics.md) against the real broker.

Messages are built from real inputs with ccstream's own code paths (hook payloads from a real Claude Code
session through `build_event` and the bridge's `to_message`; transcript files through `stream.tail.framing.frame`
and the edge redactor), produced with zstd to the Tansu broker, read back with aiokafka, and every one is
validated against the JSON Schemas in stream/contract/schemas. Then docs/examples/consumer.py runs against a topic
that holds a chunk twice and a re-cut overlapping chunk, and its counts must equal the files' own.
"""

from __future__ import annotations

import ast
import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from referencing import Registry, Resource

from stream.capture.bridge import to_message
from stream.capture.hook import build_event
from stream.contract.dead_letter import DeadLetter
from stream.contract.identity import file_id_for
from stream.contract.raw_chunk import RawChunk, Record
from stream.contract.session_event import SessionEvent
from stream.stack.servers import TansuBroker
from stream.tail.cursor import fingerprint
from stream.tail.framing import frame
from stream.tail.redaction import Redactor
from tests.conftest import FIXTURES, REPO

pytestmark = pytest.mark.integration

SCHEMAS = REPO / "stream" / "contract" / "schemas"
CONSUMER = REPO / "docs" / "examples" / "consumer.py"
HOOK_LOG = FIXTURES / "hooks" / "fasthooks-hook-log.jsonl"
NOT_A_TRANSCRIPT = FIXTURES / "negative" / "not-a-transcript.gemini.json"
PARTITIONS = 4
HOST, USER = "edge-1", "ada"
CHUNK_BYTES = 64 * 1024  # small, so that files span several chunks

# (file under the corpus, its session, its agent id): a main file with its flat-layout subagent file, a file
# with glued objects, a new-layout compaction agent file, a file holding secrets the edge redacts
FILES = [
    ("oneryalcin__fasthooks/c45af7b1-cb7c-4e51-93db-8cbb250a877a.jsonl",
     "c45af7b1-cb7c-4e51-93db-8cbb250a877a", None),
    ("oneryalcin__fasthooks/agent-af1ff21.jsonl", "c45af7b1-cb7c-4e51-93db-8cbb250a877a", "af1ff21"),
    ("entireio__cli/a2b25ca9-1cbb-41d7-a3b1-89c66f8697f9.jsonl", "a2b25ca9-1cbb-41d7-a3b1-89c66f8697f9", None),
    ("marot__spotter/258c7280-ae70-4798-800f-63464d01a85d/subagents/agent-acompact-fffbd0.jsonl",
     "258c7280-ae70-4798-800f-63464d01a85d", "acompact-fffbd0"),
    ("entireio__cli/b2273d7d-fb20-41f7-93fb-265486aae975.jsonl", "b2273d7d-fb20-41f7-93fb-265486aae975", None),
]


# ---- building real messages -------------------------------------------------------------------------------
def validators() -> dict[str, jsonschema.protocols.Validator]:
    schemas = {p.name.removesuffix(".schema.json"): json.loads(p.read_text()) for p in SCHEMAS.glob("*.json")}
    registry: Registry[Any] = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in schemas.values())
    out = {}
    for name, schema in schemas.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        out[name] = jsonschema.Draft202012Validator(schema, registry=registry,
                                                    format_checker=jsonschema.FormatChecker())
    return out


def session_events() -> list[SessionEvent]:
    """The hook log's payloads as the hook records them and the bridge sends them."""
    out = []
    for n, line in enumerate(HOOK_LOG.read_text().splitlines()):
        logged = json.loads(line)
        # the logger re-keyed the payload (`ts`, `event`); give it back Claude Code's field name
        payload = {k: v for k, v in logged.items() if k not in ("ts", "event")}
        payload = {"hook_event_name": logged["event"], **payload}
        received = datetime.fromisoformat(logged["ts"].replace("Z", "+00:00")).timestamp()
        event = build_event(payload, host=HOST, user=USER, received_at=received)
        out.append(to_message(f"{int(received * 1000)}-{n}", {b"event": json.dumps(event).encode()}))
    return out


def chunks_of(corpus: Path, rel: str, session_id: str, agent_id: str | None,
              redactor: Redactor) -> list[RawChunk]:
    """A file read the way the edge reads it: framed, redacted, cut into chunks at line boundaries."""
    path = corpus / rel
    data = path.read_bytes()
    framed = frame(data, 0, 0, take_tail=True, max_line_bytes=16 * 1024 * 1024)
    assert framed.consumed == len(data) and not framed.bad
    groups: list[list[Record]] = [[]]
    counts: list[list[int]] = [[]]  # secrets redacted per record, parallel to groups
    size = 0
    for rec in framed.records:
        raw, n = redactor.redact(rec.raw)
        new_line = not groups[-1] or groups[-1][-1].line_no != rec.line_no
        if new_line and groups[-1] and size + len(raw) > CHUNK_BYTES:
            groups.append([])
            counts.append([])
            size = 0
        groups[-1].append(Record(rec.offset, rec.line_no, raw))
        counts[-1].append(n)
        size += len(raw)
    chunks = []
    for i, recs in enumerate(groups):
        last = i == len(groups) - 1
        chunks.append(RawChunk.from_records(
            host=HOST, user=USER, path=str(path), file_id=file_id_for(HOST, str(path)), incarnation=0,
            fingerprint=fingerprint(data), session_id=session_id, agent_id=agent_id, records=recs,
            end_offset=len(data) if last else groups[i + 1][0].offset,
            end_line=framed.lines if last else recs[-1].line_no,
            redactions=counts[i] if any(counts[i]) else []))
    return chunks


def dead_letter_chunk() -> tuple[RawChunk, list[DeadLetter]]:
    """A file that is not a transcript (pretty-printed JSON): every line is a dead letter."""
    data = NOT_A_TRANSCRIPT.read_bytes()
    framed = frame(data, 0, 0, take_tail=True, max_line_bytes=16 * 1024 * 1024)
    fid = file_id_for(HOST, str(NOT_A_TRANSCRIPT))
    dead = [DeadLetter(host=HOST, path=str(NOT_A_TRANSCRIPT), file_id=fid, incarnation=0, offset=b.offset,
                       line_no=b.line_no, length=b.length, reason=b.reason, sample=b.sample,
                       detected_at=1767381086.25) for b in framed.bad]
    assert not framed.records and len(dead) > 10
    chunk = RawChunk.from_records(host=HOST, user=USER, path=str(NOT_A_TRANSCRIPT), file_id=fid, incarnation=0,
                     fingerprint=fingerprint(data), session_id="", agent_id=None, records=[],
                     end_offset=framed.consumed, end_line=framed.lines, dead_letters=dead)
    return chunk, dead


def expected_counts(corpus: Path) -> list[dict[str, Any]]:
    """Record types per session straight from the files (json's own decoder, glued objects split)."""
    types: dict[str, Counter[str]] = defaultdict(Counter)
    decoder = json.JSONDecoder()
    for rel, session_id, _ in FILES:
        for line in (corpus / rel).read_text().splitlines():
            pos = 0
            while pos < len(line):
                obj, pos = decoder.raw_decode(line, pos)
                types[session_id][obj.get("type", "?")] += 1
    return [{"session_id": s, "records": sum(t.values()), "types": dict(sorted(t.items()))}
            for s, t in sorted(types.items())]


# ---- the broker -----------------------------------------------------------------------------------------
async def create_topics(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [f"{prefix}.sessions", f"{prefix}.raw-events", f"{prefix}.dead-letters"]
        await admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names])
        deadline = time.monotonic() + 20
        while not set(names) <= set(await admin.list_topics()):
            assert time.monotonic() < deadline, "topics never appeared"
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def produce(bootstrap: str, messages: list[tuple[str, bytes, bytes]]) -> None:
    """(topic, key, value) in order, zstd-compressed like ccstream's producers; waits for every ack."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type="zstd", linger_ms=5,
                                max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for topic, key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


Message = tuple[int, int, bytes, bytes]  # partition, kafka offset, key, value


async def read_all(bootstrap: str, topic: str, count: int, timeout: float = 30) -> list[Message]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    out: list[Message] = []
    try:
        parts = consumer.partitions_for_topic(topic)
        assert parts, f"no partitions for {topic}"
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            for tp, recs in (await consumer.getmany(*tps, timeout_ms=300)).items():
                out += [(tp.partition, r.offset, r.key or b"", r.value or b"") for r in recs]
    finally:
        await consumer.stop()
    return sorted(out)


# ---- tests ------------------------------------------------------------------------------------------------
def test_every_message_matches_its_schema(tansu: TansuBroker, corpus: Path) -> None:
    prefix = f"contracts-{uuid.uuid4().hex[:8]}"
    v = validators()
    redactor = Redactor()
    events = session_events()
    chunks = [c for rel, sid, aid in FILES for c in chunks_of(corpus, rel, sid, aid, redactor)]
    bad_chunk, dead = dead_letter_chunk()
    chunks.append(bad_chunk)
    assert len(events) == 36 and len(chunks) >= 10
    assert any(c.redactions for c in chunks), "the chosen files hold secrets the edge redacts"
    assert any(len({r.line_no for r in c.records()}) < c.record_count() for c in chunks), "glued objects"

    asyncio.run(create_topics(tansu.bootstrap, prefix))
    asyncio.run(produce(tansu.bootstrap,
                        [(f"{prefix}.sessions", e.session_id.encode(), e.encode()) for e in events]
                        + [(f"{prefix}.raw-events", (c.session_id or c.file_id).encode(), c.encode()) for c in chunks]
                        + [(f"{prefix}.dead-letters", d.file_id.encode(), d.encode()) for d in dead]))
    got_sessions = asyncio.run(read_all(tansu.bootstrap, f"{prefix}.sessions", len(events)))
    got_raw = asyncio.run(read_all(tansu.bootstrap, f"{prefix}.raw-events", len(chunks)))
    got_dead = asyncio.run(read_all(tansu.bootstrap, f"{prefix}.dead-letters", len(dead)))

    # sessions: schema, key, and the message is the event that was sent
    assert len(got_sessions) == len(events)
    for _, _, key, value in got_sessions:
        obj = json.loads(value)
        v["session-event"].validate(obj)
        assert key == obj["session_id"].encode()
    assert sorted(SessionEvent.decode(m[3]).event_id for m in got_sessions) == sorted(e.event_id for e in events)
    assert {m[3] for m in got_sessions} == {e.encode() for e in events}

    # raw events: header schema, body framing, identities, and per-session partition + per-file order
    assert len(got_raw) == len(chunks)
    partition_of: dict[bytes, int] = {}
    last_offset: dict[str, int] = {}
    for partition, _, key, value in got_raw:
        head, *body = value.split(b"\n")
        header = json.loads(head)
        v["raw-chunk-header"].validate(header)
        assert len(body) == len(header["offsets"]) == len(header["lines"])
        assert len(header.get("redactions", body)) == len(body)
        assert header["offsets"] == sorted(header["offsets"])
        for raw in body:
            assert isinstance(json.loads(raw), dict)
        assert key == (header["session_id"] or header["file_id"]).encode()
        assert partition_of.setdefault(key, partition) == partition  # a session lives in one partition
        if header["offsets"]:
            assert header["offsets"][0] > last_offset.get(header["file_id"], -1)  # a file's chunks in order
            last_offset[header["file_id"]] = header["offsets"][-1]
    sent = sorted(c.encode() for c in chunks)
    assert sorted(m[3] for m in got_raw) == sent
    assert sorted((RawChunk.decode(m[3]) for m in got_raw), key=lambda c: (c.path, c.end_offset)) == sorted(
        chunks, key=lambda c: (c.path, c.end_offset))

    # dead letters: standalone and inside the chunk header, same schema
    assert len(got_dead) == len(dead)
    for _, _, key, value in got_dead:
        obj = json.loads(value)
        v["dead-letter"].validate(obj)
        assert key == obj["file_id"].encode()
    assert sorted((DeadLetter.decode(m[3]) for m in got_dead), key=lambda d: d.offset) == dead
    assert {d.reason for d in dead} == {"not_json", "not_object"}
    for d in json.loads(bad_chunk.encode())["dead"]:
        v["dead-letter"].validate(d)

    # the schemas are not vacuous: messages that break the contract are refused
    header = json.loads(chunks[0].encode().split(b"\n", 1)[0])
    for broken in ({**header, "v": 2}, {k: x for k, x in header.items() if k != "file_id"},
                   {**header, "offsets": ["0"]}, {**header, "surprise": 1}):
        assert not v["raw-chunk-header"].is_valid(broken)
    assert not v["session-event"].is_valid({**json.loads(events[0].encode()), "stream_id": 7})
    assert not v["dead-letter"].is_valid({**json.loads(dead[0].encode()), "file_id": "nothex"})


def test_example_consumer_counts_each_record_once(tansu: TansuBroker, corpus: Path) -> None:
    """docs/examples/consumer.py, run as a downstream team would, on a topic holding a chunk twice and a
    chunk re-cut over two others (an edge that restarted from an older cursor)."""
    tree = ast.parse(CONSUMER.read_text())
    imported = {(n.module or "") if isinstance(n, ast.ImportFrom) else a.name
                for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)
                for a in n.names}
    assert {m.split(".")[0] for m in imported} <= set(sys.stdlib_module_names) | {"aiokafka", "__future__"}

    prefix = f"consumer-{uuid.uuid4().hex[:8]}"
    redactor = Redactor()
    per_file = [chunks_of(corpus, rel, sid, aid, redactor) for rel, sid, aid in FILES]
    big = per_file[2]
    assert len(big) >= 4
    again = big[1]
    b2, b3 = big[2].records(), big[3].records()
    recut = big[2].with_records(b2[len(b2) // 2:] + b3[:3], end_offset=b3[3].offset, end_line=b3[2].line_no)
    chunks = [c for cs in per_file for c in cs]
    repeats = again.record_count() + recut.record_count()
    sends = chunks[:8] + [again] + chunks[8:] + [recut]

    asyncio.run(create_topics(tansu.bootstrap, prefix))
    asyncio.run(produce(tansu.bootstrap, [(f"{prefix}.raw-events", c.session_id.encode(), c.encode())
                                          for c in sends]))
    proc = subprocess.run(
        [sys.executable, str(CONSUMER), "--bootstrap", tansu.bootstrap, "--topic-prefix", prefix,
         "--group", f"{prefix}-counts", "--max-messages", str(len(sends)), "--timeout", "20"],
        capture_output=True, text=True, timeout=90, cwd="/")
    assert proc.returncode == 0, proc.stderr
    printed = [json.loads(line) for line in proc.stdout.splitlines()]
    assert printed == expected_counts(corpus)
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == {
        "messages": len(sends), "records": sum(c.record_count() for c in chunks), "repeats_dropped": repeats}
