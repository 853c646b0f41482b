"""``ccstream.otel``: Claude Code's own OpenTelemetry, as rows of the OpenTelemetry Collector ClickHouse
exporter's tables (key: session id, or '' when the records name none).

One message holds the rows of one OTLP export request that belong to one session, cut so a message stays
under MESSAGE_LIMIT bytes. Each row carries `RecordId`, a hash of its content: the identity consumers drop
repeats by (a retried export or a replayed message carries the same ids).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

VERSION = 1
TABLES = ("otel_logs", "otel_traces", "otel_metrics_sum", "otel_metrics_gauge", "otel_metrics_histogram")
SIGNALS = ("logs", "metrics", "traces")
MESSAGE_LIMIT = 1024 * 1024  # bytes of JSON per message at most (a single larger row travels alone)


@dataclass(slots=True)
class OtelRecord:
    """Rows decoded from one export request (of one signal) for one session."""

    signal: str  # logs | metrics | traces
    session_id: str
    host: str  # the machine whose receiver took the request
    received_at: float  # unix seconds
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # table -> rows (column -> value)
    v: int = VERSION

    def row_count(self) -> int:
        return sum(len(rows) for rows in self.tables.values())

    def record_ids(self) -> list[str]:
        return [str(r["RecordId"]) for rows in self.tables.values() for r in rows]

    def key(self) -> bytes:
        return self.session_id.encode()

    def encode(self) -> bytes:
        obj = {"v": self.v, "signal": self.signal, "session_id": self.session_id, "host": self.host,
               "received_at": self.received_at, "tables": {t: r for t, r in self.tables.items() if r}}
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def decode(cls, data: bytes | str) -> OtelRecord:
        obj = json.loads(data)
        if obj.get("v") != VERSION:
            raise ValueError(f"unknown otel record version {obj.get('v')!r}")
        if obj.get("signal") not in SIGNALS:
            raise ValueError(f"unknown signal {obj.get('signal')!r}")
        tables = obj.get("tables") or {}
        unknown = set(tables) - set(TABLES)
        if unknown:
            raise ValueError(f"unknown tables {sorted(unknown)}")
        for rows in tables.values():
            for r in rows:
                if not isinstance(r, dict) or not r.get("RecordId"):
                    raise ValueError("every row needs a RecordId")
        return cls(signal=str(obj["signal"]), session_id=str(obj.get("session_id") or ""),
                   host=str(obj.get("host") or ""), received_at=float(obj.get("received_at") or 0.0),
                   tables={t: list(r) for t, r in tables.items()})


def split(signal: str, host: str, received_at: float, rows: list[tuple[str, str, dict[str, Any]]],
          limit: int = MESSAGE_LIMIT) -> list[OtelRecord]:
    """(session, table, row) triples as messages: one session per message, each under `limit` bytes of JSON
    (a row larger than that alone). Deterministic for the same input."""
    out: list[OtelRecord] = []
    by_session: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for session, table, row in rows:
        by_session.setdefault(session, []).append((table, row))
    for session, items in by_session.items():
        current = OtelRecord(signal, session, host, received_at)
        size = 200
        for table, row in items:
            n = len(json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode()) + 1
            if current.row_count() and size + n > limit:
                out.append(current)
                current, size = OtelRecord(signal, session, host, received_at), 200
            current.tables.setdefault(table, []).append(row)
            size += n
        if current.row_count():
            out.append(current)
    return out
