"""stream.tail.cursor: fingerprints and the truncation / recreation decisions."""

from __future__ import annotations

import hashlib
import json

from stream.tail.cursor import (
    FINGERPRINT_BYTES,
    Action,
    Checkpoint,
    Cursor,
    FileStat,
    anchor_of,
    decide,
    fingerprint,
)

HEAD = b'{"type":"user","uuid":"0b5c","sessionId":"s1"}\n' * 40  # 1,960 bytes


def cursor_at(offset: int, head: bytes = HEAD, *, ino: int = 7, inc: int = 2, line_no: int = 5) -> Cursor:
    return Cursor("/r/s1.jsonl", 1, ino, fingerprint(head), inc, offset, line_no, len(head), 10.0)


def test_fingerprint_is_length_and_sha1_prefix_over_at_most_1024_bytes() -> None:
    assert fingerprint(b"") == "0:" + hashlib.sha1(b"").hexdigest()[:16]
    assert fingerprint(b"abc") == "3:" + hashlib.sha1(b"abc").hexdigest()[:16]
    assert fingerprint(HEAD) == f"{FINGERPRINT_BYTES}:" + hashlib.sha1(HEAD[:1024]).hexdigest()[:16]
    assert fingerprint(HEAD) == fingerprint(HEAD[:1024] + b"anything after the head")


def test_cursor_round_trips_through_json() -> None:
    c = Cursor("/r/s1.jsonl", 64769, 123456789, "1024:00aa", 3, 5000, 42, 6000, 1739000000.25, True, "1024:0bb")
    d = json.loads(json.dumps(c.to_dict()))
    assert Cursor.from_dict(d) == c
    del d["tail_taken"], d["anchor"]  # cursors stored before the fields existed
    old = Cursor.from_dict(d)
    assert (old.tail_taken, old.anchor) == (False, "")


def test_start_without_cursor_or_checkpoint() -> None:
    action, c = decide(None, FileStat(1, 7, 500, 9.5), HEAD[:500], path="/r/s1.jsonl")
    assert action is Action.START
    assert c == Cursor("/r/s1.jsonl", 1, 7, fingerprint(HEAD[:500]), 0, 0, 0, 500, 9.5)


def test_growing_file_continues_and_keeps_its_state() -> None:
    cur = cursor_at(1500)
    cur.tail_taken = True
    action, c = decide(cur, FileStat(1, 7, 9000, 11.0), HEAD[:1024])
    assert action is Action.CONTINUE
    assert (c.offset, c.line_no, c.incarnation, c.size, c.mtime, c.tail_taken) == (1500, 5, 2, 9000, 11.0, True)
    assert c.fingerprint == cur.fingerprint


def test_truncation_detected_when_size_drops_below_offset() -> None:
    # the original monitor's issue 1: a file emptied and rewritten in place
    action, c = decide(cursor_at(1500), FileStat(1, 7, 100, 12.0), HEAD[:100])
    assert action is Action.TRUNCATED
    assert (c.offset, c.line_no, c.incarnation, c.tail_taken) == (0, 0, 3, False)
    assert c.fingerprint == fingerprint(HEAD[:100])


def test_emptied_file_is_a_truncation() -> None:
    action, c = decide(cursor_at(1500), FileStat(1, 7, 0, 12.0), b"")
    assert action is Action.TRUNCATED and (c.offset, c.incarnation) == (0, 3)


def test_new_inode_or_device_is_a_recreation() -> None:
    for st in (FileStat(1, 8, 9000, 12.0), FileStat(2, 7, 9000, 12.0)):
        action, c = decide(cursor_at(1500), st, HEAD[:1024])
        assert action is Action.RECREATED
        assert (c.dev, c.ino, c.offset, c.line_no, c.incarnation) == (st.dev, st.ino, 0, 0, 3)


def test_same_inode_new_head_is_a_recreation() -> None:
    # delete + create commonly reuses the inode number at once: only the head tells
    other = HEAD.replace(b"0b5c", b"9f9f")
    action, c = decide(cursor_at(1500), FileStat(1, 7, 4000, 12.0), other[:1024])
    assert action is Action.RECREATED and (c.offset, c.incarnation) == (0, 3)
    assert c.fingerprint == fingerprint(other)


def test_short_fingerprint_is_compared_over_its_length_and_upgraded() -> None:
    short = HEAD[:300]
    cur = cursor_at(250, short)
    assert cur.fingerprint.startswith("300:")
    action, c = decide(cur, FileStat(1, 7, 1960, 12.0), HEAD[:1024])
    assert action is Action.CONTINUE and c.offset == 250
    assert c.fingerprint == fingerprint(HEAD)  # now over 1024 bytes
    # a head that differs within the short fingerprint's bytes is another file
    changed = b"X" + HEAD[1:1024]
    assert decide(cur, FileStat(1, 7, 1960, 12.0), changed)[0] is Action.RECREATED
    # a head shorter than the fingerprinted bytes (but not below the offset) was rewritten
    assert decide(cur, FileStat(1, 7, 280, 12.0), HEAD[:280])[0] is Action.RECREATED


def test_checkpoint_after_restart_continues_when_head_matches() -> None:
    ck = Checkpoint("/r/s1.jsonl", 4, fingerprint(HEAD[:600]), 600, 12)
    action, c = decide(None, FileStat(1, 9, 1960, 13.0), HEAD[:1024], ck)
    assert action is Action.CONTINUE
    assert c == Cursor("/r/s1.jsonl", 1, 9, fingerprint(HEAD), 4, 600, 12, 1960, 13.0)


def test_checkpoint_mismatch_or_beyond_size() -> None:
    ck = Checkpoint("/r/s1.jsonl", 4, fingerprint(HEAD), 1500, 12)
    action, c = decide(None, FileStat(1, 9, 1960, 13.0), b"Z" * 1024, ck)
    assert action is Action.RECREATED and (c.incarnation, c.offset, c.line_no) == (5, 0, 0)
    action, c = decide(None, FileStat(1, 9, 1200, 13.0), HEAD[:1024], ck)
    assert action is Action.TRUNCATED and (c.incarnation, c.offset) == (5, 0)
    # checkpoint of an empty file: every head matches a zero-length fingerprint
    empty = Checkpoint("/r/s1.jsonl", 0, fingerprint(b""), 0, 0)
    action, c = decide(None, FileStat(1, 9, 1960, 13.0), HEAD[:1024], empty)
    assert action is Action.CONTINUE and (c.incarnation, c.offset, c.fingerprint) == (0, 0, fingerprint(HEAD))


def test_bytes_before_the_offset_changed_means_rewritten_under_the_cursor() -> None:
    data = HEAD + b'{"type":"assistant","uuid":"77"}\n' * 60
    cur = cursor_at(len(data), data)
    cur.anchor = anchor_of(data[-1024:])
    st = FileStat(1, 7, len(data) + 500, 12.0)
    action, c = decide(cur, st, data[:1024], before_offset=data[-1024:])
    assert action is Action.CONTINUE and c.anchor == cur.anchor and c.offset == len(data)
    # truncated to 1,500 bytes and rewritten past the old offset: same inode, same head, bigger size
    rewritten = data[:1500] + b'{"type":"user","uuid":"88"}\n' * 90
    before = rewritten[len(data) - 1024:len(data)]
    action, c = decide(cur, st, rewritten[:1024], before_offset=before)
    assert action is Action.TRUNCATED and (c.incarnation, c.offset, c.anchor) == (3, 0, "")
    # a cursor without an anchor (fresh, or from a checkpoint) is judged on head and size only
    cur.anchor = ""
    assert decide(cur, st, rewritten[:1024], before_offset=before)[0] is Action.CONTINUE
