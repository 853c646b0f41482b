"""``<prefix>.raw-inserted`` (split `up` only): what the sink inserted, told to the edge (key: host).

Where the edge and the sink of the embedded stack are two processes, the tailer still has to learn which of
its chunks are in ClickHouse: a file changes lanes only when nothing of it is in flight
(stream/tail/raw_lane.py), and history waits while too many of its lines are not inserted yet
(`tail_sink_lag_records`). In one process the sink tells it with a call; across two, with one of these per
insert. Advisory, not data: a notice lost or repeated never loses a row (marks are idempotent, and the
pacing re-bases itself when the sink goes quiet). Not for consumers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from stream.tail.raw_lane import Mark


@dataclass(slots=True)
class InsertNotice:
    host: str
    rows: int  # lines inserted (what the tailer's pacing compares with the lines it produced)
    marks: list[tuple[str, Mark]] = field(default_factory=list)  # (path, (incarnation, end offset)) per chunk

    def encode(self) -> bytes:
        return json.dumps({"host": self.host, "rows": self.rows,
                           "marks": [[p, inc, end] for p, (inc, end) in self.marks]},
                          separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def decode(cls, data: bytes) -> InsertNotice:
        d: dict[str, Any] = json.loads(data)
        marks = [(str(p), (int(inc), int(end))) for p, inc, end in d.get("marks", [])]
        return cls(host=str(d["host"]), rows=int(d.get("rows", 0)), marks=marks)
