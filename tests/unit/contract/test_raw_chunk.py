"""RawChunk's wire form: encode/decode round trips, and the lazy decode the sink's fast path relies on."""

from __future__ import annotations

import pytest

from agents.sink import chunk_identity, split_by_file
from stream.contract.dead_letter import DeadLetter
from stream.contract.raw_chunk import RawChunk, Record


def chunk(records: list[Record], **kw: object) -> RawChunk:
    return RawChunk(host="h", user="u", path=str(kw.get("path", "/p/s.jsonl")), file_id=str(kw.get("fid", "f1")),
                    incarnation=1, fingerprint="fp", session_id="s", agent_id=None, records=records,
                    end_offset=records[-1].offset + len(records[-1].raw) + 1 if records else 0,
                    end_line=records[-1].line_no if records else 0,
                    dead_letters=list(kw.get("dead", [])), redactions=list(kw.get("redactions", [])))  # type: ignore[call-overload]


RECORDS = [Record(0, 1, b'{"a":1}'), Record(8, 2, b'{"b":2}{"c":3}'[:7]), Record(15, 2, b'{"c":3}'),
           Record(23, 3, "{\"é\":\"✓\"}".encode())]


@pytest.mark.parametrize("lazy", [False, True])
def test_round_trip(lazy: bool) -> None:
    c = chunk(RECORDS, dead=[DeadLetter("h", "/p/s.jsonl", "f1", 1, 40, 4, 3, "not_json", b"{x", 1.5)],
              redactions=[0, 2, 0, 1])
    back = RawChunk.decode(c.encode(), lazy=lazy)
    assert back == c  # equality reads `records`: built on demand when lazy
    assert back.encode() == c.encode()


def test_lazy_decode_hands_on_the_message_without_building_records() -> None:
    c = chunk(RECORDS)
    data = c.encode()
    lazy = RawChunk.decode(data, lazy=True)
    assert lazy._wire is not None and lazy._wire.records is None
    assert (lazy.record_count(), lazy.offsets(), lazy.line_numbers()) == (4, [0, 8, 15, 23], [1, 2, 2, 3])
    assert lazy.headed_body() is data  # the Kafka message itself: no copy
    assert lazy.body() == b"\n".join(r.raw for r in RECORDS)
    assert chunk_identity(lazy) == f"f1/1/0-{c.end_offset}" and c.end_offset == 36
    assert lazy._wire.records is None  # none of the above built them
    assert lazy.records == RECORDS
    assert lazy._wire.records is lazy.records


def test_a_chunk_built_by_hand_has_an_empty_header_line_to_skip() -> None:
    c = chunk(RECORDS)
    assert c.headed_body() == b"\n" + c.body()
    assert chunk(RECORDS[:1]).headed_body().split(b"\n")[1:] == [RECORDS[0].raw]


def test_records_replaced_after_decode_win_over_the_message() -> None:
    c = RawChunk.decode(chunk(RECORDS).encode())
    c.records = RECORDS[:2]
    assert (c.record_count(), c.offsets(), c.body()) == (2, [0, 8], b'{"a":1}\n{"b":2}')


def test_a_chunk_without_records_round_trips() -> None:
    c = chunk([], dead=[DeadLetter("h", "/p/s.jsonl", "f1", 1, 0, 1, 3, "not_json", b"{x", 1.0)])
    for lazy in (False, True):
        back = RawChunk.decode(c.encode(), lazy=lazy)
        assert (back.record_count(), back.records, back.dead_letters) == (0, [], c.dead_letters)


def test_header_and_lines_that_disagree_are_refused() -> None:
    good = chunk(RECORDS).encode()
    head, _, body = good.partition(b"\n")
    short = head + b"\n" + body.rsplit(b"\n", 1)[0]  # one line fewer than the header lists
    with pytest.raises(ValueError, match="header lists 4 records, the message holds 3 lines"):
        RawChunk.decode(short)
    lazy = RawChunk.decode(short, lazy=True)  # the fast path leaves the check to ClickHouse...
    with pytest.raises(ValueError):
        lazy.records  # noqa: B018 - ...and the slow path makes it when it needs the records
    with pytest.raises(ValueError, match="disagree"):
        RawChunk.decode(head)  # records listed, no lines at all


def test_split_by_file_keeps_a_files_chunks_together_in_order_and_balances_rows() -> None:
    def recs(n: int, start: int = 0) -> list[Record]:
        return [Record(start + 10 * i, i + 1, b"{}") for i in range(n)]

    a1, a2 = chunk(recs(50), fid="a"), chunk(recs(50, 500), fid="a")
    b, c, d = chunk(recs(60), fid="b"), chunk(recs(30), fid="c"), chunk(recs(5), fid="d")
    groups = split_by_file([a1, b, a2, c, d], 2)
    assert sorted(map(len, groups)) == [2, 3]
    where = {id(x): i for i, g in enumerate(groups) for x in g}
    assert where[id(a1)] == where[id(a2)]
    ga = groups[where[id(a1)]]
    assert ga.index(a1) < ga.index(a2)
    sizes = sorted(sum(x.record_count() for x in g) for g in groups)
    assert sizes == [95, 100]  # a (100) alone; b, c, d (95) together
    assert split_by_file([a1, a2], 2) == [[a1, a2]]  # one file: one insert
    assert split_by_file([a1, b], 1) == [[a1, b]]
    assert split_by_file([a1, b, c, d], 2) == split_by_file([a1, b, c, d], 2)  # the same batch, the same split
