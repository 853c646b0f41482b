"""Batches from the sink into ClickHouse: raw chunks → claude_raw_traces + dead_letters + file_checkpoints,
session events → session_events, dead letters → dead_letters.

Blocking calls, meant to run in a thread (`asyncio.to_thread`): chDB has no async client.

* Idempotent: one INSERT per table per call, each with an insert_deduplication_token derived from the
  caller's batch token (`<token>:<table>`), so a batch replayed after a crash is dropped at insert time; the
  ReplacingMergeTree keys (see schema.py) merge whatever still arrives twice.
* Order: rows first, then dead letters, then checkpoints, so a checkpoint never claims lines ClickHouse does
  not hold (a crash between them re-delivers the batch and the tokens drop what was already stored).
* A batch ClickHouse rejects for its content is bisected down to the offending rows, which go to
  dead_letters with ClickHouse's reason while the rest lands: one bad row never blocks a partition. The
  sub-batch tokens derive from the row ranges, so a replay bisects and dedups identically.
* ClickHouseUnavailable propagates untouched: the sink's retry loop owns waiting.
* Fast path (the default): chunks go in whole, one row each, into `raw_chunks`, and ClickHouse extracts the
  columns (stream/store/extraction.py); no per-line work happens in Python. A chunk ClickHouse rejects
  there is bisected out and written the slow way, extracted in Python (stream/store/extract.py) row by row, so
  the one offending line still lands in dead_letters with ClickHouse's reason.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from stream.contract.dead_letter import DEAD_LETTER_RAW_LIMIT, DeadLetter
from stream.contract.raw_chunk import RawChunk
from stream.contract.session_event import SessionEvent
from stream.store.client import ClickHouse, ClickHouseRejected
from stream.store.extract import COLUMN_INDEX, RAW_TRACES_COLUMNS, extract_row, to_millis
from stream.store.extraction import RAW_CHUNK_COLUMNS, RAW_CHUNKS_TABLE
from stream.tail.cursor import Checkpoint

log = logging.getLogger("ccstream.writer")

Redactor = Callable[[bytes], tuple[bytes, int]]
Row = tuple[Any, ...]

DEAD_LETTER_COLUMNS = ["host", "file_path", "file_id", "incarnation", "byte_offset", "line_no", "length",
                       "reason", "sample", "detected_at", "ingested_at"]
SESSION_EVENT_COLUMNS = ["event_id", "hook_event_name", "session_id", "transcript_path", "cwd", "host", "user",
                         "received_at", "source", "reason", "agent_id", "payload", "ingested_at"]
# `version` is left to its DEFAULT (incarnation * 2^40 + end_offset), defined once in the schema
CHECKPOINT_COLUMNS = ["host", "file_id", "file_path", "incarnation", "fingerprint", "end_offset", "end_line",
                      "updated_at"]

REASON_LIMIT = 2000  # characters of a ClickHouse error kept as the dead letter's reason

# a batch may span many months of transcripts (an import of old files): never refuse it for that
RAW_INSERT_SETTINGS = {"max_partitions_per_insert_block": 0}
# through the view: the token must also drop the view's blocks (the default on current servers, not on older)
CHUNK_INSERT_SETTINGS = {**RAW_INSERT_SETTINGS, "deduplicate_blocks_in_dependent_materialized_views": 1}


def table_token(token: str | None, table: str) -> str | None:
    """The per-table deduplication token of a batch token (one batch writes several tables)."""
    return None if token is None else f"{token}:{table}"


def chunk_row(chunk: RawChunk, now_ms: int) -> Row:
    """The chunk as one row of raw_chunks (RAW_CHUNK_COLUMNS order)."""
    return (chunk.host, chunk.user, chunk.file_id, chunk.incarnation, chunk.path, chunk.session_id,
            chunk.agent_id or "", chunk.offsets(), chunk.line_numbers(), chunk.redactions, chunk.headed_body(),
            now_ms)


class TraceWriter:
    def __init__(self, ch: ClickHouse, redactor: Redactor | None = None,
                 clock: Callable[[], datetime] | None = None, extract_in_clickhouse: bool = True) -> None:
        self.ch = ch
        self.redactor = redactor
        self._clock = clock or (lambda: datetime.now(UTC))
        # a sink-side redactor rewrites lines one by one in Python: that needs the Python path anyway
        self.extract_in_clickhouse = extract_in_clickhouse and redactor is None
        self.rejected_rows = 0  # rows ClickHouse refused and that went to dead_letters instead

    # ---- public API --------------------------------------------------------------------------------------
    def write_chunks(self, chunks: list[RawChunk], dedup_token: str | None) -> int:
        """Rows into claude_raw_traces, the chunks' dead letters into dead_letters, one file_checkpoints row
        per chunk. Returns the rows stored in claude_raw_traces."""
        now = self._clock()
        now_ms = to_millis(now)
        dead: list[Row] = []
        checkpoints: list[Row] = []
        for chunk in chunks:
            dead.extend(self._dead_letter_row(d, now_ms) for d in chunk.dead_letters)
            checkpoints.append((chunk.host, chunk.file_id, chunk.path, chunk.incarnation, chunk.fingerprint,
                                chunk.end_offset, chunk.end_line, now_ms))

        token = table_token(dedup_token, "raw")
        if self.extract_in_clickhouse:
            stored, refused = self._write_chunks_extracted_by_clickhouse(chunks, token, now, now_ms)
            dead.extend(refused)
        else:
            stored, rejected = self._write_rows(chunks, token, now)
            dead.extend(self._rejected_trace_row(row, reason, now_ms) for row, reason in rejected)
        self._insert_dead_rows(dead, table_token(dedup_token, "dead"))
        _, lost = self._insert_bisect("file_checkpoints", checkpoints, CHECKPOINT_COLUMNS,
                                      table_token(dedup_token, "ckpt"))
        for row, reason in lost:  # only costs a re-read after an ephemeral-broker restart: say so, go on
            log.error("file checkpoint for %s refused by ClickHouse: %s", row[2], reason)
        return stored

    def _write_chunks_extracted_by_clickhouse(self, chunks: list[RawChunk], token: str | None, now: datetime,
                                              now_ms: int) -> tuple[int, list[Row]]:
        """One raw_chunks row per chunk; a chunk ClickHouse rejects goes the Python way (_write_rows), where
        bisection finds the offending lines. Returns (rows stored, dead_letters rows for what was refused)."""
        with_records = [c for c in chunks if c.record_count()]  # a chunk of bad lines only has no rows
        rows = [chunk_row(c, now_ms) for c in with_records]
        by_row = {id(row): c for row, c in zip(rows, with_records, strict=True)}
        _, refused = self._insert_bisect(RAW_CHUNKS_TABLE, rows, RAW_CHUNK_COLUMNS, token, CHUNK_INSERT_SETTINGS,
                                         log_rejected=False)
        refused_chunks = [by_row[id(row)] for row, _ in refused]
        stored = sum(c.record_count() for c in with_records) - sum(c.record_count() for c in refused_chunks)
        if not refused_chunks:
            return stored, []
        log.warning("ClickHouse refused %d of %d chunks through %s: writing their rows one by one",
                    len(refused_chunks), len(rows), RAW_CHUNKS_TABLE)
        dead: list[Row] = []
        whole: list[RawChunk] = []
        for c, (_, reason) in zip(refused_chunks, refused, strict=True):
            try:
                c.records  # noqa: B018 - a lazily decoded chunk checks its record count here
                whole.append(c)
            except ValueError as exc:  # the header and the lines disagree: no line can be placed
                log.error("malformed raw chunk of %s dropped to dead_letters: %s", c.path, exc)
                offsets, body = c.offsets(), c.body()
                dead.append(self._dead_letter_row(DeadLetter(
                    c.host, c.path, c.file_id, c.incarnation, offsets[0] if offsets else c.end_offset,
                    c.line_numbers()[0] if offsets else c.end_line, len(body),
                    f"malformed_chunk: {exc}; ClickHouse: {reason}"[:REASON_LIMIT], body, now_ms / 1000), now_ms))
        more, rejected = self._write_rows(whole, None if token is None else f"{token}:rows", now)
        dead.extend(self._rejected_trace_row(row, reason, now_ms) for row, reason in rejected)
        return stored + more, dead

    def _write_rows(self, chunks: list[RawChunk], token: str | None,
                    now: datetime) -> tuple[int, list[tuple[Row, str]]]:
        """claude_raw_traces rows extracted in Python, redacted first if this writer redacts."""
        rows: list[Row] = []
        redact = self.redactor
        for chunk in chunks:
            for i, rec in enumerate(chunk.records):
                done = chunk.redaction_count(i)  # the edge redacted before the line left its machine
                if redact is not None:
                    raw, n = redact(rec.raw)
                    rows.append(extract_row(raw, chunk, rec, now, redactions=done + n))
                else:
                    rows.append(extract_row(rec.raw, chunk, rec, now, redactions=done))
        return self._insert_bisect("claude_raw_traces", rows, RAW_TRACES_COLUMNS, token, RAW_INSERT_SETTINGS)

    def write_session_events(self, events: list[SessionEvent], dedup_token: str | None) -> int:
        """Hook events into session_events; returns the rows stored."""
        now_ms = to_millis(self._clock())
        rows = [self._session_event_row(e, now_ms) for e in events]
        stored, rejected = self._insert_bisect("session_events", rows, SESSION_EVENT_COLUMNS,
                                               table_token(dedup_token, "events"))
        dead = [self._rejected_event_row(row, reason, now_ms) for row, reason in rejected]
        self._insert_dead_rows(dead, table_token(dedup_token, "events-dead"))
        return stored

    def write_dead_letters(self, letters: list[DeadLetter], dedup_token: str | None) -> int:
        """Dead letters (from the dead-letters topic) into dead_letters; returns the rows stored."""
        now_ms = to_millis(self._clock())
        return self._insert_dead_rows([self._dead_letter_row(d, now_ms) for d in letters],
                                      table_token(dedup_token, "dead"))

    def file_checkpoints(self, host: str) -> dict[str, Checkpoint]:
        """path → where ClickHouse holds each file of `host` up to: the newest incarnation at its furthest
        offset (FINAL collapses the per-chunk rows by their version incarnation * 2^40 + end_offset)."""
        rows = self.ch.query_rows(
            "SELECT file_path, incarnation, fingerprint, end_offset, end_line "
            "FROM file_checkpoints FINAL WHERE host = {host:String}", {"host": host})
        return {path: Checkpoint(path, int(inc), fp, int(off), int(line)) for path, inc, fp, off, line in rows}

    # ---- rows --------------------------------------------------------------------------------------------
    def _redact(self, data: bytes) -> bytes:
        return data if self.redactor is None else self.redactor(data)[0]

    def _dead_letter_row(self, d: DeadLetter, now_ms: int) -> Row:
        return (d.host, d.path, d.file_id, d.incarnation, d.offset, d.line_no, d.length, d.reason,
                self._redact(d.sample[:DEAD_LETTER_RAW_LIMIT]), int(round(d.detected_at * 1000)), now_ms)

    @staticmethod
    def _rejected_trace_row(row: Row, reason: str, now_ms: int) -> Row:
        c = COLUMN_INDEX
        raw: bytes = row[c["raw"]]  # already redacted
        return (row[c["host"]], row[c["file_path"]], row[c["file_id"]], row[c["incarnation"]],
                row[c["byte_offset"]], row[c["line_no"]], len(raw), f"rejected by ClickHouse: {reason}",
                raw[:DEAD_LETTER_RAW_LIMIT], now_ms, now_ms)

    def _session_event_row(self, e: SessionEvent, now_ms: int) -> Row:
        p = e.payload
        payload = json.dumps(p, separators=(",", ":"), ensure_ascii=False).encode()
        return (e.event_id, e.hook_event_name, e.session_id, e.transcript_path or "", e.cwd or "", e.host,
                e.user, int(round(e.received_at * 1000)), _text(p.get("source")), _text(p.get("reason")),
                _text(p.get("agent_id")), self._redact(payload), now_ms)

    @staticmethod
    def _rejected_event_row(row: Row, reason: str, now_ms: int) -> Row:
        # a hook event has no file identity: it is keyed by its event id in the file_id column
        event_id, _, _, transcript_path, _, host = row[:6]
        payload: bytes = row[11]
        return (host, transcript_path, f"event:{event_id}", 0, 0, 0, len(payload),
                f"session event rejected by ClickHouse: {reason}", payload[:DEAD_LETTER_RAW_LIMIT],
                now_ms, now_ms)

    def _insert_dead_rows(self, rows: list[Row], token: str | None) -> int:
        stored, lost = self._insert_bisect("dead_letters", rows, DEAD_LETTER_COLUMNS, token)
        for row, reason in lost:  # nowhere left to put it but the log
            log.error("dead letter %s@%s refused by ClickHouse: %s", row[1], row[4], reason)
        return stored

    # ---- inserting ---------------------------------------------------------------------------------------
    def _insert_bisect(self, table: str, rows: Sequence[Row], columns: list[str], token: str | None,
                       settings: dict[str, Any] | None = None,
                       log_rejected: bool = True) -> tuple[int, list[tuple[Row, str]]]:
        """Insert rows in one batch; if ClickHouse rejects it for its content, bisect to the offending rows.
        Returns (rows stored, [(rejected row, reason)])."""
        rejected: list[tuple[Row, str]] = []

        def attempt(lo: int, hi: int, tok: str | None) -> int:
            batch = list(rows[lo:hi])
            opts = dict(settings or {})
            if tok is not None:
                opts["insert_deduplication_token"] = tok
            try:
                self.ch.insert(table, batch, columns, settings=opts)
                return len(batch)
            except ClickHouseRejected as exc:
                if hi - lo == 1:
                    rejected.append((rows[lo], str(exc)[:REASON_LIMIT]))
                    return 0
                log.warning("ClickHouse rejected %d rows for %s (%s): bisecting", hi - lo, table,
                            str(exc)[:300])
            mid = (lo + hi) // 2
            return (attempt(lo, mid, None if token is None else f"{token}:{lo}-{mid}")
                    + attempt(mid, hi, None if token is None else f"{token}:{mid}-{hi}"))

        stored = attempt(0, len(rows), token) if rows else 0
        if rejected and log_rejected:
            self.rejected_rows += len(rejected)
            log.error("%d of %d rows for %s rejected by ClickHouse; the rest is stored", len(rejected),
                      len(rows), table)
        return stored, rejected


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)
