"""``ccstream.<app>.tail-requests`` (edge-internal): ask the tailer to read a file (key: path)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


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
