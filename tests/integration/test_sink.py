"""The sink role as a real `ccstream sink` worker process: real Tansu, real chDB in the worker, chunks produced
with aiokafka in the topic contract's codec (RawChunk.encode), rows read back through the worker's SQL page.

Fed: lines of real transcripts from the fixture corpus, cut into small chunks (so a batch spans many Kafka
messages). Checked, row for row by identity (file_id, byte_offset, line_no, uuid):
* the same chunks delivered twice (a replay after a crash between insert and commit) leave one copy;
* a worker SIGKILLed after an insert but before its Kafka commit, then restarted, re-inserts exactly the
  uncommitted messages and still leaves one copy;
* ClickHouse refusing every insert for a while loses nothing and commits nothing meanwhile;
* a row ClickHouse rejects for its content goes to dead_letters with the reason; the partition goes on.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stream.contract.identity import file_id_for
from stream.contract.raw_chunk import RawChunk
from stream.stack.servers import TansuBroker
from tests.integration.workers import CcstreamProcess
from tests.unit.store.test_extract import consecutive_records, split_records

pytestmark = pytest.mark.integration

def corpus_files(corpus: Path, n: int, skip: int = 0) -> list[Path]:
    """n transcripts of the corpus with 20..400 objects (small enough to keep the tests fast)."""
    out = []
    for p in sorted(corpus.rglob("*.jsonl")):
        k = len(split_records(p.read_bytes()))
        if 20 <= k <= 400:
            out.append(p)
    return out[skip:skip + n]


def chunks_for(corpus: Path, path: Path, host: str, per_chunk: int = 10) -> list[RawChunk]:
    """One file as the tailer would send it from `host`, `per_chunk` objects per Kafka message."""
    records = split_records(path.read_bytes())
    rel = path.relative_to(corpus)
    agent = path.stem[len("agent-"):] if path.stem.startswith("agent-") else None
    session = rel.parts[-3] if "subagents" in rel.parts else path.stem
    size = path.stat().st_size
    out = []
    for i in range(0, len(records), per_chunk):
        recs = records[i:i + per_chunk]
        end = records[i + per_chunk].offset if i + per_chunk < len(records) else size
        out.append(RawChunk.from_records(host, "u1", str(path), file_id_for(host, str(path)), 0, "fp", session, agent, recs,
                            end, recs[-1].line_no))
    return out


def identities(chunks: list[RawChunk]) -> set[tuple[str, int, int]]:
    return {(c.file_id, r.offset, r.line_no) for c in chunks for r in c.records()}


async def _produce(bootstrap: str, topic: str, chunks: list[RawChunk]) -> list[tuple[int, int, int]]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type="zstd", acks="all",
                                enable_idempotence=False, max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        futs = [await producer.send(topic, c.encode(), key=c.session_id.encode()) for c in chunks]
        metas = await asyncio.gather(*futs)
    finally:
        await producer.stop()
    return [(m.partition, m.offset, c.record_count()) for m, c in zip(metas, chunks, strict=True)]


def produce(bootstrap: str, topic: str, chunks: list[RawChunk]) -> list[tuple[int, int, int]]:
    """Send the chunks; returns (partition, offset, records) per message."""
    return asyncio.run(_produce(bootstrap, topic, chunks))


async def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        out = {}
        for p in range(partitions):
            off = await consumer.committed(TopicPartition(topic, p))
            out[p] = off if off is not None else 0
        return out
    finally:
        await consumer.stop()


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition (0 where nothing was committed)."""
    return asyncio.run(_committed(bootstrap, group, topic, 4))


def start_sink(tansu: TansuBroker, data_dir: Path, app_id: str, prefix: str, **extra: str) -> CcstreamProcess:
    sink = CcstreamProcess("sink", data_dir, {
        "kafka_bootstrap": tansu.bootstrap, "broker_is_ephemeral": "1", "app_id": app_id,
        "topic_prefix": prefix, "sink_batch_seconds": "0.2", "sink_retry_max_seconds": "1", **extra})
    sink.start()
    sink.wait_ready(120)
    return sink


def stored(sink: CcstreamProcess, host: str, final: bool = True) -> list[tuple[str, int, int]]:
    rows = sink.query(f"SELECT file_id, byte_offset, line_no FROM claude_raw_traces {'FINAL' if final else ''} "
                      "WHERE host = {h:String} ORDER BY file_id, byte_offset", {"h": host})
    return [(r["file_id"], int(r["byte_offset"]), int(r["line_no"])) for r in rows]


def count(sink: CcstreamProcess, sql: str, params: dict[str, Any] | None = None) -> int:
    return int(sink.query(sql, params)[0]["n"])


@pytest.fixture(scope="module")
def sink(tansu: TansuBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CcstreamProcess]:
    """One sink worker shared by the tests that do not kill it (each test uses hosts of its own)."""
    proc = start_sink(tansu, tmp_path_factory.mktemp("sink"), "sink-tests", "sinkt")
    yield proc
    proc.stop()


TOPIC = "sinkt.raw-events"


def test_the_same_chunks_delivered_twice_leave_one_copy(sink: CcstreamProcess, tansu: TansuBroker,
                                                        corpus: Path) -> None:
    host = f"twice-{uuid.uuid4().hex[:6]}"
    chunks = [c for p in corpus_files(corpus, 3) for c in chunks_for(corpus, p, host)]
    want = sorted(identities(chunks))
    before = sink.status()["rows_inserted"]
    produce(tansu.bootstrap, TOPIC, chunks)
    sink.wait_until(lambda: len(stored(sink, host)) == len(want), 60, "the first delivery")
    # the replay: the same chunks again, at new offsets (as a restarted edge or a crash before the commit sends)
    produce(tansu.bootstrap, TOPIC, chunks)
    sink.wait_until(lambda: sink.status()["rows_inserted"] - before == 2 * len(want), 60, "the second delivery")
    assert stored(sink, host) == want
    sink.query("OPTIMIZE TABLE claude_raw_traces FINAL")
    assert stored(sink, host, final=False) == want  # physically one copy once merged
    uuids = sink.query("SELECT uuid FROM claude_raw_traces FINAL WHERE host = {h:String} ORDER BY file_id, "
                       "byte_offset", {"h": host})
    expected_uuids = [json.loads(r.raw).get("uuid", "") or "" for _, r in sorted(
        ((c.file_id, r.offset), r) for c in chunks for r in c.records())]
    assert [u["uuid"] for u in uuids] == expected_uuids
    assert count(sink, "SELECT count() AS n FROM dead_letters WHERE host = {h:String}", {"h": host}) == 0


def test_a_raw_batch_stops_at_its_byte_budget_and_every_chunk_lands_once(tansu: TansuBroker, tmp_path: Path,
                                                                            corpus: Path) -> None:
    """Fed: 12 transcripts as chunks of 10 objects (a few KB to a few hundred KB each), to a sink whose byte
    budget is 64 KB and whose count (1,000) and window (10 s) are never reached. Out: every line once, and
    no batch over the budget by more than its last chunk: a batch goes at its bytes, not at the window."""
    budget = 64 * 1024
    sink = start_sink(tansu, tmp_path / "budget", "sink-budget", "sinkb", sink_batch_bytes=str(budget),
                      sink_batch_messages="1000", sink_batch_seconds="10")
    try:
        host = f"budget-{uuid.uuid4().hex[:6]}"
        chunks = [c for p in corpus_files(corpus, 12) for c in chunks_for(corpus, p, host)]
        want = sorted(identities(chunks))
        total = sum(len(c.encode()) for c in chunks)
        largest = max(len(c.encode()) for c in chunks)
        assert total > 8 * budget, "too little to fill several batches"
        produce(tansu.bootstrap, "sinkb.raw-events", chunks)
        sink.wait_until(lambda: len(stored(sink, host)) == len(want), 120, "every chunk")
        assert stored(sink, host) == want
        st = sink.status()
        assert budget <= st["largest_raw_batch_bytes"] < budget + largest
        assert st["raw_batches"] >= total // (budget + largest)
    finally:
        sink.stop()


def test_clickhouse_refusing_inserts_for_a_while_loses_nothing(sink: CcstreamProcess, tansu: TansuBroker,
                                                               corpus: Path) -> None:
    """ClickHouse made unavailable for inserts for real, from the outside: no ClickHouse server can run here,
    and chDB is the worker's own in-process store, so the store itself is made to refuse. A table setting
    `max_parts_in_total = 1` makes ClickHouse answer every insert with TOO_MANY_PARTS (code 252, what a server
    says when merges fall behind); client.classify calls it ClickHouseUnavailable, as it does refused and
    timed-out connections. Resetting the setting is the recovery. Meanwhile the sink must retry with backoff,
    log it, insert nothing and commit nothing; afterwards every row is there once."""
    host = f"down-{uuid.uuid4().hex[:6]}"
    first = [c for p in corpus_files(corpus, 1) for c in chunks_for(corpus, p, host)]
    later = [c for p in corpus_files(corpus, 2, skip=1) for c in chunks_for(corpus, p, host)]
    produce(tansu.bootstrap, TOPIC, first)
    sink.wait_until(lambda: len(stored(sink, host)) == len(identities(first)), 60, "the first file")
    retries = sink.status()["insert_retries"]

    sink.query("ALTER TABLE claude_raw_traces MODIFY SETTING max_parts_in_total = 1")
    try:
        produce(tansu.bootstrap, TOPIC, later)
        sink.wait_until(lambda: sink.status()["insert_retries"] - retries >= 3, 60, "three retries")
        # nothing of the later files is stored, and the group's commits did not move past the first file's
        assert stored(sink, host) == sorted(identities(first))
        log = sink.log_path.read_text()
        assert "ClickHouse unavailable while inserting" in log and "Too many parts" in log
        assert "nothing is committed meanwhile" in log
    finally:
        sink.query("ALTER TABLE claude_raw_traces RESET SETTING max_parts_in_total")
    sink.wait_until(lambda: len(stored(sink, host)) == len(identities(first + later)), 60, "the recovery")
    assert stored(sink, host) == sorted(identities(first + later))
    # the rows are queryable when the insert's rows step is done; the line is logged after its last step
    sink.wait_until(lambda: "ClickHouse is back" in sink.log_path.read_text(), 10, "the recovery logged")


def test_a_row_clickhouse_rejects_goes_to_dead_letters_and_the_partition_goes_on(
        sink: CcstreamProcess, tansu: TansuBroker) -> None:
    """A real rejection by ClickHouse for the row's content: a CHECK constraint the fourth line violates."""
    host = f"poison-{uuid.uuid4().hex[:6]}"
    sink.query("ALTER TABLE claude_raw_traces ADD CONSTRAINT no_poison CHECK position(raw, 'POISON') = 0")
    try:
        lines = [json.dumps({"type": "user", "sessionId": "s-poison", "uuid": f"u{i}",
                             "timestamp": f"2026-01-0{i + 1}T00:00:00Z",
                             "message": {"content": "POISON" if i == 3 else f"hello {i}"}}).encode()
                 for i in range(8)]
        records, off = consecutive_records(lines)
        path = "/p/s-poison.jsonl"
        fid = file_id_for(host, path)
        # two chunks of the same file, same key, so the same partition: the second comes after the bad row
        c1 = RawChunk.from_records(host, "u1", path, fid, 0, "fp", "s-poison", None, records[:5], records[5].offset, 5)
        c2 = RawChunk.from_records(host, "u1", path, fid, 0, "fp", "s-poison", None, records[5:], off, 8)
        metas = produce(tansu.bootstrap, TOPIC, [c1])
        metas += produce(tansu.bootstrap, TOPIC, [c2])
        assert metas[0][0] == metas[1][0]
        sink.wait_until(lambda: len(stored(sink, host)) == 7, 60, "the seven good rows")
        assert sink.query("SELECT uuid FROM claude_raw_traces FINAL WHERE host = {h:String} ORDER BY byte_offset",
                          {"h": host}) == [{"uuid": f"u{i}"} for i in (0, 1, 2, 4, 5, 6, 7)]
        dead = sink.query("SELECT file_id, byte_offset, line_no, length, reason, sample FROM dead_letters FINAL "
                          "WHERE host = {h:String}", {"h": host})
        assert len(dead) == 1
        d = dead[0]
        assert (d["file_id"], int(d["byte_offset"]), int(d["line_no"]), int(d["length"]), d["sample"]) == (
            fid, records[3].offset, 4, len(lines[3]), lines[3].decode())
        assert d["reason"].startswith("rejected by ClickHouse:") and "no_poison" in d["reason"]
        ckpt = sink.query("SELECT end_offset FROM file_checkpoints FINAL WHERE file_id = {f:String}", {"f": fid})
        assert ckpt == [{"end_offset": off}]
    finally:
        sink.query("ALTER TABLE claude_raw_traces DROP CONSTRAINT no_poison")


def test_sigkill_between_insert_and_commit_then_restart_leaves_one_copy(
        tansu: TansuBroker, tmp_path: Path, corpus: Path) -> None:
    """Small batches (2 messages) keep the sink inserting continuously; Faust commits acknowledged offsets
    once a second. The worker is frozen (SIGSTOP) right after its insert counter moved, the group's committed
    offsets are read from the broker, and if rows were inserted beyond what is committed (the window between
    insert and commit) it is SIGKILLed there; otherwise it is resumed and the next insert is tried. A restarted
    worker must resume at the committed offsets, insert exactly the uncommitted messages again, and leave one
    copy of every row."""
    prefix = f"kill{uuid.uuid4().hex[:6]}"
    app_id = f"{prefix}-sink"
    topic = f"{prefix}.raw-events"
    host = "kill-host"
    chunks = [c for p in corpus_files(corpus, 6) for c in chunks_for(corpus, p, host, per_chunk=5)]
    want = sorted(identities(chunks))
    extra = {"sink_batch_messages": "2"}
    sink = start_sink(tansu, tmp_path / "sink", app_id, prefix, **extra)
    try:
        metas = produce(tansu.bootstrap, topic, chunks)
        killed_at: tuple[int, int] | None = None
        last = 0
        deadline = time.monotonic() + 90
        while killed_at is None and time.monotonic() < deadline:
            now = sink.status()["rows_inserted"]
            if now == len(want):
                break
            if now > last:
                assert sink.pid is not None
                os.kill(sink.pid, signal.SIGSTOP)
                done = committed(tansu.bootstrap, app_id, topic)
                rows_committed = sum(n for p, o, n in metas if o < done[p])
                if rows_committed < now:
                    sink.kill()  # SIGKILL while stopped: inserted rows whose offsets are not committed
                    killed_at = (now, rows_committed)
                    break
                os.kill(sink.pid, signal.SIGCONT)
                last = now
            time.sleep(0.02)
        assert killed_at is not None, "the sink finished before a kill landed between an insert and its commit"
        inserted, rows_committed = killed_at
        assert rows_committed < inserted < len(want)
        done = committed(tansu.bootstrap, app_id, topic)
        redeliver = sum(n for p, o, n in metas if o >= done[p])

        sink = start_sink(tansu, tmp_path / "sink", app_id, prefix, **extra)
        sink.wait_until(lambda: len(stored(sink, host)) == len(want), 90, "all rows after the restart")
        time.sleep(1.0)  # anything extra would show up now
        # the restarted worker resumed at the committed offsets: it inserted exactly the uncommitted messages
        assert sink.status()["rows_inserted"] == redeliver
        assert redeliver > len(want) - inserted  # some of them had been inserted before the kill
        assert stored(sink, host) == want
        sink.query("OPTIMIZE TABLE claude_raw_traces FINAL")
        assert stored(sink, host, final=False) == want
    finally:
        sink.stop()
