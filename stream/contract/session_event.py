"""``ccstream.sessions``: one Claude Code hook event per message (key: session id)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


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
