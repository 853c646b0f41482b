"""One read step of one transcript file: open, stat, decide (stream.tail.cursor), read, frame (stream.tail.framing).

This is the tailer's only file I/O. A step reads at most `read_bytes` from the cursor (more only to finish a
line longer than that), so one huge file never holds the tailer for long; ``more`` says to call again.
Every step that returns ``more=True`` has consumed at least one byte, and every other path returns, so a
caller looping ``while more`` always ends.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from stream.contract.raw_chunk import Record
from stream.tail.cursor import (
    ANCHOR_BYTES,
    FINGERPRINT_BYTES,
    Action,
    Checkpoint,
    Cursor,
    FileStat,
    anchor_of,
    decide,
)
from stream.tail.framing import SAMPLE_BYTES, TOO_LONG, BadLine, frame

SCAN_BYTES = 1024 * 1024  # read size while looking for the end of a line that is too long to keep


@dataclass(slots=True)
class ReadResult:
    cursor: Cursor | None  # the new cursor (None if the file is missing/unreadable)
    records: list[Record] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)
    action: Action | None = None  # what decide() said (TRUNCATED/RECREATED are logged+counted by the caller)
    more: bool = False  # bytes remain beyond what this step read (call again)
    missing: bool = False  # the file does not exist (any more)
    error: str | None = None  # e.g. permission denied, not a regular file


def read_step(path: str, cursor: Cursor | None, *, checkpoint: Checkpoint | None = None, final: bool = False,
              now: float, quiet_seconds: float, max_line_bytes: int, read_bytes: int) -> ReadResult:
    """Read what is new in `path` after `cursor` (or after `checkpoint` when there is no cursor).

    The unterminated last line is taken when `final` (the session ended) or when the file has been quiet
    for `quiet_seconds` (``now - mtime``), and only if it decodes whole into JSON objects.
    """
    try:
        # O_NONBLOCK: opening a FIFO planted at a transcript path must not hang the tailer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return ReadResult(None, missing=True)
    except OSError as exc:
        return ReadResult(None, error=exc.strerror or str(exc))
    try:
        return _read_open(fd, path, cursor, checkpoint, final=final, now=now, quiet_seconds=quiet_seconds,
                          max_line_bytes=max_line_bytes, read_bytes=max(1, read_bytes))
    except OSError as exc:  # e.g. EIO, or a read on something that is not a file after all
        return ReadResult(None, error=exc.strerror or str(exc))
    finally:
        os.close(fd)


def _read_open(fd: int, path: str, cursor: Cursor | None, checkpoint: Checkpoint | None, *, final: bool,
               now: float, quiet_seconds: float, max_line_bytes: int, read_bytes: int) -> ReadResult:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        return ReadResult(None, error="not a regular file")
    fs = FileStat(st.st_dev, st.st_ino, st.st_size, st.st_mtime)
    head = os.pread(fd, FINGERPRINT_BYTES, 0)
    before: bytes | None = None
    if cursor is not None and cursor.anchor and cursor.offset <= fs.size:
        n = min(cursor.anchor_length(), cursor.offset)
        before = os.pread(fd, n, cursor.offset - n)
    action, cur = decide(cursor, fs, head, checkpoint, path=path, before_offset=before)
    if cursor is None and action is Action.CONTINUE and cur.offset > 0:
        # a checkpoint does not say whether its last line was an unterminated tail; the file does
        cur.tail_taken = os.pread(fd, 1, cur.offset - 1) != b"\n"
    start = cur.offset
    res = _read_from(fd, ReadResult(cur, action=action), fs, final=final, now=now,
                     quiet_seconds=quiet_seconds, max_line_bytes=max_line_bytes, read_bytes=read_bytes)
    if cur.offset != start or not cur.anchor:
        n = min(cur.offset, ANCHOR_BYTES)
        before_new = os.pread(fd, n, cur.offset - n)
        cur.anchor = anchor_of(before_new) if len(before_new) == n else ""  # shrank meanwhile: unknown
    return res


def _read_from(fd: int, res: ReadResult, fs: FileStat, *, final: bool, now: float, quiet_seconds: float,
               max_line_bytes: int, read_bytes: int) -> ReadResult:
    cur = res.cursor
    assert cur is not None
    offset = cur.offset
    end = fs.size  # read no further than what fstat saw, so size, mtime and the bytes agree
    if offset >= end:
        return res

    want = min(read_bytes, end - offset)
    buf = bytearray(os.pread(fd, want, offset))
    if len(buf) < want:
        end = offset + len(buf)  # shrank under us: the next step's decide() sees it
    searched = 0
    # a line longer than read_bytes: keep reading until its newline, or until it is known to be too long
    while buf.find(b"\n", searched) < 0 and len(buf) <= max_line_bytes and offset + len(buf) < end:
        searched = len(buf)
        want = min(max(len(buf), read_bytes), max_line_bytes + 1 - len(buf), end - offset - len(buf))
        chunk = os.pread(fd, want, offset + len(buf))
        buf += chunk
        if len(chunk) < want:
            end = offset + len(buf)
            break

    if buf.find(b"\n") < 0 and len(buf) > max_line_bytes:
        return _skip_too_long(fd, res, bytes(buf), end)

    reached_end = offset + len(buf) >= end
    take_tail = reached_end and (final or now - fs.mtime >= quiet_seconds)
    fr = frame(bytes(buf), offset, cur.line_no, take_tail=take_tail, max_line_bytes=max_line_bytes,
               continues_line=cur.tail_taken)
    res.records, res.bad = fr.records, fr.bad
    cur.offset = offset + fr.consumed
    cur.line_no += fr.lines
    if fr.consumed:
        cur.tail_taken = fr.tail_taken
    res.more = not reached_end
    return res


def _skip_too_long(fd: int, res: ReadResult, first: bytes, end: int) -> ReadResult:
    """The line at the cursor is longer than max_line_bytes: find its newline without keeping its bytes,
    report it once (with a sample) and move past it. Without a newline yet, wait: the writer may still be
    writing it, and consuming it now would make its rest look like a line of its own."""
    cur = res.cursor
    assert cur is not None
    offset = cur.offset
    pos = offset + len(first)
    while pos < end:
        chunk = os.pread(fd, min(SCAN_BYTES, end - pos), pos)
        if not chunk:
            break
        i = chunk.find(b"\n")
        if i >= 0:
            nl = pos + i
            line_no = cur.line_no if cur.tail_taken else cur.line_no + 1
            res.bad = [BadLine(offset, line_no, nl - offset, TOO_LONG, first[:SAMPLE_BYTES])]
            cur.offset = nl + 1
            cur.line_no = line_no
            cur.tail_taken = False
            res.more = cur.offset < end
            return res
        pos += len(chunk)
    return res
