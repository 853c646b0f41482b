"""stream/store/commit.py: the sink's tokens and commit order, against a recording target (no server).

The real ClickHouse path (tokens dropping a replay, bisection of a poisoned batch) is covered by
tests/integration/test_clickhouse_writer.py and test_sink.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from stream.contract.dead_letter import DeadLetter
from stream.contract.raw_chunk import RawChunk, Record
from stream.contract.session_event import SessionEvent
from stream.store.client import ClickHouseRejected, ClickHouseUnavailable
from stream.store.commit import (
    Commit,
    CommitOrderError,
    Step,
    batch_token,
    bisect_token,
    chunk_identity,
    concurrent_commits,
    dead_letter_identity,
    split_by_file,
    split_tokens,
    table_token,
)
from stream.store.extraction import RAW_CHUNK_COLUMNS
from stream.store.writer import DeadLetterRow, RawChunkRow, SessionEventRow, TraceWriter

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class Recording:
    """A commit target that records every insert (table, token, rows) and refuses what it is told to:
    rows whose text holds `poison` (ClickHouseRejected: content; dead_letters takes them, as a String column
    does), or every insert into `down_on` (ClickHouseUnavailable: the server)."""

    def __init__(self, poison: bytes | None = None, down_on: str | None = None) -> None:
        self.poison = poison
        self.down_on = down_on
        self.inserts: list[tuple[str, str | None, int]] = []  # attempted: table, token, rows
        self.stored: dict[str, list[tuple[Any, ...]]] = {}

    def insert(self, table: str, rows: list[tuple[Any, ...]], column_names: list[str],
               settings: dict[str, Any] | None = None) -> None:
        assert all(len(r) == len(column_names) for r in rows)
        token = (settings or {}).get("insert_deduplication_token")
        self.inserts.append((table, token, len(rows)))
        if table == self.down_on:
            raise ClickHouseUnavailable("connection refused")
        if self.poison is not None and table != "dead_letters" and any(self.poison in repr(r).encode() for r in rows):
            raise ClickHouseRejected("Code: 117. poisoned row")
        self.stored.setdefault(table, []).extend(rows)

    def tokens(self) -> list[str | None]:
        return [tok for _, tok, _ in self.inserts]

    def query_rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        raise AssertionError("not used here")


def records(n: int, poison_at: int = -1) -> list[Record]:
    out, off = [], 0
    for i in range(n):
        raw = b'{"type":"user","uuid":"%s"}' % (b"POISON" if i == poison_at else b"u%d" % i)
        out.append(Record(off, i + 1, raw))
        off += len(raw) + 1
    return out


def chunk(fid: str = "f1", recs: list[Record] | None = None, dead: list[DeadLetter] | None = None,
          start: int = 0) -> RawChunk:
    recs = records(3) if recs is None else recs
    recs = [Record(r.offset + start, r.line_no, r.raw) for r in recs]
    end = recs[-1].offset + len(recs[-1].raw) + 1 if recs else start
    return RawChunk.from_records("h", "u", f"/p/{fid}.jsonl", fid, 0, "fp", "s", None, recs, end,
                                 recs[-1].line_no if recs else 0, dead_letters=dead or [])


# ---- the batch token -------------------------------------------------------------------------------------------
def test_a_redelivered_batch_gets_the_same_token() -> None:
    chunks = [chunk("a"), chunk("b"), chunk("a", start=100)]
    ids = [chunk_identity(c) for c in chunks]
    first = batch_token("raw", [(0, 10), (0, 11), (1, 4)], ids)
    # the same events again, after a crash before the offset commit (in whatever order they come)
    assert batch_token("raw", [(1, 4), (0, 11), (0, 10)], ids) == first
    # decoded again from the wire: the identities do not depend on how the chunk was made
    decoded = [RawChunk.decode(c.encode()) for c in chunks]
    assert batch_token("raw", [(0, 10), (0, 11), (1, 4)], [chunk_identity(c) for c in decoded]) == first


def test_the_same_offsets_with_other_content_get_another_token() -> None:
    """A fresh in-memory broker numbers partitions from 0 again: offsets repeat with other chunks, and a token
    of offsets alone made ClickHouse drop the new rows as a repeat (rows were lost that way)."""
    positions = [(0, 0), (0, 1)]
    before = batch_token("raw", positions, [chunk_identity(chunk("a")), chunk_identity(chunk("b"))])
    after_restart = batch_token("raw", positions, [chunk_identity(chunk("a", start=500)),
                                                   chunk_identity(chunk("b"))])
    assert after_restart != before
    assert batch_token("raw", positions, [chunk_identity(chunk("c")), chunk_identity(chunk("b"))]) != before
    # and the other way round: other offsets, or another topic, with the same content
    ids = [chunk_identity(chunk("a")), chunk_identity(chunk("b"))]
    assert batch_token("raw", [(0, 2), (0, 3)], ids) != before
    assert batch_token("raw", [(1, 0), (1, 1)], ids) != before
    assert batch_token("sessions", positions, ids) != before
    # identities are separated: ("ab", "c") is not ("a", "bc")
    assert batch_token("t", positions, ["ab", "c"]) != batch_token("t", positions, ["a", "bc"])


def test_identities() -> None:
    assert chunk_identity(chunk("f9", start=40)) == "f9/0/40-" + str(chunk("f9", start=40).end_offset)
    assert chunk_identity(chunk("f9", recs=[], start=77)) == "f9/0/77-77"  # bad lines only: its cursor
    d = DeadLetter("h", "/p", "f1", 2, 10, 3, 5, "not_json", b"x", 1.0)
    assert dead_letter_identity(d) == "f1/2/10/not_json"


# ---- split, table and bisect tokens ----------------------------------------------------------------------------
def test_split_tokens_are_deterministic_and_distinct() -> None:
    assert split_tokens("T", 1) == ["T"]  # not cut: the batch's own token
    assert split_tokens("T", 3) == ["T/0of3", "T/1of3", "T/2of3"] == split_tokens("T", 3)
    assert len(set(split_tokens("T", 3)) | set(split_tokens("T", 2))) == 5
    assert table_token("T", "dead_letters") == "T:dead_letters" and table_token(None, "x") is None
    assert bisect_token("T:raw_chunks", 0, 2) == "T:raw_chunks:0-2" and bisect_token(None, 0, 1) is None


def test_split_by_file_keeps_a_files_chunks_together_in_order_and_balances_rows() -> None:
    def recs(n: int, start: int = 0) -> list[Record]:
        return [Record(start + 10 * i, i + 1, b"{}") for i in range(n)]

    a1, a2 = chunk("a", recs(50)), chunk("a", recs(50, 500))
    b, c, d = chunk("b", recs(60)), chunk("c", recs(30)), chunk("d", recs(5))
    groups = split_by_file([a1, b, a2, c, d], 2)
    assert sorted(map(len, groups)) == [2, 3]
    where = {id(x): i for i, g in enumerate(groups) for x in g}
    assert where[id(a1)] == where[id(a2)]
    ga = groups[where[id(a1)]]
    assert ga.index(a1) < ga.index(a2)
    sizes = sorted(sum(x.record_count() for x in g) for g in groups)
    assert sizes == [95, 100]  # a (100) alone; b, c, d (95) together
    assert split_by_file([a1, a2], 2) == [[a1, a2]]  # one file: one insert
    assert split_by_file([a1, b], 1) == [[a1, b]]
    assert split_by_file([a1, b, c, d], 2) == split_by_file([a1, b, c, d], 2)  # the same batch, the same split


def test_concurrent_commits_cut_a_batch_the_same_way_every_time() -> None:
    batch = [chunk("a"), chunk("b"), chunk("c"), chunk("a", start=100)]
    cut = concurrent_commits("T", batch, 2)
    assert [tok for tok, _ in cut] == ["T/0of2", "T/1of2"]
    assert sorted(len(g) for _, g in cut) == [2, 2]
    assert concurrent_commits("T", [RawChunk.decode(c.encode()) for c in batch], 2) == cut  # a re-delivery
    assert concurrent_commits("T", batch[:1], 2) == [("T", batch[:1])]  # one file: not cut, the batch's token


def test_bisection_finds_the_poisoned_rows_with_deterministic_distinct_tokens() -> None:
    rows = [(f"r{i}",) for i in range(8)]
    poisoned = [(r[0] + ("POISON" if i in (2, 5) else ""),) for i, r in enumerate(rows)]
    runs = []
    for _ in range(2):  # a replay bisects identically, so its tokens drop every piece already stored
        rec = Recording(poison=b"POISON")
        stored, rejected = Commit(rec, "T").insert(Step.ROWS, "t", poisoned, ["c"])
        assert stored == 6
        assert [row for row, _ in rejected] == [poisoned[2], poisoned[5]]
        assert all("poisoned row" in reason for _, reason in rejected)
        assert sorted(r for rows_ in rec.stored.values() for r in rows_) == sorted(
            p for i, p in enumerate(poisoned) if i not in (2, 5))
        runs.append(rec.tokens())
    assert runs[0] == runs[1]
    stored_tokens = runs[0]
    assert stored_tokens[0] == "T:t" and "T:t:0-4" in stored_tokens and "T:t:2-3" in stored_tokens
    assert len(set(stored_tokens)) == len(stored_tokens)  # no piece shares a token with another


def test_without_a_token_nothing_carries_one() -> None:
    rec = Recording(poison=b"POISON")
    Commit(rec, None).insert(Step.ROWS, "t", [("a",), ("POISON",)], ["c"])
    assert rec.tokens() == [None, None, None]


# ---- the commit order ------------------------------------------------------------------------------------------
def test_the_commit_order_is_kept() -> None:
    commit = Commit(Recording(), "T")
    commit.insert(Step.ROWS, "raw_chunks", [("x",)], ["c"])
    commit.insert(Step.ROWS, "claude_raw_traces", [("x",)], ["c"])  # the same step: fine
    commit.insert(Step.CHECKPOINTS, "file_checkpoints", [("x",)], ["c"])  # a step may be empty, or skipped
    with pytest.raises(CommitOrderError, match="DEAD_LETTERS after CHECKPOINTS"):
        commit.insert(Step.DEAD_LETTERS, "dead_letters", [("x",)], ["c"])
    again = Commit(Recording(), "T")
    again.insert(Step.ROWS, "t", [("x",)], ["c"])
    with pytest.raises(CommitOrderError, match="twice"):  # its token would drop the second insert
        again.insert(Step.ROWS, "t", [("y",)], ["c"])


def test_write_chunks_commits_rows_then_dead_letters_then_checkpoints() -> None:
    dead = DeadLetter("h", "/p/b.jsonl", "b", 0, 999, 9, 3, "not_json", b"{x", 1.0)
    batch = [chunk("a"), chunk("b", dead=[dead]), chunk("c", recs=[])]
    rec = Recording()
    assert TraceWriter(rec, clock=lambda: NOW).write_chunks(batch, "T") == 6  # type: ignore[arg-type]
    assert rec.inserts == [("raw_chunks", "T:raw_chunks", 2),  # the chunk of bad lines only has no row
                           ("dead_letters", "T:dead_letters", 1),
                           ("file_checkpoints", "T:file_checkpoints", 3)]
    assert all(isinstance(r, RawChunkRow) for r in rec.stored["raw_chunks"])
    assert list(RawChunkRow._fields) == RAW_CHUNK_COLUMNS  # the columns of the raw_chunks table, in order
    (row,) = [r for r in rec.stored["raw_chunks"] if r.file_id == "a"]
    assert row.message == batch[0].headed_body() and row.offsets == batch[0].offsets


def test_a_failure_in_a_later_step_leaves_the_earlier_tokens_unchanged_on_retry() -> None:
    """ClickHouse goes away between the rows and the checkpoints: the sink retries the whole commit, and the
    retry's tokens for what was stored are the same ones, so ClickHouse drops it instead of storing it twice."""
    dead = DeadLetter("h", "/p/b.jsonl", "b", 0, 999, 9, 3, "not_json", b"{x", 1.0)
    batch = [chunk("a", recs=records(4, poison_at=2)), chunk("b", dead=[dead])]
    for fast in (True, False):
        rec = Recording(poison=b"POISON", down_on="file_checkpoints")
        writer = TraceWriter(rec, clock=lambda: NOW, extract_in_clickhouse=fast)  # type: ignore[arg-type]
        with pytest.raises(ClickHouseUnavailable):
            writer.write_chunks(batch, "T")
        first = rec.tokens()
        tables = [t for t, _, _ in rec.inserts]
        assert tables[-1] == "file_checkpoints" and tables.index("dead_letters") > max(
            i for i, t in enumerate(tables) if t in ("raw_chunks", "claude_raw_traces"))
        rec.down_on = None  # ClickHouse is back
        rec.inserts.clear()
        assert writer.write_chunks(batch, "T") == 6  # 7 lines, the poisoned one in dead_letters
        assert rec.tokens()[:len(first)] == first  # every earlier step under the same tokens, in the same order
        assert rec.tokens() == first  # and the checkpoints' too, now stored
        assert all(isinstance(r, DeadLetterRow) for r in rec.stored["dead_letters"])
        reasons = [r.reason for r in rec.stored["dead_letters"]]
        assert sorted(reasons)[0] == "not_json" and any("rejected by ClickHouse" in r for r in reasons)


def test_the_fast_path_refusal_goes_the_python_way_under_its_own_token() -> None:
    rec = Recording(poison=b"POISON")
    batch = [chunk("a"), chunk("b", recs=records(3, poison_at=1))]
    assert TraceWriter(rec, clock=lambda: NOW).write_chunks(batch, "T") == 5  # type: ignore[arg-type]
    assert [(t, tok) for t, tok, _ in rec.inserts] == [
        ("raw_chunks", "T:raw_chunks"),  # refused whole (chunk b holds the poison)
        ("raw_chunks", "T:raw_chunks:0-1"), ("raw_chunks", "T:raw_chunks:1-2"),  # bisected: a lands, b refused
        ("claude_raw_traces", "T:claude_raw_traces"),  # b row by row: refused, bisected
        ("claude_raw_traces", "T:claude_raw_traces:0-1"), ("claude_raw_traces", "T:claude_raw_traces:1-3"),
        ("claude_raw_traces", "T:claude_raw_traces:1-2"), ("claude_raw_traces", "T:claude_raw_traces:2-3"),
        ("dead_letters", "T:dead_letters"), ("file_checkpoints", "T:file_checkpoints")]


def test_session_events_commit_rows_then_their_dead_letters() -> None:
    events = [SessionEvent(f"e{i}", "SessionStart", "s", "/p", "/", "h", "u", 1.0,
                           {"x": "POISON" if i == 1 else "ok"}) for i in range(3)]
    rec = Recording(poison=b"POISON")
    assert TraceWriter(rec, clock=lambda: NOW).write_session_events(events, "E") == 2  # type: ignore[arg-type]
    assert [t for t, _, _ in rec.inserts][-1] == "dead_letters"
    assert rec.tokens()[0] == "E:session_events" and rec.tokens()[-1] == "E:dead_letters"
    (d,) = rec.stored["dead_letters"]
    assert isinstance(d, DeadLetterRow) and isinstance(rec.stored["session_events"][0], SessionEventRow)
    assert d.file_id == "event:e1" and d.reason.startswith("session event rejected by ClickHouse")
