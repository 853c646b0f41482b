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

    def redaction_count(self, index: int) -> int:
        return self.redactions[index] if self.redactions else 0

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
            "offsets": [r.offset for r in self.records],
            "lines": [r.line_no for r in self.records],
        }
        if self.dead_letters:
            header["dead"] = [json.loads(d.encode()) for d in self.dead_letters]
        if any(self.redactions):
            header["redactions"] = self.redactions
        head = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        return b"\n".join([head, *(r.raw for r in self.records)])

    @classmethod
    def decode(cls, data: bytes) -> RawChunk:
        parts = data.split(b"\n")
        header = json.loads(parts[0])
        if header.get("v") != RAW_CHUNK_VERSION:
            raise ValueError(f"unsupported raw chunk version {header.get('v')!r}")
        raws = parts[1:]
        offsets, lines = header["offsets"], header["lines"]
        if not (len(raws) == len(offsets) == len(lines)):
            raise ValueError("raw chunk header and body disagree on the number of records")
        return cls(
            host=header["host"],
            user=header["user"],
            path=header["path"],
            file_id=header["file_id"],
            incarnation=int(header["incarnation"]),
            fingerprint=header["fingerprint"],
            session_id=header["session_id"],
            agent_id=header.get("agent_id"),
            records=[Record(o, n, r) for o, n, r in zip(offsets, lines, raws, strict=True)],
            end_offset=int(header["end_offset"]),
            end_line=int(header["end_line"]),
            dead_letters=[DeadLetter.from_obj(d) for d in header.get("dead", ())],
            redactions=list(header.get("redactions", ())),
        )


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
