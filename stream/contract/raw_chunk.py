"""``ccstream.raw-events``: the records of one file read together (key: session id).

A JSON header line, then one transcript record per line (records never contain a newline, so the
framing is unambiguous).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from stream.contract.dead_letter import DeadLetter

RAW_CHUNK_VERSION = 1


@dataclass(slots=True)
class Record:
    """One JSON object found in a transcript file. Its identity is (file_id, incarnation, offset)."""

    offset: int  # byte offset of the object's first byte in the file
    line_no: int  # 1-based physical line number (two glued objects share one)
    raw: bytes  # the object's bytes, no newline


@dataclass(slots=True)
class _Wire:
    """What RawChunk.decode keeps of a Kafka message, so the lines need not be copied or split."""

    message: bytes  # the Kafka message: a JSON header line, then one record per line
    header_end: int  # index of the newline after the header (-1: a header alone, no records)
    offsets: list[int]
    line_nos: list[int]
    records: list[Record] | None = None  # once built from the message


@dataclass(slots=True)
class RawChunk:
    """Records of one file read together: the unit that travels through ``ccstream.raw-events``."""

    host: str
    user: str
    path: str
    file_id: str
    incarnation: int  # bumped each time the file is found truncated or recreated
    fingerprint: str  # of the file's head, to recognise the same incarnation later
    session_id: str  # from the file name / the hook; a line's own sessionId wins at extraction
    agent_id: str | None  # subagent files: the <id> of agent-<id>.jsonl
    records: list[Record]
    end_offset: int  # the file cursor after this chunk (byte offset of the next unread byte)
    end_line: int  # the line number of the last line this chunk consumed
    # bad lines met while reading this chunk: they travel with the chunk so the sink stores them together
    # with the rows and the checkpoint, and nothing is lost between two topics after a crash
    dead_letters: list[DeadLetter] = field(default_factory=list)
    # secrets replaced in each record by the edge's redactor (parallel to records; empty = none anywhere)
    redactions: list[int] = field(default_factory=list)
    # decode() keeps the message, so the sink hands the lines to ClickHouse without copying or splitting them;
    # `records` is built from it on first use (decode(lazy=True)), and it stands for `records` while that is
    # still the list built from it
    _wire: _Wire | None = field(default=None, repr=False, compare=False)

    def __getattr__(self, name: str) -> Any:
        # only reached for an unset slot: `records` of a chunk decoded lazily, built on first use
        wire = object.__getattribute__(self, "_wire")
        if name == "records" and wire is not None:
            raws = wire.message[wire.header_end + 1:].split(b"\n") if wire.header_end >= 0 else []
            if len(raws) != len(wire.offsets):
                raise ValueError(f"raw chunk of {self.path}: the header lists {len(wire.offsets)} records, "
                                 f"the message holds {len(raws)} lines")
            records = [Record(o, n, r) for o, n, r in zip(wire.offsets, wire.line_nos, raws, strict=True)]
            self.records = records
            wire.records = records
            return records
        raise AttributeError(name)

    def redaction_count(self, index: int) -> int:
        return self.redactions[index] if self.redactions else 0

    def _valid_wire(self) -> _Wire | None:
        w = self._wire
        if w is None or (w.records is not None and (w.records is not self.records
                                                    or len(w.offsets) != len(self.records))):
            return None  # built by hand, or its records replaced since decode
        return w

    def record_count(self) -> int:
        w = self._valid_wire()
        return len(w.offsets) if w is not None else len(self.records)

    def offsets(self) -> list[int]:
        """Each record's byte offset in the file."""
        w = self._valid_wire()
        return w.offsets if w is not None else [r.offset for r in self.records]

    def line_numbers(self) -> list[int]:
        """Each record's physical line number."""
        w = self._valid_wire()
        return w.line_nos if w is not None else [r.line_no for r in self.records]

    def body(self) -> bytes:
        """The records joined by '\\n' (a record never holds a raw newline): the message after its header."""
        w = self._valid_wire()
        if w is not None:
            return w.message[w.header_end + 1:] if w.header_end >= 0 else b""
        return b"\n".join(r.raw for r in self.records)

    def headed_body(self) -> bytes:
        """A line to skip, then body(): for a decoded chunk the Kafka message itself, not copied (the sink's
        fast path), otherwise an empty first line."""
        w = self._valid_wire()
        return w.message if w is not None and w.header_end >= 0 else b"\n" + self.body()

    def encode(self) -> bytes:
        header = {
            "v": RAW_CHUNK_VERSION,
            "host": self.host,
            "user": self.user,
            "path": self.path,
            "file_id": self.file_id,
            "incarnation": self.incarnation,
            "fingerprint": self.fingerprint,
            "session_id": self.session_id,
            "agent_id": self.agent_id,
            "end_offset": self.end_offset,
            "end_line": self.end_line,
            "offsets": self.offsets(),
            "lines": self.line_numbers(),
        }
        if self.dead_letters:
            header["dead"] = [json.loads(d.encode()) for d in self.dead_letters]
        if any(self.redactions):
            header["redactions"] = self.redactions
        head = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        return head + b"\n" + self.body() if self.record_count() else head

    @classmethod
    def decode(cls, data: bytes, lazy: bool = False) -> RawChunk:
        """The chunk of a Kafka message. lazy=True leaves the lines in the message: `records` is built (and the
        record count checked against the header) on first use, and offsets()/line_numbers()/headed_body()
        never build it. That is the sink's fast path, where ClickHouse checks the count instead."""
        end = data.find(b"\n")
        header = json.loads(data if end < 0 else data[:end])
        if header.get("v") != RAW_CHUNK_VERSION:
            raise ValueError(f"unsupported raw chunk version {header.get('v')!r}")
        offsets, lines = header["offsets"], header["lines"]
        if len(offsets) != len(lines) or (end < 0) != (not offsets):
            raise ValueError("raw chunk header and body disagree on the number of records")
        chunk = object.__new__(cls)
        chunk.host = header["host"]
        chunk.user = header["user"]
        chunk.path = header["path"]
        chunk.file_id = header["file_id"]
        chunk.incarnation = int(header["incarnation"])
        chunk.fingerprint = header["fingerprint"]
        chunk.session_id = header["session_id"]
        chunk.agent_id = header.get("agent_id")
        chunk.end_offset = int(header["end_offset"])
        chunk.end_line = int(header["end_line"])
        chunk.dead_letters = [DeadLetter.from_obj(d) for d in header.get("dead", ())]
        chunk.redactions = list(header.get("redactions", ()))
        chunk._wire = _Wire(data, end, offsets, lines)
        if not lazy:
            chunk.records  # noqa: B018 - builds them now, and checks their count
        return chunk
