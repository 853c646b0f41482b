"""stream.tail.framing: bytes → records and bad lines, never stopping on a bad line."""

from __future__ import annotations

import time
from pathlib import Path

from stream.contract.raw_chunk import Record
from stream.tail.framing import SAMPLE_BYTES, BadLine, frame

BIG = 1 << 20


def test_complete_lines_become_records_with_offsets_and_line_numbers() -> None:
    buf = b'{"a":1}\n{"b":2}\n'
    fr = frame(buf, 100, 7, take_tail=False, max_line_bytes=BIG)
    assert fr.records == [Record(100, 8, b'{"a":1}'), Record(108, 9, b'{"b":2}')]
    assert fr.bad == []
    assert (fr.consumed, fr.lines, fr.tail_taken) == (16, 2, False)


def test_glued_objects_split_with_distinct_offsets_same_line() -> None:
    a = b'{"type":"assistant","message":{"id":"m1","content":"caf\xc3\xa9 \xe6\x97\xa5"}}'
    s = b'{"type":"summary","summary":"\xc3\xa9t\xc3\xa9"}'
    h = b'{"type":"file-history-snapshot"}'
    buf = b'{"x":0}\n' + a + s + b" " + h + b"\n"
    fr = frame(buf, 0, 0, take_tail=False, max_line_bytes=BIG)
    o = 8
    assert fr.records == [
        Record(0, 1, b'{"x":0}'),
        Record(o, 2, a),
        Record(o + len(a), 2, s),
        Record(o + len(a) + len(s) + 1, 2, h),
    ]
    # every raw is exactly the bytes at its offset in the buffer
    for r in fr.records:
        assert buf[r.offset:r.offset + len(r.raw)] == r.raw
    assert fr.bad == [] and fr.lines == 2 and fr.consumed == len(buf)


def test_corrupted_line_is_skipped_and_the_next_lines_are_read() -> None:
    # the original monitor looped forever on a bad line; here it is reported once and framing goes on
    buf = b'{"a":1}\n{"broken": \n{"b":2}\n'
    fr = frame(buf, 0, 0, take_tail=False, max_line_bytes=BIG)
    assert fr.records == [Record(0, 1, b'{"a":1}'), Record(20, 3, b'{"b":2}')]
    assert fr.bad == [BadLine(8, 2, 11, "not_json", b'{"broken": ')]
    assert (fr.consumed, fr.lines) == (len(buf), 3)


def test_garbage_after_valid_objects_keeps_the_objects() -> None:
    buf = b'{"a":1}{"b":2}garbage!\n'
    fr = frame(buf, 10, 0, take_tail=False, max_line_bytes=BIG)
    assert fr.records == [Record(10, 1, b'{"a":1}'), Record(17, 1, b'{"b":2}')]
    assert fr.bad == [BadLine(24, 1, 8, "not_json", b"garbage!")]


def test_not_utf8_not_object_and_constants() -> None:
    buf = b'\xff\xfe{"a":1}\n[1,2]\n"str"\n{"a":NaN}\n{"ok":true}{"k":1} 42\n'
    fr = frame(buf, 0, 0, take_tail=False, max_line_bytes=BIG)
    assert fr.records == [Record(32, 5, b'{"ok":true}'), Record(43, 5, b'{"k":1}')]
    assert fr.bad == [
        BadLine(0, 1, 9, "not_utf8", b'\xff\xfe{"a":1}'),
        BadLine(10, 2, 5, "not_object", b"[1,2]"),
        BadLine(16, 3, 5, "not_object", b'"str"'),
        BadLine(22, 4, 9, "not_json", b'{"a":NaN}'),  # Python's json would accept NaN: we do not
        BadLine(51, 5, 2, "not_object", b"42"),
    ]
    assert fr.lines == 5


def test_too_long_line_is_bad_with_a_bounded_sample() -> None:
    long = b'{"p":"' + b"x" * (SAMPLE_BYTES + 100) + b'"}'
    buf = b'{"a":1}\n' + long + b'\n{"b":2}\n'
    fr = frame(buf, 0, 0, take_tail=False, max_line_bytes=SAMPLE_BYTES)
    assert fr.records == [Record(0, 1, b'{"a":1}'), Record(9 + len(long), 3, b'{"b":2}')]
    assert fr.bad == [BadLine(8, 2, len(long), "too_long", long[:SAMPLE_BYTES])]
    assert len(fr.bad[0].sample) == SAMPLE_BYTES


def test_empty_and_whitespace_lines_are_consumed_silently() -> None:
    buf = b'\n  \n\t\r\n{"a":1}\r\n\n'
    fr = frame(buf, 0, 0, take_tail=False, max_line_bytes=BIG)
    assert fr.records == [Record(7, 4, b'{"a":1}')]  # the CR is JSON whitespace, not part of the object
    assert fr.bad == []
    assert (fr.consumed, fr.lines) == (len(buf), 5)


def test_unterminated_tail_waits_unless_taken() -> None:
    buf = b'{"a":1}\n{"b":2}'
    waits = frame(buf, 0, 0, take_tail=False, max_line_bytes=BIG)
    assert waits.records == [Record(0, 1, b'{"a":1}')]
    assert (waits.consumed, waits.lines, waits.tail_taken) == (8, 1, False)
    taken = frame(buf, 0, 0, take_tail=True, max_line_bytes=BIG)
    assert taken.records == [Record(0, 1, b'{"a":1}'), Record(8, 2, b'{"b":2}')]
    assert (taken.consumed, taken.lines, taken.tail_taken) == (15, 2, True)


def test_partial_or_bad_tail_is_never_taken() -> None:
    for tail in (b'{"b":', b'{"b":2}{"c"', b'{"b":2}junk', b"   ", b"[1]", b"\xff"):
        fr = frame(b'{"a":1}\n' + tail, 0, 0, take_tail=True, max_line_bytes=BIG)
        assert fr.records == [Record(0, 1, b'{"a":1}')], tail
        assert fr.bad == [] and (fr.consumed, fr.lines, fr.tail_taken) == (8, 1, False), tail


def test_too_long_tail_is_not_taken() -> None:
    fr = frame(b'{"a":"xxxxxxxxxx"}', 0, 0, take_tail=True, max_line_bytes=10)
    assert fr.records == [] and fr.bad == [] and fr.consumed == 0


def test_continued_line_keeps_its_number_and_a_lone_newline_adds_nothing() -> None:
    # line 3 was taken as a tail at offsets 20..27; now its newline arrives, then line 4
    fr = frame(b'\n{"c":3}\n', 27, 3, take_tail=False, max_line_bytes=BIG, continues_line=True)
    assert fr.records == [Record(28, 4, b'{"c":3}')]
    assert (fr.consumed, fr.lines) == (9, 1)
    # or a glued object and junk are appended to the taken line before its newline
    fr = frame(b'{"d":4}junk\n', 27, 3, take_tail=False, max_line_bytes=BIG, continues_line=True)
    assert fr.records == [Record(27, 3, b'{"d":4}')]
    assert fr.bad == [BadLine(34, 3, 4, "not_json", b"junk")]
    assert fr.lines == 0
    # a continuation that is itself an unterminated tail again
    fr = frame(b'{"d":4}', 27, 3, take_tail=True, max_line_bytes=BIG, continues_line=True)
    assert fr.records == [Record(27, 3, b'{"d":4}')] and (fr.lines, fr.tail_taken) == (0, True)


def test_whole_corpus_frames_fast_and_clean(corpus: Path) -> None:
    files = sorted(corpus.rglob("*.jsonl"))
    blobs = [p.read_bytes() for p in files]
    t0 = time.perf_counter()
    framed = [frame(b, 0, 0, take_tail=True, max_line_bytes=16 << 20) for b in blobs]
    elapsed = time.perf_counter() - t0
    assert len(files) == 63
    assert sum(len(f.records) for f in framed) == 18_918
    assert sum(f.lines for f in framed) == 18_915
    assert all(f.bad == [] and f.consumed == len(b) for f, b in zip(framed, blobs, strict=True))
    # 44 MB in ~0.5 s here; generous bound for a loaded 2-core machine
    assert elapsed < 5.0, elapsed


def test_lines_orjson_refuses_but_json_accepts_are_still_records() -> None:
    """orjson is only the fast path: a lone surrogate escape, a float beyond double range and an integer
    beyond 64 bits are JSON the json module takes, so they stay records; NaN and control characters in a
    string stay bad lines (json refuses them too)."""
    ok = [b'{"a":"\\ud800"}', b'{"a":1e400}', b'{"a":123456789012345678901234567890123}', b'{"a":1 }']
    bad = [b'{"a":NaN}', b'{"a":"\x01"}']
    buf = b"".join(line + b"\n" for line in ok + bad)
    fr = frame(buf, 0, 0, take_tail=False, max_line_bytes=1 << 20)
    assert [r.raw for r in fr.records] == ok
    assert [(b.line_no, b.reason) for b in fr.bad] == [(5, "not_json"), (6, "not_json")]
