"""``ccstream.<app>.tail-requests`` (edge-internal): ask the tailer to read a file (key: path).

Owns :class:`TailRequest` and :class:`RequestReason`, the one list of why a read was asked for and which of
those reasons are passive.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any


class RequestReason(enum.StrEnum):
    """Why a read was asked for. On the wire: the value, or for a hook the hook event's name."""

    INOTIFY = "inotify"  # the file watcher saw a write
    SCAN = "scan"  # a scan of the roots found the file changed or unknown
    ADOPT = "adopt"  # a scan found the file complete per its ClickHouse checkpoint
    CONTINUE = "continue"  # the rounds of a long file after its first (agents/tailer.py: STEPS_PER_ROUND)
    POLL = "poll"  # the stat poll of followed files saw a change (or the file gone)
    AGENT_REF = "agent-ref"  # a main file's line named this subagent
    QUIET_TAIL = "quiet-tail"  # a followed file's unterminated last line went quiet
    HOOK = "hook"  # a hook event (SessionStart, SessionEnd, Stop, ...) named the file

    @property
    def passive(self) -> bool:
        """A passive request only says "something may have changed": a read that finds nothing new does not
        make the file followed (an inotify event arriving after the SessionEnd read must not bring the file
        back to memory). A hook or a quiet tail means the file is live."""
        return self in _PASSIVE

    @classmethod
    def parse(cls, value: object) -> RequestReason:
        """Tolerant: a known value gives its member; anything else (a hook event's name as older tailers
        sent it, "", a value from a newer release) is a hook."""
        if isinstance(value, str) and value in _BY_VALUE:
            return _BY_VALUE[value]
        return cls.HOOK


_BY_VALUE = {r.value: r for r in RequestReason}
_PASSIVE = frozenset({RequestReason.INOTIFY, RequestReason.SCAN, RequestReason.ADOPT, RequestReason.CONTINUE,
                      RequestReason.POLL, RequestReason.AGENT_REF})


@dataclass(slots=True)
class TailRequest:
    """Ask the tailer to read a file now (a change was seen, a session started or ended, a scan found it)."""

    path: str
    session_id: str = ""
    agent_id: str | None = None
    final: bool = False  # the session ended: take an unterminated last line if it parses whole
    reason: RequestReason = RequestReason.HOOK
    hook_event: str = ""  # for reason HOOK: the hook event's name (logs); it travels as the reason string

    def encode(self) -> bytes:
        # one JSON string field for the reason, as before: a hook's is its event name when known
        wire = (self.hook_event or self.reason.value) if self.reason is RequestReason.HOOK else self.reason.value
        return json.dumps({"path": self.path, "session_id": self.session_id, "agent_id": self.agent_id,
                           "final": self.final, "reason": wire}, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> TailRequest:
        d: dict[str, Any] = json.loads(data)
        raw = d.get("reason", "")
        reason = RequestReason.parse(raw)
        hook_event = str(raw) if reason is RequestReason.HOOK and raw != RequestReason.HOOK.value else ""
        agent = d.get("agent_id")
        return cls(path=str(d["path"]), session_id=str(d.get("session_id") or ""),
                   agent_id=None if agent is None else str(agent), final=bool(d.get("final", False)),
                   reason=reason, hook_event=hook_event if isinstance(raw, str) else "")
