"""stream.tail.filereader.read_step on real files in tmp_path (and over the whole fixture corpus)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from stream.contract.raw_chunk import Record
from stream.tail.cursor import Action, Checkpoint, Cursor
from stream.tail.filereader import ReadResult, read_step
from stream.tail.framing import SAMPLE_BYTES, BadLine

MB = 1 << 20


def step(path: Path, cursor: Cursor | None, *, final: bool = False, quiet: bool = False,
         max_line_bytes: int = 16 * MB, read_bytes: int = MB, checkpoint: Checkpoint | None = None) -> ReadResult:
    # quiet: pretend the file has not changed for a long time; otherwise it was "just written"
    now = time.time() + (1000.0 if quiet else 0.0)
    return read_step(str(path), cursor, checkpoint=checkpoint, final=final, now=now, quiet_seconds=500.0,
                     max_line_bytes=max_line_bytes, read_bytes=read_bytes)


def drain(path: Path, cursor: Cursor | None, **kw: object) -> tuple[Cursor | None, list[ReadResult]]:
    """read_step until it says there is nothing more, like the tailer does."""
    results = []
    for _ in range(10_000):
        res = step(path, cursor, **kw)  # type: ignore[arg-type]
        results.append(res)
        cursor = res.cursor if res.cursor is not None else cursor
        if not res.more:
            return cursor, results
    raise AssertionError("read_step never said it was done")


def records(results: list[ReadResult]) -> list[Record]:
    return [r for res in results for r in res.records]


def events(first: int, n: int, pad: int = 0) -> bytes:
    """n lines `{"type":"user","i":<i>,"pad":"ppp…"}` (EV bytes each with pad=0 and one-digit i)."""
    return b"".join(json.dumps({"type": "user", "i": i, "pad": "p" * pad}, separators=(",", ":")).encode()
                    + b"\n" for i in range(first, first + n))


EV = len(events(0, 1))  # 31


def event_ids(recs: list[Record]) -> list[int]:
    return [json.loads(r.raw)["i"] for r in recs]


def test_whole_corpus_read_step_by_step(corpus: Path) -> None:
    files = sorted(corpus.rglob("*.jsonl"))
    assert len(files) == 63
    total = 0
    for f in files:
        data = f.read_bytes()
        # independent count: a whole-file raw_decode walk that ignores line structure entirely
        text, dec, i, expected = data.decode(), json.JSONDecoder(), 0, 0
        while True:
            while i < len(text) and text[i] in " \t\r\n":
                i += 1
            if i == len(text):
                break
            _, i = dec.raw_decode(text, i)
            expected += 1
        # 256 KiB steps: many lines straddle a step, and the 677 KB line is longer than one
        cursor, results = drain(f, None, final=True, read_bytes=256 * 1024)
        got = records(results)
        assert len(got) == expected, f
        assert [b for res in results for b in res.bad] == [], f
        assert cursor is not None and cursor.offset == len(data) and cursor.incarnation == 0, f
        assert cursor.line_no == data.count(b"\n") + (0 if data.endswith(b"\n") else 1), f
        assert all(data[r.offset:r.offset + len(r.raw)] == r.raw for r in got), f
        assert len({r.offset for r in got}) == len(got), f
        total += expected
    assert total == 18_918


def test_reads_in_steps_and_reports_more(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    p.write_bytes(events(0, 10))  # 10 lines of EV bytes
    c1 = step(p, None, read_bytes=70)
    assert c1.action is Action.START and c1.more is True
    assert event_ids(c1.records) == [0, 1]
    cursor, rest = drain(p, c1.cursor, read_bytes=70)
    assert event_ids(records(rest)) == list(range(2, 10))
    assert cursor is not None and (cursor.offset, cursor.line_no) == (p.stat().st_size, 10)
    again = step(p, cursor)
    assert again.action is Action.CONTINUE and again.records == [] and again.more is False


def test_truncation_detection(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    p.write_bytes(events(0, 10))
    cursor, res = drain(p, None)
    assert event_ids(records(res)) == list(range(10))
    with open(p, "r+b") as f:  # truncated in place (same inode), then 5 new events
        f.truncate(0)
        f.write(events(100, 5))
    r = step(p, cursor)
    assert r.action is Action.TRUNCATED
    assert event_ids(r.records) == [100, 101, 102, 103, 104]
    assert r.cursor is not None and (r.cursor.incarnation, r.cursor.offset) == (1, p.stat().st_size)
    assert [rec.line_no for rec in r.records] == [1, 2, 3, 4, 5]


def test_file_deletion_and_recreation(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    p.write_bytes(events(0, 10))
    cursor, res = drain(p, None)
    assert len(records(res)) == 10
    p.unlink()
    gone = step(p, cursor)
    assert gone.missing is True and gone.cursor is None and gone.error is None
    # recreated with 5 new (longer) events: whatever inode it gets, the head tells it is another file
    p.write_bytes(events(200, 5, pad=100))
    r = step(p, cursor)
    assert r.action is Action.RECREATED
    assert event_ids(r.records) == [200, 201, 202, 203, 204]
    assert r.cursor is not None and r.cursor.incarnation == 1 and r.cursor.offset == p.stat().st_size


def test_rename_away_and_create(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    p.write_bytes(events(0, 3))
    cursor, _ = drain(p, None)
    p.rename(tmp_path / "s.jsonl.old")
    p.write_bytes(events(300, 2))
    r = step(p, cursor)
    assert r.action is Action.RECREATED  # the old inode is still alive under the other name
    assert event_ids(r.records) == [300, 301]
    assert r.cursor is not None and r.cursor.incarnation == 1


def test_corrupted_jsonl_is_skipped_once_and_reading_goes_on(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    p.write_bytes(events(0, 2) + b'{"type":"user","i":\n' + events(2, 2))
    cursor, res = drain(p, None)
    assert event_ids(records(res)) == [0, 1, 2, 3]
    bad = [b for r in res for b in r.bad]
    assert bad == [BadLine(2 * EV, 3, 19, "not_json", b'{"type":"user","i":')]
    assert cursor is not None and cursor.offset == p.stat().st_size and cursor.line_no == 5
    with open(p, "ab") as f:
        f.write(events(4, 1))
    r = step(p, cursor)  # the bad line is not met again
    assert event_ids(r.records) == [4] and r.bad == []


def test_not_utf8_and_empty_lines(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    p.write_bytes(b"\n" + events(0, 1) + b"\xc3\x28 bad\n\n \n" + events(1, 1))
    _, res = drain(p, None)
    assert [(r.line_no, json.loads(r.raw)["i"]) for r in records(res)] == [(2, 0), (6, 1)]
    assert [b for r in res for b in r.bad] == [BadLine(1 + EV, 3, 6, "not_utf8", b"\xc3\x28 bad")]


def test_unterminated_tail_waits_then_is_taken_when_quiet_and_keeps_its_identity(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    p.write_bytes(events(0, 1) + b'{"type":"user","i":1}')
    r1 = step(p, None)  # just written: the last line may still be growing
    assert event_ids(r1.records) == [0] and r1.cursor is not None
    assert (r1.cursor.offset, r1.cursor.tail_taken) == (EV, False)
    r2 = step(p, r1.cursor, quiet=True)
    assert r2.records == [Record(EV, 2, b'{"type":"user","i":1}')]
    assert r2.cursor is not None and (r2.cursor.offset, r2.cursor.line_no, r2.cursor.tail_taken) == (EV + 21, 2, True)
    with open(p, "ab") as f:  # the writer finishes the line, then writes another
        f.write(b"\n" + events(2, 1))
    r3 = step(p, r2.cursor)
    assert r3.records == [Record(EV + 22, 3, events(2, 1)[:-1])]  # no second copy of line 2
    assert r3.cursor is not None and (r3.cursor.line_no, r3.cursor.tail_taken) == (3, False)


def test_unterminated_tail_taken_when_final_and_glued_continuation(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    p.write_bytes(b'{"a":1}')
    r1 = step(p, None, final=True)
    assert r1.records == [Record(0, 1, b'{"a":1}')] and r1.cursor is not None and r1.cursor.tail_taken
    with open(p, "ab") as f:  # another object glued onto the taken line, then its newline
        f.write(b'{"type":"summary"}\n')
    r2 = step(p, r1.cursor)
    assert r2.records == [Record(7, 1, b'{"type":"summary"}')]
    assert r2.cursor is not None and (r2.cursor.line_no, r2.cursor.offset) == (1, 26)


def test_partial_tail_is_not_taken_even_when_final(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    p.write_bytes(events(0, 1) + b'{"type":"us')
    r = step(p, None, final=True)
    assert event_ids(r.records) == [0] and r.bad == []
    assert r.cursor is not None and r.cursor.offset == EV and r.more is False


def test_checkpoint_restart_continues_and_knows_a_taken_tail(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    p.write_bytes(events(0, 2) + b'{"x":1}')
    cursor, _ = drain(p, None, final=True)
    assert cursor is not None and cursor.tail_taken
    ck = Checkpoint(str(p), cursor.incarnation, cursor.fingerprint, cursor.offset, cursor.line_no)
    with open(p, "ab") as f:
        f.write(b"\n" + events(5, 1))
    r = step(p, None, checkpoint=ck)  # after a restart: no cursor, only what ClickHouse holds
    assert r.action is Action.CONTINUE
    assert [(rec.line_no, json.loads(rec.raw)["i"]) for rec in r.records] == [(4, 5)]


def test_line_longer_than_read_bytes_is_read_whole(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    data = events(0, 1, pad=5000) + events(1, 1)
    p.write_bytes(data)
    r = step(p, None, read_bytes=64, max_line_bytes=10_000)
    assert r.records[0] == Record(0, 1, data[:data.index(b"\n")])  # 5 KB line, one record
    _, rest = drain(p, r.cursor, read_bytes=64, max_line_bytes=10_000)
    assert event_ids(r.records + records(rest)) == [0, 1]


def test_too_long_line_goes_to_dead_letters_once_its_newline_exists(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    long = json.dumps({"type": "user", "pad": "z" * 200_000}).encode()
    p.write_bytes(events(0, 1) + long[:150_000])
    kw = {"read_bytes": 4096, "max_line_bytes": 100_000}
    cursor, res = drain(p, None, final=True, **kw)  # type: ignore[arg-type]
    assert event_ids(records(res)) == [0] and [b for r in res for b in r.bad] == []
    assert cursor is not None and cursor.offset == EV  # waiting for the long line's newline
    with open(p, "ab") as f:
        f.write(long[150_000:] + b"\n" + events(1, 1))
    cursor, res = drain(p, cursor, **kw)  # type: ignore[arg-type]
    assert event_ids(records(res)) == [1]
    bad = [b for r in res for b in r.bad]
    assert bad == [BadLine(EV, 2, len(long), "too_long", long[:SAMPLE_BYTES])]
    assert len(bad[0].sample) == SAMPLE_BYTES
    assert cursor is not None and (cursor.offset, cursor.line_no) == (p.stat().st_size, 3)


def test_missing_directory_and_fifo(tmp_path: Path) -> None:
    assert step(tmp_path / "nope.jsonl", None).missing is True
    assert step(tmp_path / "nope" / "x.jsonl", None).missing is True
    d = step(tmp_path, None)
    assert d.cursor is None and d.missing is False and d.error == "not a regular file"
    fifo = tmp_path / "f.jsonl"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    r = step(fifo, None)  # must not block waiting for a writer
    assert r.cursor is None and r.error == "not a regular file" and time.monotonic() - t0 < 5


def test_truncated_and_rewritten_past_the_cursor_between_two_reads(tmp_path: Path) -> None:
    # same inode, same first KiB, size back above the offset: only the bytes before the cursor tell
    p = tmp_path / "s.jsonl"
    p.write_bytes(events(0, 60))
    cursor, _ = drain(p, None)
    assert cursor is not None and cursor.offset == len(events(0, 60))
    with open(p, "r+b") as f:
        f.truncate(len(events(0, 40)))
        f.seek(0, os.SEEK_END)
        f.write(events(100, 30, pad=3))  # longer lines: the old offset now falls inside a line
    r = step(p, cursor)
    assert r.action is Action.TRUNCATED
    assert event_ids(r.records) == list(range(40)) + list(range(100, 130))
    assert r.cursor is not None and r.cursor.incarnation == 1


def test_catch_up_on_a_session_with_thousands_of_events(tmp_path: Path) -> None:
    # the original plan's "catch-up with >1000 events": bounded steps, every event once, in order
    p = tmp_path / "s.jsonl"
    p.write_bytes(events(0, 5000, pad=40))  # ~400 KB
    cursor, res = drain(p, None, read_bytes=64 * 1024)
    assert 6 <= len(res) <= 8  # 64 KiB per step
    assert event_ids(records(res)) == list(range(5000))
    assert [r.line_no for r in records(res)] == list(range(1, 5001))
    assert cursor is not None and (cursor.offset, cursor.line_no) == (p.stat().st_size, 5000)
