"""RawChunk's wire form: encode/decode round trips, the header-only decode the sink's fast path relies on, and
the explicit validation step."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from stream.contract.dead_letter import DeadLetter
from stream.contract.raw_chunk import MalformedChunk, RawChunk, Record
from stream.store.commit import chunk_identity


def chunk(records: list[Record], **kw: object) -> RawChunk:
    return RawChunk.from_records(
        host="h", user="u", path=str(kw.get("path", "/p/s.jsonl")), file_id=str(kw.get("fid", "f1")),
        incarnation=1, fingerprint="fp", session_id="s", agent_id=None, records=records,
        end_offset=records[-1].offset + len(records[-1].raw) + 1 if records else 0,
        end_line=records[-1].line_no if records else 0,
        dead_letters=list(kw.get("dead", [])), redactions=list(kw.get("redactions", [])))  # type: ignore[call-overload]


RECORDS = [Record(0, 1, b'{"a":1}'), Record(8, 2, b'{"b":2}{"c":3}'[:7]), Record(15, 2, b'{"c":3}'),
           Record(23, 3, "{\"é\":\"✓\"}".encode())]
DEAD = DeadLetter("h", "/p/s.jsonl", "f1", 1, 40, 4, 3, "not_json", b"{x", 1.5)


@pytest.mark.parametrize("validate", [False, True])
def test_round_trip(validate: bool) -> None:
    c = chunk(RECORDS, dead=[DEAD], redactions=[0, 2, 0, 1])
    back = RawChunk.decode(c.encode(), validate=validate)
    assert back == c  # the same header and the same lines, however each was made
    assert back.records() == RECORDS
    assert back.encode() == c.encode()


def test_the_wire_format_is_kept_byte_for_byte() -> None:
    """docs/topics.md and stream/contract/schemas/raw-chunk-header.schema.json describe this; consumers read it."""
    expected = (
        b'{"v":1,"host":"h","user":"u","path":"/p/s.jsonl","file_id":"f1","incarnation":1,"fingerprint":"fp",'
        b'"session_id":"s","agent_id":null,"end_offset":36,"end_line":3,"offsets":[0,8,15,23],"lines":[1,2,2,3],'
        b'"dead":[{"host":"h","path":"/p/s.jsonl","file_id":"f1","incarnation":1,"offset":40,"line_no":4,'
        b'"length":3,"reason":"not_json","detected_at":1.5,"sample_b64":"e3g="}],"redactions":[0,2,0,1]}\n'
        b'{"a":1}\n{"b":2}\n{"c":3}\n{"\xc3\xa9":"\xe2\x9c\x93"}')
    assert chunk(RECORDS, dead=[DEAD], redactions=[0, 2, 0, 1]).encode() == expected
    # no dead letters, no redaction anywhere: both keys left out; no records: the header line alone
    plain = chunk(RECORDS, redactions=[0, 0, 0, 0]).encode()
    assert b'"lines":[1,2,2,3]}\n{"a":1}' in plain and b"dead" not in plain and b"redactions" not in plain
    assert chunk([]).encode() == (b'{"v":1,"host":"h","user":"u","path":"/p/s.jsonl","file_id":"f1","incarnation":1,'
                                  b'"fingerprint":"fp","session_id":"s","agent_id":null,"end_offset":0,"end_line":0,'
                                  b'"offsets":[],"lines":[]}')


def test_decode_reads_the_header_and_hands_on_the_message_without_splitting_it() -> None:
    c = chunk(RECORDS)
    data = c.encode()
    d = RawChunk.decode(data)
    assert (d.record_count(), d.offsets, d.line_nos) == (4, [0, 8, 15, 23], [1, 2, 2, 3])
    assert d.headed_body() is data  # the Kafka message itself: no copy
    assert d.message is data
    assert d.body() == b"\n".join(r.raw for r in RECORDS)
    assert chunk_identity(d) == f"f1/1/0-{c.end_offset}" and c.end_offset == 36
    # the chunk holds its lines only as the message: no Record is kept anywhere in it
    assert not any(isinstance(v, list) and v and isinstance(v[0], Record)
                   for v in (getattr(d, f.name) for f in dataclasses.fields(d)))
    assert d.records() == RECORDS
    assert d.records() is not d.records()  # built on each call, never cached behind the caller's back


def test_a_chunk_built_from_records_has_an_empty_header_line_to_skip() -> None:
    c = chunk(RECORDS)
    assert c.headed_body() == b"\n" + c.body()
    assert chunk(RECORDS[:1]).headed_body().split(b"\n")[1:] == [RECORDS[0].raw]
    assert chunk([]).headed_body() == b"\n" and chunk([]).body() == b""


def test_with_records_is_another_chunk_of_the_same_file() -> None:
    c = RawChunk.decode(chunk(RECORDS, dead=[DEAD]).encode())
    other = c.with_records(RECORDS[:2], end_offset=15, end_line=2)
    assert (other.record_count(), other.offsets, other.body()) == (2, [0, 8], b'{"a":1}\n{"b":2}')
    assert (other.end_offset, other.end_line, other.file_id, other.dead_letters) == (15, 2, "f1", [DEAD])
    assert RawChunk.decode(other.encode(), validate=True) == other
    assert c.record_count() == 4  # the original is untouched


def test_a_chunk_without_records_round_trips() -> None:
    c = chunk([], dead=[DeadLetter("h", "/p/s.jsonl", "f1", 1, 0, 1, 3, "not_json", b"{x", 1.0)])
    for validate in (False, True):
        back = RawChunk.decode(c.encode(), validate=validate)
        assert (back.record_count(), back.records(), back.dead_letters) == (0, [], c.dead_letters)


def test_header_and_lines_that_disagree_are_refused() -> None:
    good = chunk(RECORDS).encode()
    head, _, body = good.partition(b"\n")
    short = head + b"\n" + body.rsplit(b"\n", 1)[0]  # one line fewer than the header lists
    with pytest.raises(MalformedChunk, match="header lists 4 records, the message holds 3 lines"):
        RawChunk.decode(short, validate=True)
    d = RawChunk.decode(short)  # the fast path leaves the check to ClickHouse...
    with pytest.raises(MalformedChunk, match="header lists 4 records, the message holds 3 lines"):
        d.validate()  # ...and the slow path makes it, explicitly
    with pytest.raises(MalformedChunk):
        d.records()
    with pytest.raises(MalformedChunk, match="disagree"):
        RawChunk.decode(head)  # records listed, no lines at all
    longer = RawChunk.decode(good + b'\n{"d":4}')
    with pytest.raises(MalformedChunk, match="header lists 4 records, the message holds 5 lines"):
        longer.validate()


@pytest.mark.parametrize("data, reason", [
    (b"not json\n{}", "not JSON"),
    (b"[1,2]\n{}", "not a JSON object"),
    (b'{"v":2,"host":"h"}', "unsupported raw chunk version 2"),
    (b'{"v":1,"host":"h"}', "lacks 'user'"),
    (b'{"v":1,"host":"h","user":"u","path":"/p","file_id":"f","incarnation":"x","fingerprint":"","session_id":"s",'
     b'"agent_id":null,"end_offset":0,"end_line":0,"offsets":[],"lines":[]}', "bad 'incarnation'"),
    (b'{"v":1,"host":"h","user":"u","path":"/p","file_id":"f","incarnation":0,"fingerprint":"","session_id":"s",'
     b'"agent_id":null,"end_offset":7,"end_line":1,"offsets":[0],"lines":[1],"redactions":[1,2]}\n{}',
     "disagree"),
    (b"\xff\xfe\n{}", "not JSON"),
])
def test_anything_that_is_not_a_chunk_is_one_exception_type(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedChunk, match=reason):
        RawChunk.decode(data)
    assert issubclass(MalformedChunk, ValueError)  # the sink's decode_batch logs and skips ValueErrors


def test_a_missing_agent_id_decodes_as_none() -> None:
    data = chunk(RECORDS).encode().replace(b'"agent_id":null,', b"")
    assert RawChunk.decode(data, validate=True).agent_id is None


def test_from_records_takes_every_header_field() -> None:
    """A header field is declared once, on RawChunk; from_records (the tailer's builder) must name it too."""
    params = set(inspect.signature(RawChunk.from_records).parameters)
    header = {f.name for f in dataclasses.fields(RawChunk) if f.metadata.get("wire", True)}
    assert header - {"offsets", "line_nos"} <= params
    assert "records" in params
