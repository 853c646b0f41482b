"""Exactly-once on the sink side: the one owner of insert deduplication tokens and of the commit order.

Delivery is at least once everywhere; the sink turns that into "exactly once as seen through the identity"
by two things stated here, once:

* **Tokens.** Every INSERT carries an ``insert_deduplication_token``, so a batch Kafka re-delivers (the sink
  crashed after the insert, before the offset commit) is dropped by ClickHouse at insert time:

  - the batch token (`batch_token`): topic + partition/offset ranges + the identities of what the batch
    carries (offsets alone repeat with other content on a fresh in-memory broker: rows were lost that way);
  - split tokens (`split_tokens`): ``<batch>/<i>of<n>`` for the n concurrent inserts one batch is cut into
    (`concurrent_commits`; the cut is deterministic, so a re-delivery is cut the same way);
  - per-table tokens (`table_token`): ``<token>:<table>``, one table at most once per commit;
  - bisect sub-tokens (`bisect_token`): ``<table token>:<lo>-<hi>`` when a rejected insert is cut in halves
    to find the offending rows (the halves depend on the rows only, so a replay bisects identically).

* **Order.** `Commit` runs one batch's inserts rows → dead letters → checkpoints (`Step`) and refuses any
  other order: a checkpoint never claims lines ClickHouse does not hold. Only after the whole commit
  returned does the caller acknowledge the Kafka events (agents/sink.py), so a failure anywhere re-delivers
  the batch, and the retry's tokens (the same ones: they depend on the batch alone) drop what was stored.

No I/O of its own: a `Target` (stream.store.client.ClickHouse, or a recording one in the unit tests) inserts.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from enum import IntEnum
from typing import Any, Protocol

from stream.contract.dead_letter import DeadLetter
from stream.contract.raw_chunk import RawChunk
from stream.store.client import ClickHouseRejected

log = logging.getLogger("ccstream.commit")

Row = tuple[Any, ...]
REASON_LIMIT = 2000  # characters of a ClickHouse error kept as a rejected row's reason


# ---- tokens ------------------------------------------------------------------------------------------------
def batch_token(topic: str, positions: Iterable[tuple[int, int]], identities: Iterable[str]) -> str:
    """The token of one Kafka batch: the same for a re-delivered batch, distinct for any other.

    positions: (partition, offset) of every event of the batch; identities: what the batch carries (see
    chunk_identity). Offsets alone are not enough: the embedded broker starts empty after a restart, so
    offsets repeat with other content, and ClickHouse would drop the new rows as duplicates of the old batch."""
    ranges: dict[int, list[int]] = {}
    for partition, offset in positions:
        lo_hi = ranges.setdefault(partition, [offset, offset])
        lo_hi[0] = min(lo_hi[0], offset)
        lo_hi[1] = max(lo_hi[1], offset)
    h = hashlib.sha1(topic.encode())
    h.update(";".join(f"{p}:{lo}-{hi}" for p, (lo, hi) in sorted(ranges.items())).encode())
    for item in identities:
        h.update(b"\0" + item.encode())
    return h.hexdigest()


def chunk_identity(c: RawChunk) -> str:
    """A raw chunk's content as the batch token sees it: its file, incarnation and byte range."""
    first = c.offsets[0] if c.offsets else c.end_offset
    return f"{c.file_id}/{c.incarnation}/{first}-{c.end_offset}"


def dead_letter_identity(d: DeadLetter) -> str:
    return f"{d.file_id}/{d.incarnation}/{d.offset}/{d.reason}"


def split_tokens(token: str, parts: int) -> list[str]:
    """The tokens of a batch cut into `parts` concurrent inserts (the batch's own when it is not cut)."""
    return [token] if parts == 1 else [f"{token}/{i}of{parts}" for i in range(parts)]


def table_token(token: str | None, table: str) -> str | None:
    """The token of one table's insert within a commit (one commit writes several tables)."""
    return None if token is None else f"{token}:{table}"


def bisect_token(token: str | None, lo: int, hi: int) -> str | None:
    """The token of rows[lo:hi] of an insert under `token` that ClickHouse rejected whole."""
    return None if token is None else f"{token}:{lo}-{hi}"


# ---- the cut of a batch into concurrent inserts --------------------------------------------------------------
def split_by_file(chunks: Sequence[RawChunk], parts: int) -> list[list[RawChunk]]:
    """The batch in at most `parts` groups for concurrent inserts, about equal in rows. A file's chunks stay
    together and in order, so one insert writes a file's rows and checkpoints in sequence: a checkpoint never
    gets ahead of rows of its file that another insert has not stored yet. Deterministic for a given batch."""
    by_file: dict[str, list[RawChunk]] = {}
    for c in chunks:
        by_file.setdefault(c.file_id, []).append(c)
    n = max(1, min(parts, len(by_file)))
    sizes = [0] * n
    group_of: dict[str, int] = {}
    for fid, file_chunks in sorted(by_file.items(), key=lambda kv: -sum(c.record_count() for c in kv[1])):
        group_of[fid] = i = sizes.index(min(sizes))
        sizes[i] += sum(c.record_count() + 1 for c in file_chunks)
    groups: list[list[RawChunk]] = [[] for _ in range(n)]
    for c in chunks:  # in batch order within each group
        groups[group_of[c.file_id]].append(c)
    return [g for g in groups if g]


def concurrent_commits(token: str, chunks: Sequence[RawChunk], parts: int) -> list[tuple[str, list[RawChunk]]]:
    """(token, chunks) of each of the at most `parts` commits one batch of chunks is written in."""
    groups = split_by_file(chunks, parts)
    return list(zip(split_tokens(token, len(groups)), groups, strict=True))


# ---- the commit --------------------------------------------------------------------------------------------
class Step(IntEnum):
    """The commit order: a step never follows a later one."""

    ROWS = 1  # claude_raw_traces (through raw_chunks), session_events
    DEAD_LETTERS = 2  # what could not become a row, and the rows ClickHouse refused
    CHECKPOINTS = 3  # file_checkpoints: where ClickHouse holds each file up to


class CommitOrderError(RuntimeError):
    """A programming error: a commit that would break the order or repeat a token."""


class Target(Protocol):
    """Where a commit inserts. Raises ClickHouseRejected for content ClickHouse refuses (bisected here);
    anything else (ClickHouseUnavailable) propagates to the caller's retry loop."""

    def insert(self, table: str, rows: list[Row], column_names: list[str],
               settings: dict[str, Any] | None = None) -> None: ...


class Commit:
    """One batch's inserts into ClickHouse, in the commit order, each under its derived token.

    Use one Commit per attempt; a retry makes a new one from the same batch token and gets the same tokens."""

    def __init__(self, target: Target, token: str | None) -> None:
        self.target = target
        self.token = token
        self._step = Step.ROWS
        self._tables: set[str] = set()

    def insert(self, step: Step, table: str, rows: Sequence[Row], columns: Sequence[str],
               settings: Mapping[str, Any] | None = None,
               log_rejected: bool = True) -> tuple[int, list[tuple[Row, str]]]:
        """Insert rows in one batch; if ClickHouse rejects it for its content, bisect to the offending rows.
        Returns (rows stored, [(rejected row, reason)])."""
        if step < self._step:
            raise CommitOrderError(f"{step.name} after {self._step.name}: the commit order is rows, dead "
                                   "letters, checkpoints")
        if table in self._tables:
            raise CommitOrderError(f"{table} twice in one commit: the second insert would repeat the token")
        self._step = step
        self._tables.add(table)
        stored, rejected = insert_bisecting(self.target, table, rows, list(columns),
                                            table_token(self.token, table), settings)
        if rejected and log_rejected:
            log.error("%d of %d rows for %s rejected by ClickHouse; the rest is stored", len(rejected), len(rows),
                      table)
        return stored, rejected


def insert_bisecting(target: Target, table: str, rows: Sequence[Row], columns: list[str], token: str | None,
                     settings: Mapping[str, Any] | None = None) -> tuple[int, list[tuple[Row, str]]]:
    """One insert of rows under token; rejected for its content, it is cut in halves (bisect_token) down to
    the rows ClickHouse refuses, so one bad row never blocks the rest. Returns (stored, [(row, reason)])."""
    rejected: list[tuple[Row, str]] = []

    def attempt(lo: int, hi: int, tok: str | None) -> int:
        opts = dict(settings or {})
        if tok is not None:
            opts["insert_deduplication_token"] = tok
        try:
            target.insert(table, list(rows[lo:hi]), columns, settings=opts)
            return hi - lo
        except ClickHouseRejected as exc:
            if hi - lo == 1:
                rejected.append((rows[lo], str(exc)[:REASON_LIMIT]))
                return 0
            log.warning("ClickHouse rejected %d rows for %s (%s): bisecting", hi - lo, table, str(exc)[:300])
        mid = (lo + hi) // 2
        return attempt(lo, mid, bisect_token(token, lo, mid)) + attempt(mid, hi, bisect_token(token, mid, hi))

    return (attempt(0, len(rows), token) if rows else 0), rejected
