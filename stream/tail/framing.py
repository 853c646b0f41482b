"""Pure framing: bytes read from a file offset → complete transcript records and bad lines.

Rules (docs/transcript-format.md §2):

* Only ``\\n``-terminated lines are complete; blank or whitespace-only lines are consumed silently.
* One physical line may hold several JSON objects glued together (``{...}{"type":"summary",...}``). Each
  becomes its own :class:`~stream.contract.raw_chunk.Record` whose offset is the byte offset of its first byte in the
  file, so two objects of one line never share an identity.
* A bad line never stops framing: it is reported as a :class:`BadLine` and consumed, and the next line is
  read (the original monitor's infinite loop on a corrupted line cannot happen here).
* The unterminated tail is taken only when asked (the file is quiet or the session ended) *and* it decodes
  whole into objects; otherwise it stays for a later read.

Speed: newlines are found with ``bytes.find`` and each line is parsed once by orjson, straight from the
bytes (about three times faster than ``str.decode`` plus the json module). orjson only accelerates: a line
it refuses takes the json module's path, whose verdict stands, and it refuses everything the json module
refuses here (invalid UTF-8, NaN and Infinity, control characters in strings). The ``raw_decode`` loop runs
only for lines that fail both fast paths.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import orjson

from stream.contract.dead_letter import DEAD_LETTER_RAW_LIMIT
from stream.contract.raw_chunk import Record

SAMPLE_BYTES = DEAD_LETTER_RAW_LIMIT  # bytes of a bad line kept as its sample

NOT_JSON = "not_json"
NOT_UTF8 = "not_utf8"
NOT_OBJECT = "not_object"
TOO_LONG = "too_long"

_BLANK = b" \t\r"  # JSON whitespace besides the newline that ends the line
_WS = re.compile(r"[ \t\r\n]*")


def _reject_constant(name: str) -> None:
    # Python's json accepts NaN/Infinity, which are not JSON and which ClickHouse's JSON functions refuse
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


@dataclass(slots=True)
class BadLine:
    offset: int  # byte offset in the file of the first bad byte
    line_no: int
    length: int  # bytes of the bad part (the sample may be shorter)
    reason: str  # not_json | not_utf8 | not_object | too_long
    sample: bytes  # up to SAMPLE_BYTES of the bad bytes


@dataclass(slots=True)
class Framed:
    records: list[Record] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)
    consumed: int = 0  # bytes of buf consumed; the caller's new offset = start_offset + consumed
    lines: int = 0  # physical lines consumed (the caller's new line_no = start_line + lines)
    tail_taken: bool = False  # an unterminated tail was taken


def frame(buf: bytes, start_offset: int, start_line: int, *, take_tail: bool, max_line_bytes: int,
          continues_line: bool = False) -> Framed:
    """Frame `buf`, whose first byte is at `start_offset` in the file, after `start_line` lines.

    `continues_line`: the previous read took an unterminated tail, so buf's first line continues line
    `start_line` (same line number, not counted again): a lone ``\\n`` just terminates it, and glued objects
    appended to it keep the line's number.
    """
    out = Framed()
    records, bad = out.records, out.bad
    n = len(buf)
    pos = 0
    lines = 0
    line_no = start_line if continues_line else start_line + 1
    while True:
        nl = buf.find(b"\n", pos)
        if nl < 0:
            break
        if nl - pos > max_line_bytes:
            bad.append(BadLine(start_offset + pos, line_no, nl - pos, TOO_LONG, buf[pos:pos + SAMPLE_BYTES]))
        else:
            _frame_line(buf[pos:nl], start_offset + pos, line_no, records, bad)
        if not (continues_line and pos == 0):
            lines += 1
        line_no = start_line + lines + 1
        pos = nl + 1
    if take_tail and pos < n and n - pos <= max_line_bytes:
        tail_records: list[Record] = []
        tail_bad: list[BadLine] = []
        _frame_line(buf[pos:], start_offset + pos, line_no, tail_records, tail_bad)
        if tail_records and not tail_bad:
            records.extend(tail_records)
            if not (continues_line and pos == 0):
                lines += 1
            pos = n
            out.tail_taken = True
    out.consumed = pos
    out.lines = lines
    return out


def _frame_line(line: bytes, offset: int, line_no: int, records: list[Record], bad: list[BadLine]) -> None:
    """One physical line (no newline) at file `offset` → records and bad lines."""
    if line[:1] == b"{" and line[-1:] == b"}":
        try:
            if type(orjson.loads(line)) is dict:
                records.append(Record(offset, line_no, line))
                return
        except orjson.JSONDecodeError:
            pass  # glued objects, or something only the json module can judge
    try:
        text = line.decode()
    except UnicodeDecodeError:
        bad.append(BadLine(offset, line_no, len(line), NOT_UTF8, line[:SAMPLE_BYTES]))
        return
    try:
        obj = _DECODER.decode(text)
    except (ValueError, RecursionError):
        if not line.strip(_BLANK):
            return  # blank line: consumed, nothing to report
    else:
        if type(obj) is dict and line[:1] == b"{" and line[-1:] == b"}":
            records.append(Record(offset, line_no, line))
            return
    _split_line(line, text, offset, line_no, records, bad)


def _split_line(line: bytes, text: str, offset: int, line_no: int, records: list[Record],
                bad: list[BadLine]) -> None:
    """The slow path: a raw_decode loop over glued values, mapping character to byte positions."""
    ascii_only = len(text) == len(line)
    last_i = last_b = 0

    def byte_at(i: int) -> int:  # incremental, so a line with many objects stays linear
        nonlocal last_i, last_b
        if ascii_only:
            return i
        last_b += len(text[last_i:i].encode())
        last_i = i
        return last_b

    end_text = len(text)
    i = _WS.match(text, 0).end()  # type: ignore[union-attr]
    while i < end_text:
        b0 = byte_at(i)
        try:
            obj, j = _DECODER.raw_decode(text, i)
        except (ValueError, RecursionError):
            # the rest of the line is undecodable; objects before it were kept
            rest = line[b0:]
            bad.append(BadLine(offset + b0, line_no, len(rest), NOT_JSON, rest[:SAMPLE_BYTES]))
            return
        b1 = byte_at(j)
        raw = line[b0:b1]
        if type(obj) is dict:
            records.append(Record(offset + b0, line_no, raw))
        else:
            bad.append(BadLine(offset + b0, line_no, b1 - b0, NOT_OBJECT, raw[:SAMPLE_BYTES]))
        i = _WS.match(text, j).end()  # type: ignore[union-attr]
