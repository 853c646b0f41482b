"""``ccstream.dead-letters``: a line or an input that could not become an event (key: file id)."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass
from typing import Any

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
