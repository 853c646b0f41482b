"""``ccstream.raw-events``: the records of one file read together (key: session id).

A JSON header line, then one transcript record per line (records never contain a newline, so the
framing is unambiguous).

One representation: a :class:`RawChunk` is the header's fields (each declared once, with its wire key, so the
dataclass encodes and decodes itself) and ``message``, the bytes the records travel in: a first line that is
not a record (the Kafka header as it came, or empty), then the records joined by newlines. Offsets and line
numbers are the header's lists. Nothing is filled in behind the caller's back:

* ``RawChunk.decode(data)`` reads the header only and keeps the Kafka message as ``message`` (no copy, no
  split: the sink's fast path hands it to ClickHouse as it came, ``headed_body()``);
* ``chunk.validate()`` (or ``decode(data, validate=True)``) checks the lines against the header;
* ``chunk.records()`` splits the lines into :class:`Record` s, each call anew;
* ``RawChunk.from_records(...)`` builds a chunk from records (the tailer).

Every refusal is one exception type, :class:`MalformedChunk`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from stream.contract.dead_letter import DeadLetter

RAW_CHUNK_VERSION = 1


class MalformedChunk(ValueError):
    """A raw-events message that is not a chunk of a known version, or whose header and lines disagree."""


@dataclass(slots=True)
class Record:
    """One JSON object found in a transcript file. Its identity is (file_id, incarnation, offset)."""

    offset: int  # byte offset of the object's first byte in the file
    line_no: int  # 1-based physical line number (two glued objects share one)
    raw: bytes  # the object's bytes, no newline


def _wire(key: str | None = None, *, load: Callable[[Any], Any] | None = None,
          dump: Callable[[Any], Any] | None = None, omit: Callable[[Any], bool] | None = None,
          absent: Callable[[], Any] | None = None) -> dict[str, Any]:
    """A header field's metadata: its wire key (default: the field's name), how its JSON value is read and
    written, when it is left out of the header, and what a message lacking it decodes to (absent; None: such a
    message is refused)."""
    return {"key": key, "load": load, "dump": dump, "omit": omit, "absent": absent}


def _dead_letters(values: list[Any]) -> list[DeadLetter]:
    return [DeadLetter.from_obj(d) for d in values]


def _dead_letter_objects(letters: list[DeadLetter]) -> list[Any]:
    return [json.loads(d.encode()) for d in letters]


def _joined(records: Sequence[Record]) -> bytes:
    """`message` for records built here: an empty first line, then the records; no newline at all if none."""
    return b"\n" + b"\n".join(r.raw for r in records) if records else b""


@dataclass(slots=True, eq=False)
class RawChunk:
    """Records of one file read together: the unit that travels through ``ccstream.raw-events``.

    Every field but ``message`` is a header field, declared with its wire form (``_wire``) in wire order;
    adding one is one line here, a parameter of from_records (a unit test keeps the two in step) and the JSON
    schema (stream/contract/schemas/raw-chunk-header.schema.json)."""

    host: str = field(metadata=_wire())
    user: str = field(metadata=_wire())
    path: str = field(metadata=_wire())
    file_id: str = field(metadata=_wire())
    # bumped each time the file is found truncated or recreated
    incarnation: int = field(metadata=_wire(load=int))
    # of the file's head, to recognise the same incarnation later
    fingerprint: str = field(metadata=_wire())
    # from the file name / the hook; a line's own sessionId wins at extraction
    session_id: str = field(metadata=_wire())
    # subagent files: the <id> of agent-<id>.jsonl
    agent_id: str | None = field(metadata=_wire(absent=lambda: None))
    # the file cursor after this chunk (byte offset of the next unread byte)
    end_offset: int = field(metadata=_wire(load=int))
    # the line number of the last line this chunk consumed
    end_line: int = field(metadata=_wire(load=int))
    offsets: list[int] = field(metadata=_wire(load=list))  # each record's byte offset in the file
    line_nos: list[int] = field(metadata=_wire("lines", load=list))  # each record's physical line number
    # not in the header: a first line to skip, then the records joined by "\n" (no newline at all: no records)
    message: bytes = field(repr=False, metadata={"wire": False})
    # bad lines met while reading this chunk: they travel with the chunk so the sink stores them together
    # with the rows and the checkpoint, and nothing is lost between two topics after a crash
    dead_letters: list[DeadLetter] = field(default_factory=list, metadata=_wire(
        "dead", load=_dead_letters, dump=_dead_letter_objects, omit=lambda v: not v, absent=list))
    # secrets replaced in each record by the edge's redactor (parallel to offsets; empty = none anywhere)
    redactions: list[int] = field(default_factory=list, metadata=_wire(
        load=list, omit=lambda v: not any(v), absent=list))

    # ---- building --------------------------------------------------------------------------------------------
    @classmethod
    def from_records(cls, host: str, user: str, path: str, file_id: str, incarnation: int, fingerprint: str,
                     session_id: str, agent_id: str | None, records: Sequence[Record], end_offset: int,
                     end_line: int, dead_letters: Sequence[DeadLetter] = (),
                     redactions: Sequence[int] = ()) -> RawChunk:
        """The chunk of `records` read from a file (the tailer's way to build one)."""
        return cls(host=host, user=user, path=path, file_id=file_id, incarnation=incarnation,
                   fingerprint=fingerprint, session_id=session_id, agent_id=agent_id, end_offset=end_offset,
                   end_line=end_line, offsets=[r.offset for r in records], line_nos=[r.line_no for r in records],
                   message=_joined(records), dead_letters=list(dead_letters), redactions=list(redactions))

    def with_records(self, records: Sequence[Record], end_offset: int, end_line: int,
                     redactions: Sequence[int] = ()) -> RawChunk:
        """Another chunk of the same file (same header otherwise) holding `records`."""
        return dataclasses.replace(self, offsets=[r.offset for r in records], line_nos=[r.line_no for r in records],
                                   message=_joined(records), end_offset=end_offset, end_line=end_line,
                                   redactions=list(redactions))

    # ---- the records -----------------------------------------------------------------------------------------
    def record_count(self) -> int:
        return len(self.offsets)

    def redaction_count(self, index: int) -> int:
        return self.redactions[index] if self.redactions else 0

    def body(self) -> bytes:
        """The records joined by '\\n' (a record never holds a raw newline): the message after its first line."""
        cut = self.message.find(b"\n")
        return b"" if cut < 0 else self.message[cut + 1:]

    def headed_body(self) -> bytes:
        """A line to skip, then body(): `message` itself, not copied (the sink's fast path)."""
        return self.message if b"\n" in self.message else b"\n"

    def line_count(self) -> int:
        """The lines `message` holds after its first line."""
        cut = self.message.find(b"\n")
        return 0 if cut < 0 else self.message.count(b"\n", cut + 1) + 1

    def validate(self) -> RawChunk:
        """The chunk itself if its lines agree with its header; MalformedChunk otherwise."""
        self._check_lines(self.line_count())
        return self

    def records(self) -> list[Record]:
        """The lines split into records (the slow path; the sink's fast path never calls this). MalformedChunk
        if their number differs from the header's."""
        raws = self.body().split(b"\n") if b"\n" in self.message else []
        self._check_lines(len(raws))
        return [Record(o, n, r) for o, n, r in zip(self.offsets, self.line_nos, raws, strict=True)]

    def _check_lines(self, lines: int) -> None:
        if lines != len(self.offsets):
            raise MalformedChunk(f"raw chunk of {self.path}: the header lists {len(self.offsets)} records, the "
                                 f"message holds {lines} lines")

    # ---- the wire ------------------------------------------------------------------------------------------
    def header(self) -> dict[str, Any]:
        """The header line's object, keys in wire order."""
        out: dict[str, Any] = {"v": RAW_CHUNK_VERSION}
        for f in _HEADER_FIELDS:
            value = getattr(self, f.name)
            m = f.metadata
            if m["omit"] is not None and m["omit"](value):
                continue
            out[m["key"] or f.name] = value if m["dump"] is None else m["dump"](value)
        return out

    def encode(self) -> bytes:
        head = json.dumps(self.header(), separators=(",", ":"), ensure_ascii=False).encode()
        return head + b"\n" + self.body() if self.offsets else head

    @classmethod
    def decode(cls, data: bytes, validate: bool = False) -> RawChunk:
        """The chunk of a Kafka message, from its header line only: `message` is `data` itself. The lines are
        checked against the header by validate=True (or `validate()` later); the sink's fast path skips that
        and lets ClickHouse check. MalformedChunk for anything that is not a chunk."""
        cut = data.find(b"\n")
        try:
            header = json.loads(data if cut < 0 else data[:cut])
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            raise MalformedChunk(f"raw chunk header is not JSON: {exc}") from exc
        if not isinstance(header, dict):
            raise MalformedChunk("raw chunk header is not a JSON object")
        if header.get("v") != RAW_CHUNK_VERSION:
            raise MalformedChunk(f"unsupported raw chunk version {header.get('v')!r}")
        values: dict[str, Any] = {}
        for f in _HEADER_FIELDS:
            m = f.metadata
            key = m["key"] or f.name
            if key not in header:
                if m["absent"] is None:
                    raise MalformedChunk(f"raw chunk header lacks {key!r}")
                values[f.name] = m["absent"]()
                continue
            try:
                values[f.name] = header[key] if m["load"] is None else m["load"](header[key])
            except (ValueError, KeyError, TypeError) as exc:
                raise MalformedChunk(f"raw chunk header: bad {key!r}: {exc}") from exc
        chunk = cls(message=data, **values)
        n = len(chunk.offsets)
        if len(chunk.line_nos) != n or (cut < 0) != (n == 0) or (chunk.redactions and len(chunk.redactions) != n):
            raise MalformedChunk("raw chunk header and body disagree on the number of records")
        return chunk.validate() if validate else chunk

    # ---- equality: the same header and the same lines, however the chunk was made ---------------------------
    def _key(self) -> tuple[Any, ...]:
        return (*(getattr(self, f.name) for f in _HEADER_FIELDS), self.body())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RawChunk):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value


_HEADER_FIELDS = tuple(f for f in dataclasses.fields(RawChunk) if f.metadata.get("wire", True))
