"""TraceWriter on real chDB: idempotent batches, the whole corpus, checkpoints, rejected rows, session events.

Each test has its own database on the session's shared chDB path (`ch_dsn`): chDB holds one data path per
process at a time (see test_clickhouse_schema.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stream.contract.dead_letter import DeadLetter
from stream.contract.identity import file_id_for
from stream.contract.raw_chunk import RawChunk, Record
from stream.contract.session_event import SessionEvent
from stream.store.client import ClickHouse, ClickHouseUnavailable, connect
from stream.store.schema import migrate
from stream.store.writer import TraceWriter
from tests.unit.store.test_extract import chunk_for, consecutive_records, split_records

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
EXAMPLE = "amac0__ClaudeStatus/example.jsonl"  # 39 lines, Claude Code 1.0.31


@pytest.fixture()
def ch(ch_dsn: str) -> Iterator[ClickHouse]:
    client = connect(ch_dsn)
    migrate(client)
    yield client
    client.close()


def scalar(ch: ClickHouse, sql: str) -> int:
    return int(ch.query_rows(sql)[0][0])


def file_chunk(corpus: Path, rel: str) -> RawChunk:
    path = corpus / rel
    return chunk_for(corpus, path, split_records(path.read_bytes()))


def test_same_batch_twice_with_the_same_token_is_stored_once(ch: ClickHouse, corpus: Path) -> None:
    chunk = file_chunk(corpus, EXAMPLE)
    chunk.dead_letters = [DeadLetter("h1", chunk.path, chunk.file_id, 2, 99_999, 40, 7, "not json", b"{broken",
                                     1_700_000_000.5)]
    w = TraceWriter(ch, clock=lambda: NOW)
    assert w.write_chunks([chunk], "batch-1") == 39
    assert w.write_chunks([chunk], "batch-1") == 39  # the replay after a crash before the Kafka commit
    # dropped at insert time: no FINAL needed
    assert scalar(ch, "SELECT count() FROM claude_raw_traces") == 39
    assert scalar(ch, "SELECT count() FROM dead_letters") == 1
    assert scalar(ch, "SELECT count() FROM file_checkpoints") == 1
    assert ch.query_rows("SELECT file_path, byte_offset, line_no, length, reason, sample, "
                         "toUnixTimestamp64Milli(detected_at) FROM dead_letters") == [
        (chunk.path, 99_999, 40, 7, "not json", "{broken", 1_700_000_000_500)]
    stored = ch.query_rows("SELECT byte_offset, line_no, raw FROM claude_raw_traces ORDER BY byte_offset")
    assert stored == [(r.offset, r.line_no, r.raw.decode()) for r in chunk.records()]


def test_same_batch_with_different_tokens_is_one_copy_after_final(ch: ClickHouse, corpus: Path) -> None:
    chunk = file_chunk(corpus, EXAMPLE)
    w = TraceWriter(ch)
    w.write_chunks([chunk], "batch-a")
    w.write_chunks([chunk], "batch-b")  # re-read after a lost cursor: new Kafka offsets, new token
    w.write_chunks([chunk], None)
    assert scalar(ch, "SELECT count() FROM claude_raw_traces") == 3 * 39
    assert scalar(ch, "SELECT count() FROM claude_raw_traces FINAL") == 39
    assert ch.query_rows("SELECT byte_offset FROM claude_raw_traces FINAL ORDER BY byte_offset") == [
        (r.offset,) for r in chunk.records()]
    ch.command("OPTIMIZE TABLE claude_raw_traces FINAL")  # and background merges reach the same result
    assert scalar(ch, "SELECT count() FROM claude_raw_traces") == 39


def _corpus_batches(corpus: Path, chunk_lines: int = 200, batch_chunks: int = 20) -> list[list[RawChunk]]:
    """The corpus as the tailer sends it: files cut into chunks, chunks grouped into sink batches."""
    chunks: list[RawChunk] = []
    for path in sorted(corpus.rglob("*.jsonl")):
        whole = chunk_for(corpus, path, split_records(path.read_bytes()))
        records = whole.records()
        for i in range(0, len(records), chunk_lines):
            part = records[i:i + chunk_lines]
            chunks.append(RawChunk.from_records(whole.host, whole.user, whole.path, whole.file_id,
                                                whole.incarnation, whole.fingerprint, whole.session_id,
                                                whole.agent_id, part, end_offset=part[-1].offset + len(part[-1].raw),
                                                end_line=part[-1].line_no))
    return [chunks[i:i + batch_chunks] for i in range(0, len(chunks), batch_chunks)]


def test_the_corpus_through_write_chunks(ch: ClickHouse, corpus: Path) -> None:
    # independent expectations, straight from the files
    per_file: dict[str, int] = {}
    usage_sum = [0, 0, 0, 0]
    for path in sorted(corpus.rglob("*.jsonl")):
        dec = json.JSONDecoder()
        for line in path.read_text().split("\n"):
            i = 0
            while i < len(line):
                obj, i = dec.raw_decode(line, i)
                per_file[str(path)] = per_file.get(str(path), 0) + 1
                if obj.get("type") == "assistant":
                    u = obj["message"]["usage"]
                    for k, key in enumerate(["input_tokens", "output_tokens", "cache_creation_input_tokens",
                                             "cache_read_input_tokens"]):
                        usage_sum[k] += u.get(key) or 0

    batches = _corpus_batches(corpus)
    w = TraceWriter(ch)
    written = sum(w.write_chunks(b, f"raw;0:{n}") for n, b in enumerate(batches))
    w.write_chunks(batches[3], "raw;0:3")  # one replayed batch
    w.write_chunks(batches[5], "raw;0:5-again")  # and one re-sent under another token
    assert written == 18_918
    assert scalar(ch, "SELECT count() FROM claude_raw_traces FINAL") == 18_918
    assert scalar(ch, "SELECT uniqExact(file_id, incarnation, byte_offset) FROM claude_raw_traces") == 18_918
    assert dict(ch.query_rows("SELECT file_path, count() FROM claude_raw_traces FINAL GROUP BY file_path")) == per_file
    assert list(ch.query_rows(
        "SELECT sum(input_tokens), sum(output_tokens), sum(cache_creation_input_tokens), "
        "sum(cache_read_input_tokens) FROM claude_raw_traces FINAL WHERE type = 'assistant'")[0]) == usage_sum
    # the three glued lines hold two objects each
    assert scalar(ch, "SELECT count() FROM (SELECT file_id, line_no FROM claude_raw_traces FINAL "
                      "GROUP BY file_id, line_no HAVING count() = 2)") == 3
    # every file's checkpoint is its end
    cps = w.file_checkpoints("h1")
    assert set(cps) == set(per_file)
    for p, c in cps.items():
        data = Path(p).read_bytes()
        assert c.offset == len(data.rstrip(b"\n")), p  # the end of the last object (as the chunks were cut)
        assert c.line_no == data.rstrip(b"\n").count(b"\n") + 1, p
        assert (c.path, c.incarnation, c.fingerprint) == (p, 2, "fp")


def _ck(host: str, path: str, inc: int, end: int, line: int) -> RawChunk:
    return RawChunk.from_records(host=host, user="u", path=path, file_id=file_id_for(host, path), incarnation=inc,
                    fingerprint=f"fp{inc}", session_id="s", agent_id=None, records=[], end_offset=end,
                    end_line=line)


def test_file_checkpoints_newest_incarnation_and_furthest_offset(ch: ClickHouse) -> None:
    w = TraceWriter(ch)
    w.write_chunks([_ck("h1", "/a.jsonl", 0, 100, 3), _ck("h1", "/a.jsonl", 0, 200, 6)], "t1")
    w.write_chunks([_ck("h1", "/a.jsonl", 1, 50, 2)], "t2")  # truncated and rewritten: incarnation 1
    w.write_chunks([_ck("h1", "/b.jsonl", 0, 300, 9)], "t3")
    w.write_chunks([_ck("h1", "/b.jsonl", 0, 100, 4)], "t4")  # an older chunk arriving late
    w.write_chunks([_ck("h2", "/a.jsonl", 0, 999, 30)], "t5")  # another host
    cps = w.file_checkpoints("h1")
    assert {p: (c.path, c.incarnation, c.fingerprint, c.offset, c.line_no) for p, c in cps.items()} == {
        "/a.jsonl": ("/a.jsonl", 1, "fp1", 50, 2),
        "/b.jsonl": ("/b.jsonl", 0, "fp0", 300, 9),
    }
    assert {p: (c.incarnation, c.offset) for p, c in w.file_checkpoints("h2").items()} == {"/a.jsonl": (0, 999)}
    assert w.file_checkpoints("nobody") == {}


def test_a_rejected_row_goes_to_dead_letters_and_the_rest_lands(ch: ClickHouse) -> None:
    # a real server-side rejection: a constraint the fourth line violates
    ch.command("ALTER TABLE claude_raw_traces ADD CONSTRAINT no_poison CHECK position(raw, 'POISON') = 0")
    lines = [json.dumps({"type": "user", "sessionId": "s1", "uuid": f"u{i}",
                         "timestamp": f"2026-01-0{i + 1}T00:00:00Z",
                         "message": {"content": "POISON" if i == 3 else f"hello {i}"}}).encode()
             for i in range(7)]
    records, off = consecutive_records(lines)
    chunk = RawChunk.from_records("h1", "u1", "/p/s1.jsonl", "f1", 0, "fp", "s1", None, records, off, 7)
    w = TraceWriter(ch)
    assert w.write_chunks([chunk], "tok") == 6
    assert w.rejected_rows == 1
    assert ch.query_rows("SELECT uuid FROM claude_raw_traces FINAL ORDER BY byte_offset") == [
        (f"u{i}",) for i in (0, 1, 2, 4, 5, 6)]
    (path, fid, inc, offset, line_no, length, reason, sample), = ch.query_rows(
        "SELECT file_path, file_id, incarnation, byte_offset, line_no, length, reason, sample FROM dead_letters")
    assert (path, fid, inc, offset, line_no, length, sample) == (
        "/p/s1.jsonl", "f1", 0, records[3].offset, 4, len(lines[3]), lines[3].decode())
    assert reason.startswith("rejected by ClickHouse:") and "no_poison" in reason
    # the checkpoint still moves: the bad line is kept, not blocking
    assert w.file_checkpoints("h1")["/p/s1.jsonl"].offset == off
    # a replay bisects the same way and its tokens drop every piece
    w.write_chunks([chunk], "tok")
    assert scalar(ch, "SELECT count() FROM claude_raw_traces") == 6
    assert scalar(ch, "SELECT count() FROM dead_letters") == 1


def test_the_fast_path_goes_through_raw_chunks_and_agrees_with_the_python_path(
        ch: ClickHouse, corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks decoded from Kafka messages go into raw_chunks whole (ClickHouse extracts the rows); the Python
    path (extract_in_clickhouse=False) stores the same rows. test_extraction_sql.py compares every column."""
    chunk = RawChunk.decode(file_chunk(corpus, EXAMPLE).encode())

    def no_split(self: RawChunk) -> list[Record]:
        raise AssertionError("the fast path split a chunk into records in Python")

    with monkeypatch.context() as m:
        m.setattr(RawChunk, "records", no_split)
        assert TraceWriter(ch).write_chunks([chunk], "fast") == 39
    # no line was split or decoded in Python: the 39 rows can only have come from the view over raw_chunks
    slow = RawChunk.decode(file_chunk(corpus, EXAMPLE).encode())
    slow.file_id = "slow"
    assert TraceWriter(ch, extract_in_clickhouse=False).write_chunks([slow], "slow") == 39
    cols = "byte_offset, line_no, session_id, type, uuid, toUnixTimestamp64Milli(timestamp), input_tokens, raw"
    fast_rows = ch.query_rows(f"SELECT {cols} FROM claude_raw_traces WHERE file_id = {{f:String}} ORDER BY 1",
                              {"f": chunk.file_id})
    assert len(fast_rows) == 39
    assert fast_rows == ch.query_rows(f"SELECT {cols} FROM claude_raw_traces WHERE file_id = 'slow' ORDER BY 1")


def test_a_malformed_chunk_goes_to_dead_letters_and_the_rest_of_the_batch_lands(ch: ClickHouse) -> None:
    """A Kafka message whose header lists more records than it holds lines (a foreign or broken producer):
    ClickHouse refuses it on the fast path, the slow path cannot place its lines, so it becomes one dead letter
    with the reason and its lines as the sample; the good chunk of the same batch lands."""
    good = RawChunk.from_records("h1", "u1", "/p/good.jsonl", "fg", 0, "fp", "s1", None,
                    [Record(0, 1, b'{"type":"user","uuid":"g1"}')], 28, 1)
    whole = RawChunk.from_records("h1", "u1", "/p/bad.jsonl", "fb", 0, "fp", "s1", None,
                     [Record(0, 1, b'{"type":"user","uuid":"b1"}'), Record(28, 2, b'{"type":"user","uuid":"b2"}')],
                     56, 2).encode()
    head, _, body = whole.partition(b"\n")
    broken = RawChunk.decode(head + b"\n" + body.split(b"\n")[0])  # 2 listed, 1 line
    good = RawChunk.decode(good.encode())
    assert TraceWriter(ch).write_chunks([good, broken], "batch") == 1
    assert ch.query_rows("SELECT file_id, uuid FROM claude_raw_traces FINAL") == [("fg", "g1")]
    (fid, offset, line_no, length, reason, sample), = ch.query_rows(
        "SELECT file_id, byte_offset, line_no, length, reason, sample FROM dead_letters")
    assert (fid, offset, line_no, length, sample) == ("fb", 0, 1, 27, '{"type":"user","uuid":"b1"}')
    assert reason.startswith("malformed_chunk: raw chunk of /p/bad.jsonl: the header lists 2 records, "
                             "the message holds 1 lines; ClickHouse:")
    # both checkpoints move: the broken chunk is kept as a dead letter, not blocking its file
    assert {p: c.offset for p, c in TraceWriter(ch).file_checkpoints("h1").items()} == {
        "/p/good.jsonl": 28, "/p/bad.jsonl": 56}


def test_redactor_output_is_what_is_stored(ch: ClickHouse) -> None:
    def redact(raw: bytes) -> tuple[bytes, int]:
        n = raw.count(b"sk-secret")
        return raw.replace(b"sk-secret", b"[REDACTED]"), n

    raw = b'{"type":"user","sessionId":"s1","timestamp":"2026-01-01T00:00:00Z","message":{"content":"sk-secret sk-secret"}}'
    chunk = RawChunk.from_records("h1", "u1", "/p/s1.jsonl", "f1", 0, "fp", "s1", None, [Record(0, 1, raw)], len(raw), 1,
                     dead_letters=[DeadLetter("h1", "/p/s1.jsonl", "f1", 0, len(raw) + 1, 2, 12, "not json",
                                              b"sk-secret xx", 1.0)])
    TraceWriter(ch, redactor=redact).write_chunks([chunk], None)
    assert ch.query_rows("SELECT redactions, raw, type FROM claude_raw_traces") == [
        (2, raw.decode().replace("sk-secret", "[REDACTED]"), "user")]
    assert ch.query_rows("SELECT sample FROM dead_letters") == [("[REDACTED] xx",)]


def test_session_events_and_dead_letters(ch: ClickHouse) -> None:
    events = [
        SessionEvent("e1", "SessionStart", "s1", "/t/s1.jsonl", "/w", "h1", "u1", 1_767_225_600.25,
                     {"hook_event_name": "SessionStart", "source": "startup"}),
        SessionEvent("e2", "SubagentStop", "s1", "/t/s1.jsonl", "/w", "h1", "u1", 1_767_225_601.0,
                     {"agent_id": "a1"}),
        SessionEvent("e3", "SessionEnd", "s1", None, None, "h1", "u1", 1_767_225_602.0, {"reason": "clear"}),
    ]
    w = TraceWriter(ch, clock=lambda: NOW)
    assert w.write_session_events(events, "ev-1") == 3
    assert w.write_session_events(events, "ev-1") == 3
    assert w.write_session_events(events[:1], "ev-2") == 1
    assert scalar(ch, "SELECT count() FROM session_events") == 3 + 1
    assert ch.query_rows(
        "SELECT event_id, hook_event_name, session_id, transcript_path, cwd, host, user, "
        "toUnixTimestamp64Milli(received_at), source, reason, agent_id, payload FROM session_events FINAL "
        "ORDER BY event_id") == [
        ("e1", "SessionStart", "s1", "/t/s1.jsonl", "/w", "h1", "u1", 1_767_225_600_250, "startup", "", "",
         '{"hook_event_name":"SessionStart","source":"startup"}'),
        ("e2", "SubagentStop", "s1", "/t/s1.jsonl", "/w", "h1", "u1", 1_767_225_601_000, "", "", "a1",
         '{"agent_id":"a1"}'),
        ("e3", "SessionEnd", "s1", "", "", "h1", "u1", 1_767_225_602_000, "", "clear", "", '{"reason":"clear"}'),
    ]
    assert ch.query_rows("SELECT session_id, source, reason, path, events FROM sessions") == [
        ("s1", "startup", "clear", "/t/s1.jsonl", 3)]

    letters = [DeadLetter("h1", "/p/x.jsonl", "fx", 1, 10, 2, 5, "invalid utf-8", b"\xff\xfe", 1_767_225_600.0),
               DeadLetter("h1", "/etc/passwd", "fy", 0, 0, 0, 0, "outside the roots", b"", 1_767_225_600.0)]
    assert w.write_dead_letters(letters, "dl-1") == 2
    assert w.write_dead_letters(letters, "dl-1") == 2
    assert ch.query_rows("SELECT file_path, file_id, incarnation, byte_offset, line_no, length, reason "
                         "FROM dead_letters ORDER BY file_id") == [
        ("/p/x.jsonl", "fx", 1, 10, 2, 5, "invalid utf-8"), ("/etc/passwd", "fy", 0, 0, 0, 0, "outside the roots")]


def test_unavailable_propagates_to_the_callers_retry_loop(ch_dsn: str, corpus: Path) -> None:
    client = connect(ch_dsn)
    migrate(client)
    w = TraceWriter(client)
    client.close()  # ClickHouse gone between two batches
    with pytest.raises(ClickHouseUnavailable):
        w.write_chunks([file_chunk(corpus, EXAMPLE)], "t")
    with pytest.raises(ClickHouseUnavailable):
        w.write_session_events([SessionEvent("e", "Stop", "s", None, None, "h", "u", 0.0)], "t")
    with pytest.raises(ClickHouseUnavailable):
        w.file_checkpoints("h1")
