"""The Kafka contract: topic names live in Settings; message shapes, keys and codecs live here.

docs/topics.md documents these shapes for downstream consumers; keep the two in step.

* ``ccstream.sessions``      key: session id (utf-8).  value: one JSON object, a :class:`SessionEvent`.
* ``ccstream.raw-events``    key: session id (utf-8).  value: a :class:`RawChunk`: a JSON header line, then one
  transcript record per line (records never contain a newline, so the framing is unambiguous).
* ``ccstream.dead-letters``  key: file id (utf-8).     value: one JSON object, a :class:`DeadLetter`.
* ``ccstream.<app>.tail-requests`` (edge-internal) key: file path. value: a :class:`TailRequest`.

Volume travels in chunks (the records of one file read together), never one message per line: a Faust agent
costs ~180 µs a message here, so per-line messages would cap the pipeline near 5k lines/s.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

RAW_CHUNK_VERSION = 1


def file_id_for(host: str, path: str) -> str:
    """Stable id of a transcript path on a host: the same on every restart, distinct across hosts."""
    return hashlib.sha1(f"{host}\0{path}".encode()).hexdigest()[:16]


@dataclass(slots=True)
class SessionEvent:
    """A Claude Code hook payload as captured by ``ccstream hook``."""

    event_id: str  # unique per hook invocation; consumers drop repeats by it
    hook_event_name: str
    session_id: str
    transcript_path: str | None
    cwd: str | None
    host: str
    user: str
    received_at: float  # unix seconds when the hook ran
    payload: dict[str, Any] = field(default_factory=dict)  # the whole stdin payload
    stream_id: str | None = None  # Redis stream entry id, set by the bridge

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def decode(cls, data: bytes | str | dict[str, Any]) -> SessionEvent:
        obj = data if isinstance(data, dict) else json.loads(data)
        return cls(
            event_id=str(obj["event_id"]),
            hook_event_name=str(obj.get("hook_event_name") or ""),
            session_id=str(obj.get("session_id") or ""),
            transcript_path=obj.get("transcript_path"),
            cwd=obj.get("cwd"),
            host=str(obj.get("host") or ""),
            user=str(obj.get("user") or ""),
            received_at=float(obj.get("received_at") or 0.0),
            payload=dict(obj.get("payload") or {}),
            stream_id=obj.get("stream_id"),
        )


@dataclass(slots=True)
class Record:
    """One JSON object found in a transcript file. Its identity is (file_id, incarnation, offset)."""

    offset: int  # byte offset of the object's first byte in the file
    line_no: int  # 1-based physical line number (two glued objects share one)
    raw: bytes  # the object's bytes, no newline


DEAD_LETTER_RAW_LIMIT = 64 * 1024  # bytes of a bad line kept in the dead letter


@dataclass(slots=True)
class DeadLetter:
    """A line that could not become an event (not JSON, not UTF-8, too long), or a refused input."""

    host: str
    path: str
    file_id: str
    incarnation: int
    offset: int
    line_no: int
    length: int  # bytes of the bad line (the kept sample may be shorter)
    reason: str
    sample: bytes  # up to DEAD_LETTER_RAW_LIMIT bytes of the line
    detected_at: float

    def encode(self) -> bytes:
        obj = asdict(self)
        obj["sample_b64"] = base64.b64encode(obj.pop("sample")[:DEAD_LETTER_RAW_LIMIT]).decode()
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def decode(cls, data: bytes) -> DeadLetter:
        return cls.from_obj(json.loads(data))

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> DeadLetter:
        obj = dict(obj)
        sample = base64.b64decode(obj.pop("sample_b64", ""))
        return cls(sample=sample, **obj)


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


@dataclass(slots=True)
class TailRequest:
    """Ask the tailer to read a file now (a change was seen, a session started or ended, a scan found it)."""

    path: str
    session_id: str = ""
    agent_id: str | None = None
    final: bool = False  # the session ended: take an unterminated last line if it parses whole
    reason: str = ""  # inotify, poll, scan, hook, continue

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> TailRequest:
        return cls(**json.loads(data))
