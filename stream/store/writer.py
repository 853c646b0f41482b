"""Batches from the sink into ClickHouse: raw chunks → claude_raw_traces + dead_letters + file_checkpoints,
session events → session_events, dead letters → dead_letters. This module builds the rows (named: one
NamedTuple per table, its fields the table's columns); stream/store/commit.py owns how they go in.

Blocking calls, meant to run in a thread (`asyncio.to_thread`): chDB has no async client.

* Exactly once: each call is one `Commit` (stream/store/commit.py) under the caller's batch token: its
  per-table and bisect tokens, and the order rows → dead letters → checkpoints, are stated there.
* A batch ClickHouse rejects for its content is bisected down to the offending rows, which go to
  dead_letters with ClickHouse's reason while the rest lands: one bad row never blocks a partition.
* ClickHouseUnavailable propagates untouched: the sink's retry loop owns waiting.
* Two extraction engines, the same rows (settings.sink_extraction; the worker's default is Python):
  `extract_in_clickhouse=False` extracts each line in Python (stream/store/extract.py) and inserts rows into
  claude_raw_traces; `True` inserts chunks whole, one row each, into `raw_chunks`, and ClickHouse extracts
  the columns (stream/store/extraction.py). chDB re-analyses that view's SELECT on every insert (~160 ms,
  whatever the size), which is why Python is the worker's default. A chunk ClickHouse rejects through the
  view is bisected out and written the Python way, so the one offending line still lands in dead_letters
  with ClickHouse's reason.
"""

from __future__ import annotations

import json
import logging
from collections import namedtuple
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from stream.contract.dead_letter import DEAD_LETTER_RAW_LIMIT, DeadLetter
from stream.contract.raw_chunk import MalformedChunk, RawChunk
from stream.contract.session_event import SessionEvent
from stream.store.client import ClickHouse
from stream.store.commit import REASON_LIMIT, Commit, Step
from stream.store.extract import RAW_TRACES_COLUMNS, extract_row, to_millis
from stream.store.extraction import RAW_CHUNKS_TABLE
from stream.tail.cursor import Checkpoint

log = logging.getLogger("ccstream.writer")

Redactor = Callable[[bytes], tuple[bytes, int]]
Row = tuple[Any, ...]


class DeadLetterRow(NamedTuple):
    host: str
    file_path: str
    file_id: str
    incarnation: int
    byte_offset: int
    line_no: int
    length: int
    reason: str
    sample: bytes
    detected_at: int  # epoch milliseconds
    ingested_at: int


class SessionEventRow(NamedTuple):
    event_id: str
    hook_event_name: str
    session_id: str
    transcript_path: str
    cwd: str
    host: str
    user: str
    received_at: int  # epoch milliseconds
    source: str
    reason: str
    agent_id: str
    payload: bytes
    ingested_at: int


class CheckpointRow(NamedTuple):
    """`version` is left to its DEFAULT (incarnation * 2^40 + end_offset), defined once in the schema."""

    host: str
    file_id: str
    file_path: str
    incarnation: int
    fingerprint: str
    end_offset: int
    end_line: int
    updated_at: int


class RawChunkRow(NamedTuple):
    """One chunk as one row of the Null table raw_chunks (stream/store/extraction.py: RAW_CHUNK_COLUMNS)."""

    host: str
    user: str
    file_id: str
    incarnation: int
    file_path: str
    file_session_id: str
    file_agent_id: str
    offsets: list[int]
    line_nos: list[int]
    redactions: list[int]
    message: bytes  # a line the view skips, then one record per line: the Kafka message itself
    ingested_at: int


# named access to extract_row's tuple, whatever columns extract.py has (built from its column list)
TraceRow = namedtuple("TraceRow", RAW_TRACES_COLUMNS)  # type: ignore[misc]

DEAD_LETTER_COLUMNS = list(DeadLetterRow._fields)
SESSION_EVENT_COLUMNS = list(SessionEventRow._fields)
CHECKPOINT_COLUMNS = list(CheckpointRow._fields)

# a batch may span many months of transcripts (an import of old files): never refuse it for that
RAW_INSERT_SETTINGS = {"max_partitions_per_insert_block": 0}
# through the view: the token must also drop the view's blocks (the default on current servers, not on older)
CHUNK_INSERT_SETTINGS = {**RAW_INSERT_SETTINGS, "deduplicate_blocks_in_dependent_materialized_views": 1}


def chunk_row(chunk: RawChunk, now_ms: int) -> RawChunkRow:
    """The chunk as one row of raw_chunks."""
    return RawChunkRow(chunk.host, chunk.user, chunk.file_id, chunk.incarnation, chunk.path, chunk.session_id,
                       chunk.agent_id or "", chunk.offsets, chunk.line_nos, chunk.redactions, chunk.headed_body(),
                       now_ms)


def checkpoint_row(chunk: RawChunk, now_ms: int) -> CheckpointRow:
    return CheckpointRow(chunk.host, chunk.file_id, chunk.path, chunk.incarnation, chunk.fingerprint,
                         chunk.end_offset, chunk.end_line, now_ms)


# where ClickHouse holds each file of a host up to (the sink's store, or through a split `up`'s sink worker)
FILE_CHECKPOINTS_SQL = ("SELECT file_path, incarnation, fingerprint, end_offset, end_line "
                        "FROM file_checkpoints FINAL WHERE host = {host:String}")


def checkpoints_of(rows: Iterable[Sequence[Any]]) -> dict[str, Checkpoint]:
    """path -> Checkpoint of FILE_CHECKPOINTS_SQL's rows (as tuples in its column order)."""
    return {str(path): Checkpoint(str(path), int(inc), str(fp), int(off), int(line))
            for path, inc, fp, off, line in rows}


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
        per chunk, in that order (one Commit). Returns the rows stored in claude_raw_traces."""
        commit = Commit(self.ch, dedup_token)
        now = self._clock()
        now_ms = to_millis(now)
        if self.extract_in_clickhouse:
            stored, dead = self._write_chunks_extracted_by_clickhouse(commit, chunks, now, now_ms)
        else:
            stored, dead = self._write_rows(commit, chunks, now, now_ms)
        dead = [self._dead_letter_row(d, now_ms) for c in chunks for d in c.dead_letters] + dead
        self._insert_dead_rows(commit, dead)
        _, lost = commit.insert(Step.CHECKPOINTS, "file_checkpoints", [checkpoint_row(c, now_ms) for c in chunks],
                                CHECKPOINT_COLUMNS)
        for row, reason in lost:  # only costs a re-read after an ephemeral-broker restart: say so, go on
            log.error("file checkpoint for %s refused by ClickHouse: %s", CheckpointRow(*row).file_path, reason)
        return stored

    def _write_chunks_extracted_by_clickhouse(self, commit: Commit, chunks: list[RawChunk], now: datetime,
                                              now_ms: int) -> tuple[int, list[DeadLetterRow]]:
        """One raw_chunks row per chunk; a chunk ClickHouse rejects goes the Python way (_write_rows), where
        bisection finds the offending lines. Returns (rows stored, dead_letters rows for what was refused)."""
        with_records = [c for c in chunks if c.record_count()]  # a chunk of bad lines only has no rows
        rows = [chunk_row(c, now_ms) for c in with_records]
        by_row = {id(row): c for row, c in zip(rows, with_records, strict=True)}
        _, refused = commit.insert(Step.ROWS, RAW_CHUNKS_TABLE, rows, RawChunkRow._fields, CHUNK_INSERT_SETTINGS,
                                   log_rejected=False)
        refused_chunks = [by_row[id(row)] for row, _ in refused]
        stored = sum(c.record_count() for c in with_records) - sum(c.record_count() for c in refused_chunks)
        if not refused_chunks:
            return stored, []
        log.warning("ClickHouse refused %d of %d chunks through %s: writing their rows one by one",
                    len(refused_chunks), len(rows), RAW_CHUNKS_TABLE)
        dead: list[DeadLetterRow] = []
        whole: list[RawChunk] = []
        for c, (_, reason) in zip(refused_chunks, refused, strict=True):
            try:
                whole.append(c.validate())
            except MalformedChunk as exc:  # the header and the lines disagree: no line can be placed
                log.error("malformed raw chunk of %s dropped to dead_letters: %s", c.path, exc)
                body = c.body()
                dead.append(self._dead_letter_row(DeadLetter(
                    c.host, c.path, c.file_id, c.incarnation, c.offsets[0] if c.offsets else c.end_offset,
                    c.line_nos[0] if c.line_nos else c.end_line, len(body),
                    f"malformed_chunk: {exc}; ClickHouse: {reason}"[:REASON_LIMIT], body, now_ms / 1000), now_ms))
        more, rejected = self._write_rows(commit, whole, now, now_ms)
        return stored + more, dead + rejected

    def _write_rows(self, commit: Commit, chunks: list[RawChunk], now: datetime,
                    now_ms: int) -> tuple[int, list[DeadLetterRow]]:
        """claude_raw_traces rows extracted in Python, redacted first if this writer redacts. Returns (rows
        stored, dead_letters rows for the rows ClickHouse refused)."""
        rows: list[Row] = []
        redact = self.redactor
        for chunk in chunks:
            for i, rec in enumerate(chunk.records()):
                done = chunk.redaction_count(i)  # the edge redacted before the line left its machine
                if redact is not None:
                    raw, n = redact(rec.raw)
                    rows.append(extract_row(raw, chunk, rec, now, redactions=done + n))
                else:
                    rows.append(extract_row(rec.raw, chunk, rec, now, redactions=done))
        stored, rejected = commit.insert(Step.ROWS, "claude_raw_traces", rows, RAW_TRACES_COLUMNS,
                                         RAW_INSERT_SETTINGS)
        self.rejected_rows += len(rejected)
        return stored, [self._rejected_trace_row(row, reason, now_ms) for row, reason in rejected]

    def write_session_events(self, events: list[SessionEvent], dedup_token: str | None) -> int:
        """Hook events into session_events, then the ones ClickHouse refused into dead_letters (one Commit);
        returns the rows stored."""
        commit = Commit(self.ch, dedup_token)
        now_ms = to_millis(self._clock())
        rows = [self._session_event_row(e, now_ms) for e in events]
        stored, rejected = commit.insert(Step.ROWS, "session_events", rows, SESSION_EVENT_COLUMNS)
        self.rejected_rows += len(rejected)
        self._insert_dead_rows(commit, [self._rejected_event_row(SessionEventRow(*row), reason, now_ms)
                                        for row, reason in rejected])
        return stored

    def write_dead_letters(self, letters: list[DeadLetter], dedup_token: str | None) -> int:
        """Dead letters (from the dead-letters topic) into dead_letters; returns the rows stored."""
        now_ms = to_millis(self._clock())
        return self._insert_dead_rows(Commit(self.ch, dedup_token),
                                      [self._dead_letter_row(d, now_ms) for d in letters])

    def file_checkpoints(self, host: str) -> dict[str, Checkpoint]:
        """path → where ClickHouse holds each file of `host` up to: the newest incarnation at its furthest
        offset (FINAL collapses the per-chunk rows by their version incarnation * 2^40 + end_offset)."""
        rows = self.ch.query_rows(FILE_CHECKPOINTS_SQL, {"host": host})
        return checkpoints_of(rows)

    # ---- rows --------------------------------------------------------------------------------------------
    def _redact(self, data: bytes) -> bytes:
        return data if self.redactor is None else self.redactor(data)[0]

    def _dead_letter_row(self, d: DeadLetter, now_ms: int) -> DeadLetterRow:
        return DeadLetterRow(d.host, d.path, d.file_id, d.incarnation, d.offset, d.line_no, d.length, d.reason,
                             self._redact(d.sample[:DEAD_LETTER_RAW_LIMIT]), int(round(d.detected_at * 1000)),
                             now_ms)

    @staticmethod
    def _rejected_trace_row(row: Row, reason: str, now_ms: int) -> DeadLetterRow:
        t: Any = TraceRow._make(row)  # fields made at run time from RAW_TRACES_COLUMNS: mypy cannot see them
        raw: bytes = t.raw  # already redacted
        return DeadLetterRow(t.host, t.file_path, t.file_id, t.incarnation, t.byte_offset, t.line_no, len(raw),
                             f"rejected by ClickHouse: {reason}", raw[:DEAD_LETTER_RAW_LIMIT], now_ms, now_ms)

    def _session_event_row(self, e: SessionEvent, now_ms: int) -> SessionEventRow:
        p = e.payload
        payload = json.dumps(p, separators=(",", ":"), ensure_ascii=False).encode()
        return SessionEventRow(e.event_id, e.hook_event_name, e.session_id, e.transcript_path or "", e.cwd or "",
                               e.host, e.user, int(round(e.received_at * 1000)), _text(p.get("source")),
                               _text(p.get("reason")), _text(p.get("agent_id")), self._redact(payload), now_ms)

    @staticmethod
    def _rejected_event_row(e: SessionEventRow, reason: str, now_ms: int) -> DeadLetterRow:
        # a hook event has no file identity: it is keyed by its event id in the file_id column
        return DeadLetterRow(e.host, e.transcript_path, f"event:{e.event_id}", 0, 0, 0, len(e.payload),
                             f"session event rejected by ClickHouse: {reason}", e.payload[:DEAD_LETTER_RAW_LIMIT],
                             now_ms, now_ms)

    def _insert_dead_rows(self, commit: Commit, rows: list[DeadLetterRow]) -> int:
        stored, lost = commit.insert(Step.DEAD_LETTERS, "dead_letters", rows, DEAD_LETTER_COLUMNS)
        for row, reason in lost:  # nowhere left to put it but the log
            d = DeadLetterRow(*row)
            log.error("dead letter %s@%s refused by ClickHouse: %s", d.file_path, d.byte_offset, reason)
        return stored


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)
