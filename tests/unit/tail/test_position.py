"""Every decision of stream.tail.position (the one owner of where files are read from), without servers.

Stored cursors are a plain dict here (the Faust table in production); reads that need a file go through the
real read_step on files in tmp_path, so the decisions are checked against what the reader really returns.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from stream.contract.tail_request import RequestReason, TailRequest
from stream.tail.cursor import Action, Checkpoint, Cursor, FileStat, fingerprint
from stream.tail.filereader import ReadResult, read_step
from stream.tail.position import (
    Followed,
    FromBeginning,
    FromCheckpoint,
    FromCursor,
    Poll,
    Positions,
    ReadFrom,
    Scan,
    Step,
    read_args,
    step_after_read,
)

QUIET = 5.0
IDLE = 60.0


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def positions(stored: dict | None = None, checkpoints: dict | None = None, clock: Clock | None = None
              ) -> Positions:
    return Positions({} if stored is None else stored, checkpoints, quiet_seconds=QUIET, idle_seconds=IDLE,
                     clock=clock or Clock())


def cursor(path: str = "/r/a.jsonl", *, offset: int = 100, size: int = 100, ino: int = 7, incarnation: int = 0,
           mtime: float = 50.0) -> Cursor:
    return Cursor(path, 1, ino, "10:abc", incarnation, offset, 3, size, mtime)


def lines(n: int, start: int = 0) -> bytes:
    return b"".join(json.dumps({"n": i, "pad": "x" * 40}).encode() + b"\n" for i in range(start, start + n))


def read(path: Path, start: ReadFrom, *, final: bool = False) -> ReadResult:
    c, ck = read_args(start)
    return read_step(str(path), c, checkpoint=ck, final=final, now=time.time(), quiet_seconds=QUIET,
                     max_line_bytes=1 << 20, read_bytes=1 << 20)


def stat_of(path: Path) -> FileStat:
    st = os.stat(path)
    return FileStat(st.st_dev, st.st_ino, st.st_size, st.st_mtime)


# ---- where a read starts ---------------------------------------------------------------------------------

def test_start_from_the_beginning_when_nothing_is_known() -> None:
    assert positions().start("/r/a.jsonl") == FromBeginning()
    assert read_args(FromBeginning()) == (None, None)


def test_start_from_the_stored_cursor() -> None:
    c = cursor()
    p = positions({"/r/a.jsonl": c.to_dict()})
    assert p.start("/r/a.jsonl") == FromCursor(c)
    assert read_args(FromCursor(c)) == (c, None)


def test_start_from_a_checkpoint_which_leaves_at_once() -> None:
    ck = Checkpoint("/r/a.jsonl", 2, "10:abc", 500, 9)
    p = positions(checkpoints={"/r/a.jsonl": ck, "/r/b.jsonl": Checkpoint("/r/b.jsonl", 0, "1:x", 1, 1)})
    assert p.start("/r/a.jsonl") == FromCheckpoint(ck)
    assert read_args(FromCheckpoint(ck)) == (None, ck)
    assert set(p.checkpoints) == {"/r/b.jsonl"}  # never outlives the file's first read
    assert p.start("/r/a.jsonl") == FromBeginning()


def test_the_stored_cursor_wins_over_a_checkpoint_and_the_checkpoint_still_leaves() -> None:
    c = cursor()
    ck = Checkpoint("/r/a.jsonl", 0, "10:abc", 40, 1)
    p = positions({"/r/a.jsonl": c.to_dict()}, {"/r/a.jsonl": ck})
    assert p.start("/r/a.jsonl") == FromCursor(c)
    assert p.checkpoints == {}


def test_checkpoints_are_the_runtimes_dict_not_a_copy() -> None:
    shared: dict[str, Checkpoint] = {"/r/a.jsonl": Checkpoint("/r/a.jsonl", 0, "1:x", 1, 1)}
    p = positions(checkpoints=shared)
    p.start("/r/a.jsonl")
    assert shared == {}  # the status page counts rt.checkpoints: it must see the same emptying


# ---- what a read step amounts to ----------------------------------------------------------------------

def test_a_complete_file_adopts_its_checkpoint_without_producing(tmp_path: Path) -> None:
    f = tmp_path / "s.jsonl"
    f.write_bytes(lines(5))
    head = f.read_bytes()
    ck = Checkpoint(str(f), 3, fingerprint(head), len(head), 5)
    p = positions(checkpoints={str(f): ck})
    start = p.start(str(f))
    res = read(f, start)
    assert res.cursor is not None and res.action is Action.CONTINUE and not res.records
    assert step_after_read(start, res.action, res.cursor, bool(res.records or res.bad)) is Step.ADOPT
    p.store(str(f), res.cursor)
    assert p.cursor(str(f)) == res.cursor and res.cursor.incarnation == 3 and res.cursor.offset == len(head)
    assert p.start(str(f)) == FromCursor(res.cursor)


def test_a_file_grown_past_its_checkpoint_produces_only_the_new_lines(tmp_path: Path) -> None:
    f = tmp_path / "s.jsonl"
    f.write_bytes(lines(5))
    old = f.read_bytes()
    f.write_bytes(old + lines(2, 5))
    start = FromCheckpoint(Checkpoint(str(f), 1, fingerprint(old), len(old), 5))
    res = read(f, start)
    assert res.cursor is not None and [r.offset for r in res.records][0] == len(old) and len(res.records) == 2
    assert step_after_read(start, res.action, res.cursor, True) is Step.PRODUCE
    assert res.cursor.incarnation == 1


def test_a_file_recreated_since_its_checkpoint_is_read_again(tmp_path: Path) -> None:
    f = tmp_path / "s.jsonl"
    f.write_bytes(lines(5, 100))
    start = FromCheckpoint(Checkpoint(str(f), 1, fingerprint(lines(5)), len(lines(5)), 5))
    res = read(f, start)
    assert res.cursor is not None and res.action is Action.RECREATED and res.cursor.incarnation == 2
    assert len(res.records) == 5
    assert step_after_read(start, res.action, res.cursor, True) is Step.PRODUCE


def test_a_checkpoint_at_the_same_offset_but_a_new_head_is_not_adopted(tmp_path: Path) -> None:
    # same size, other content: decide() says RECREATED, so the offset matching must not adopt it
    f = tmp_path / "s.jsonl"
    f.write_bytes(lines(5, 100))
    n = f.stat().st_size
    start = FromCheckpoint(Checkpoint(str(f), 0, "10:0000000000000000", n, 5))
    res = read(f, start)
    assert res.cursor is not None and res.action is Action.RECREATED
    assert step_after_read(start, res.action, res.cursor, bool(res.records)) is Step.PRODUCE
    # and the decision alone, with nothing read: only CONTINUE at the checkpoint's offset adopts
    ck = Checkpoint("/r/a.jsonl", 0, "10:abc", 100, 3)
    assert step_after_read(FromCheckpoint(ck), Action.CONTINUE, cursor(offset=100), False) is Step.ADOPT
    assert step_after_read(FromCheckpoint(ck), Action.RECREATED, cursor(offset=100), False) is Step.PRODUCE
    assert step_after_read(FromCheckpoint(ck), Action.CONTINUE, cursor(offset=100), True) is Step.PRODUCE
    assert step_after_read(FromCheckpoint(ck), Action.CONTINUE, cursor(offset=160), False) is Step.PRODUCE


def test_a_first_read_always_produces_even_an_empty_file(tmp_path: Path) -> None:
    f = tmp_path / "s.jsonl"
    f.write_bytes(b"")
    res = read(f, FromBeginning())
    assert res.cursor is not None and res.action is Action.START and not res.records
    assert step_after_read(FromBeginning(), res.action, res.cursor, False) is Step.PRODUCE


def test_a_read_from_the_cursor_produces_only_when_something_moved() -> None:
    old = cursor(offset=100)
    assert step_after_read(FromCursor(old), Action.CONTINUE, cursor(offset=100, size=120), False) is Step.NOTHING
    assert step_after_read(FromCursor(old), Action.CONTINUE, cursor(offset=120), False) is Step.PRODUCE
    assert step_after_read(FromCursor(old), Action.CONTINUE, cursor(offset=100), True) is Step.PRODUCE
    assert step_after_read(FromCursor(old), Action.TRUNCATED, cursor(offset=100, incarnation=1),
                           False) is Step.PRODUCE


@pytest.mark.parametrize("damage", ["truncate", "recreate"])
def test_truncation_and_recreation_are_decided_by_the_cursor_and_produce(tmp_path: Path, damage: str) -> None:
    f = tmp_path / "s.jsonl"
    f.write_bytes(lines(6))
    p = positions()
    start = p.start(str(f))
    res = read(f, start)
    assert res.cursor is not None
    p.store(str(f), res.cursor)
    if damage == "truncate":
        os.truncate(f, 0)
        f.write_bytes(lines(1, 50))
    else:
        f.unlink()  # the inode may be reused at once: longer new content keeps this a recreation
        f.write_bytes(lines(8, 50))
    start = p.start(str(f))
    assert start == FromCursor(res.cursor)
    again = read(f, start)
    assert again.cursor is not None
    assert again.action is (Action.TRUNCATED if damage == "truncate" else Action.RECREATED)
    assert again.cursor.incarnation == 1 and again.records and again.records[0].offset == 0
    assert step_after_read(start, again.action, again.cursor, True) is Step.PRODUCE


# ---- followed or not after a read ---------------------------------------------------------------------

def test_which_reasons_are_passive_is_stated_once_on_the_enum() -> None:
    assert {r for r in RequestReason if r.passive} == {
        RequestReason.INOTIFY, RequestReason.SCAN, RequestReason.ADOPT, RequestReason.CONTINUE,
        RequestReason.POLL, RequestReason.AGENT_REF}
    assert {r for r in RequestReason if not r.passive} == {RequestReason.HOOK, RequestReason.QUIET_TAIL}


@pytest.mark.parametrize("reason", list(RequestReason))
def test_a_read_that_finds_nothing_follows_the_file_only_for_an_active_reason(reason: RequestReason) -> None:
    p = positions()
    followed = p.note_read("/r/a.jsonl", "s", None, cursor(), step=Step.NOTHING, reason=reason, final=False)
    assert followed is (not reason.passive)
    assert ("/r/a.jsonl" in p.followed) is (not reason.passive)
    # an adopt confirms a checkpoint and sends nothing: it follows nothing either unless the reason is active
    p2 = positions()
    p2.note_read("/r/a.jsonl", "s", None, cursor(), step=Step.ADOPT, reason=reason, final=False)
    assert ("/r/a.jsonl" in p2.followed) is (not reason.passive)


@pytest.mark.parametrize("reason", list(RequestReason))
def test_a_read_that_produced_follows_the_file_whatever_the_reason(reason: RequestReason) -> None:
    p = positions()
    assert p.note_read("/r/a.jsonl", "s", "ag", cursor(offset=80, size=100), step=Step.PRODUCE,
                       reason=reason, final=False)
    assert p.followed["/r/a.jsonl"] == Followed("s", "ag", 100, 50.0, 80, 1000.0)


def test_a_followed_file_stays_followed_and_its_view_is_updated() -> None:
    clock = Clock()
    p = positions(clock=clock)
    p.note_read("/r/a.jsonl", "s", None, cursor(offset=100, size=100), step=Step.PRODUCE,
                reason=RequestReason.HOOK, final=False)
    p.followed["/r/a.jsonl"].tail_requested = True
    clock.t += 10
    # same size and mtime: last_change and the quiet-tail mark stay
    assert p.note_read("/r/a.jsonl", "s", None, cursor(), step=Step.NOTHING, reason=RequestReason.INOTIFY,
                       final=False)
    f = p.followed["/r/a.jsonl"]
    assert f.last_change == 1000.0 and f.tail_requested
    # grown: the view moves, the file counts as changed now and may get a quiet-tail request again
    p.note_read("/r/a.jsonl", "s", None, cursor(offset=150, size=160, mtime=51.0), step=Step.PRODUCE,
                reason=RequestReason.POLL, final=True)
    assert (f.size, f.mtime, f.offset, f.last_change, f.tail_requested, f.ended) == (160, 51.0, 150, 1010.0,
                                                                                    False, True)
    # ended stays ended
    p.note_read("/r/a.jsonl", "s", None, cursor(offset=160, size=160, mtime=51.0), step=Step.PRODUCE,
                reason=RequestReason.POLL, final=False)
    assert f.ended


def test_a_final_read_forgets_the_file_but_keeps_its_cursor() -> None:
    stored: dict = {}
    p = positions(stored)
    c = cursor()
    p.store("/r/a.jsonl", c)
    p.note_read("/r/a.jsonl", "s", None, c, step=Step.PRODUCE, reason=RequestReason.HOOK, final=True)
    p.agent_found("/r/a.jsonl", "x1")
    p.read_done("/r/a.jsonl", final=False)
    assert "/r/a.jsonl" in p.followed and p.agent_refs() == 1
    p.read_done("/r/a.jsonl", final=True)
    assert p.followed == {} and p.agents_seen == {}
    assert stored == {"/r/a.jsonl": c.to_dict()} and p.start("/r/a.jsonl") == FromCursor(c)


# ---- requests in flight ----------------------------------------------------------------------------

def test_a_request_in_flight_is_not_sent_twice_unless_final() -> None:
    p = positions()
    assert p.should_send("/r/a.jsonl")
    assert not p.should_send("/r/a.jsonl")
    assert p.should_send("/r/a.jsonl", final=True)  # the SessionEnd read must happen
    assert p.queued == {"/r/a.jsonl"}
    p.received("/r/a.jsonl")
    assert p.queued == set()
    assert p.should_send("/r/a.jsonl")


# ---- subagents -------------------------------------------------------------------------------------

def test_agent_ids_are_looked_up_until_found_and_never_as_paths() -> None:
    p = positions()
    ids = ["b2", "a1", "../x", "a/b", ".", "..", "a1"]
    assert p.agents_to_look_up("/r/m.jsonl", ids) == ["a1", "b2"]
    p.agent_found("/r/m.jsonl", "a1")
    assert p.agents_to_look_up("/r/m.jsonl", ids) == ["b2"]  # b2's file not found yet: looked up again
    assert p.agents_to_look_up("/r/other.jsonl", ids) == ["a1", "b2"]
    assert p.agent_refs() == 1


# ---- scans ---------------------------------------------------------------------------------------------

def test_scan_of_a_vanished_file_does_nothing() -> None:
    assert positions().scan_verdict("/r/a.jsonl", None) is Scan.UNCHANGED


def test_scan_judges_a_followed_file_by_the_followed_view() -> None:
    p = positions()
    p.note_read("/r/a.jsonl", "s", None, cursor(offset=100, size=100, mtime=50.0), step=Step.PRODUCE,
                reason=RequestReason.HOOK, final=False)
    assert p.scan_verdict("/r/a.jsonl", FileStat(1, 7, 100, 50.0)) is Scan.UNCHANGED
    assert p.scan_verdict("/r/a.jsonl", FileStat(1, 7, 120, 50.0)) is Scan.READ
    assert p.scan_verdict("/r/a.jsonl", FileStat(1, 7, 100, 51.0)) is Scan.READ
    # an unterminated tail not taken yet: still something to read
    p.note_read("/r/a.jsonl", "s", None, cursor(offset=90, size=100, mtime=50.0), step=Step.PRODUCE,
                reason=RequestReason.HOOK, final=False)
    assert p.scan_verdict("/r/a.jsonl", FileStat(1, 7, 100, 50.0)) is Scan.READ


def test_the_followed_view_is_asked_before_the_stored_cursor() -> None:
    stored = {"/r/a.jsonl": cursor(offset=100, size=100).to_dict()}
    p = positions(stored)
    assert p.scan_verdict("/r/a.jsonl", FileStat(1, 7, 100, 99.0)) is Scan.UNCHANGED  # the cursor ignores mtime
    p.note_read("/r/a.jsonl", "s", None, cursor(offset=100, size=100, mtime=50.0), step=Step.PRODUCE,
                reason=RequestReason.HOOK, final=False)
    assert p.scan_verdict("/r/a.jsonl", FileStat(1, 7, 100, 99.0)) is Scan.READ  # the view does not


def test_scan_judges_an_unfollowed_file_by_its_stored_cursor() -> None:
    p = positions({"/r/a.jsonl": cursor(offset=100, size=100, ino=7).to_dict()})
    assert p.scan_verdict("/r/a.jsonl", FileStat(1, 7, 100, 50.0)) is Scan.UNCHANGED
    assert p.scan_verdict("/r/a.jsonl", FileStat(1, 7, 130, 50.0)) is Scan.READ
    assert p.scan_verdict("/r/a.jsonl", FileStat(1, 8, 100, 50.0)) is Scan.READ  # another file, same size
    p2 = positions({"/r/a.jsonl": cursor(offset=90, size=100).to_dict()})
    assert p2.scan_verdict("/r/a.jsonl", FileStat(1, 7, 100, 50.0)) is Scan.READ


def test_scan_adopts_a_file_complete_per_its_checkpoint_and_reads_the_rest() -> None:
    ck = Checkpoint("/r/a.jsonl", 0, "10:abc", 100, 3)
    p = positions(checkpoints={"/r/a.jsonl": ck})
    assert p.scan_verdict("/r/a.jsonl", FileStat(1, 7, 100, 50.0)) is Scan.ADOPT
    assert p.scan_verdict("/r/a.jsonl", FileStat(1, 7, 140, 50.0)) is Scan.READ
    assert p.scan_verdict("/r/b.jsonl", FileStat(1, 9, 10, 50.0)) is Scan.READ  # never seen
    assert p.checkpoints == {"/r/a.jsonl": ck}  # a scan only looks: the read takes it
    # a stored cursor comes before the checkpoint
    p.store("/r/a.jsonl", cursor(offset=100, size=100))
    assert p.scan_verdict("/r/a.jsonl", FileStat(1, 7, 100, 50.0)) is Scan.UNCHANGED


def test_the_first_scan_drops_checkpoints_of_files_gone_and_only_the_first() -> None:
    cks = {p: Checkpoint(p, 0, "1:x", 1, 1) for p in ("/r/a.jsonl", "/r/gone.jsonl", "/r/b.jsonl")}
    p = positions(checkpoints=cks)
    p.scan_finished(["/r/a.jsonl", "/r/b.jsonl", "/r/new.jsonl"])
    assert set(p.checkpoints) == {"/r/a.jsonl", "/r/b.jsonl"} and p.first_scan_done
    p.checkpoints["/r/late.jsonl"] = Checkpoint("/r/late.jsonl", 0, "1:x", 1, 1)
    p.scan_finished([])
    assert set(p.checkpoints) == {"/r/a.jsonl", "/r/b.jsonl", "/r/late.jsonl"}


# ---- the poll -----------------------------------------------------------------------------------------

def followed_at(clock: Clock, *, offset: int = 100, size: int = 100, mtime: float = 50.0) -> Positions:
    p = positions(clock=clock)
    p.note_read("/r/a.jsonl", "s", "ag", cursor(offset=offset, size=size, mtime=mtime), step=Step.PRODUCE,
                reason=RequestReason.HOOK, final=False)
    return p


def test_poll_ignores_files_not_followed() -> None:
    assert positions().poll_file("/r/a.jsonl", FileStat(1, 7, 1, 1.0), 0.0) is Poll.NOTHING


def test_poll_sees_a_file_gone_or_changed() -> None:
    clock = Clock()
    p = followed_at(clock)
    assert p.poll_file("/r/a.jsonl", None, 60.0) is Poll.GONE
    assert p.poll_file("/r/a.jsonl", FileStat(1, 7, 130, 50.0), 60.0) is Poll.CHANGED
    assert p.poll_file("/r/a.jsonl", FileStat(1, 7, 100, 50.5), 60.0) is Poll.CHANGED
    assert p.poll_file("/r/a.jsonl", FileStat(1, 7, 100, 50.0), 60.0) is Poll.NOTHING
    assert "/r/a.jsonl" in p.followed  # the poll forgets only idle files; a read notices a gone one


def test_poll_asks_once_per_size_for_a_quiet_unterminated_tail() -> None:
    clock = Clock()
    p = followed_at(clock, offset=90, size=100, mtime=50.0)
    st = FileStat(1, 7, 100, 50.0)
    assert p.poll_file("/r/a.jsonl", st, 50.0 + QUIET - 0.1) is Poll.NOTHING  # not quiet yet
    assert p.poll_file("/r/a.jsonl", st, 50.0 + QUIET) is Poll.QUIET_TAIL
    assert p.poll_file("/r/a.jsonl", st, 50.0 + QUIET + 1) is Poll.NOTHING  # asked already
    # the file grew (a read noted it): a new quiet tail is asked for again
    p.note_read("/r/a.jsonl", "s", "ag", cursor(offset=150, size=170, mtime=60.0), step=Step.PRODUCE,
                reason=RequestReason.POLL, final=False)
    assert p.poll_file("/r/a.jsonl", FileStat(1, 7, 170, 60.0), 60.0 + QUIET) is Poll.QUIET_TAIL


def test_poll_forgets_an_idle_file() -> None:
    clock = Clock()
    p = followed_at(clock)
    p.agent_found("/r/a.jsonl", "x")
    st = FileStat(1, 7, 100, 50.0)
    clock.t += IDLE
    assert p.poll_file("/r/a.jsonl", st, 1e9) is Poll.NOTHING  # exactly the timeout: not yet
    clock.t += 0.5
    assert p.poll_file("/r/a.jsonl", st, 1e9) is Poll.IDLE
    assert p.followed == {} and p.agents_seen == {}
    assert p.poll_file("/r/a.jsonl", st, 1e9) is Poll.NOTHING


# ---- bounded state and the status page --------------------------------------------------------------

def test_state_returns_to_its_baseline_once_every_file_is_done(tmp_path: Path) -> None:
    """The tailer's cycle for many files (request, receive, read, note, subagent found, final read): only
    the stored cursors remain."""
    stored: dict = {}
    files = []
    for i in range(50):
        f = tmp_path / f"s{i}.jsonl"
        f.write_bytes(lines(3))
        files.append(str(f))
    cks = {str(tmp_path / "gone.jsonl"): Checkpoint(str(tmp_path / "gone.jsonl"), 0, "1:x", 1, 1)}
    p = positions(stored, cks)
    for path in files:
        assert p.scan_verdict(path, stat_of(Path(path))) is Scan.READ
        assert p.should_send(path)
    p.scan_finished(files)
    busy = p.status()
    assert (busy["queued_requests"], busy["pending_checkpoints"], busy["followed_files"]) == (50, 0, 0)
    for path in files:
        for final in (False, True):  # a SessionStart read, then the SessionEnd read
            p.received(path)
            start = p.start(path)
            res = read(Path(path), start, final=final)
            assert res.cursor is not None
            step = step_after_read(start, res.action, res.cursor, bool(res.records or res.bad))
            assert step is (Step.PRODUCE if not final else Step.NOTHING)
            if step is not Step.NOTHING:
                p.store(path, res.cursor)
                p.agent_found(path, "sub")
            p.note_read(path, "s", None, res.cursor, step=step, reason=RequestReason.HOOK, final=final)
            p.read_done(path, final=final)
            if not final:
                assert p.should_send(path, final=True)
    assert p.status() == {"followed_files": 0, "lagging_files": [], "queued_requests": 0,
                          "pending_checkpoints": 0, "agent_refs": 0}
    assert set(stored) == set(files)
    # an inotify event after the final read does not bring a file back into memory
    path = files[0]
    start = p.start(path)
    res = read(Path(path), start)
    assert res.cursor is not None
    step = step_after_read(start, res.action, res.cursor, bool(res.records))
    assert step is Step.NOTHING
    assert not p.note_read(path, "s", None, res.cursor, step=step, reason=RequestReason.INOTIFY, final=False)
    assert p.followed == {}


def test_status_shows_lagging_files() -> None:
    p = positions(checkpoints={"/r/c.jsonl": Checkpoint("/r/c.jsonl", 0, "1:x", 1, 1)})
    p.note_read("/r/a.jsonl", "s1", None, cursor("/r/a.jsonl", offset=90, size=100), step=Step.PRODUCE,
                reason=RequestReason.HOOK, final=False)
    p.note_read("/r/b.jsonl", "s2", None, cursor("/r/b.jsonl", offset=100, size=100), step=Step.PRODUCE,
                reason=RequestReason.HOOK, final=False)
    p.should_send("/r/b.jsonl")
    p.agent_found("/r/a.jsonl", "x")
    p.agent_found("/r/a.jsonl", "y")
    assert p.status() == {
        "followed_files": 2,
        "lagging_files": [{"path": "/r/a.jsonl", "offset": 90, "size": 100, "session_id": "s1"}],
        "queued_requests": 1, "pending_checkpoints": 1, "agent_refs": 2}


# ---- the request's reason on the wire (stream.contract.tail_request) -------------------------------------

@pytest.mark.parametrize("reason", [r for r in RequestReason if r is not RequestReason.HOOK])
def test_a_reason_travels_as_its_string(reason: RequestReason) -> None:
    req = TailRequest("/r/a.jsonl", "s", None, False, reason)
    assert json.loads(req.encode())["reason"] == reason.value
    assert TailRequest.decode(req.encode()) == req


def test_a_hook_reason_travels_as_the_hook_events_name() -> None:
    req = TailRequest("/r/a.jsonl", "s", "ag", True, RequestReason.HOOK, hook_event="SessionEnd")
    wire = json.loads(req.encode())
    assert wire == {"path": "/r/a.jsonl", "session_id": "s", "agent_id": "ag", "final": True,
                    "reason": "SessionEnd"}
    assert TailRequest.decode(req.encode()) == req
    bare = TailRequest("/r/a.jsonl", reason=RequestReason.HOOK)
    assert json.loads(bare.encode())["reason"] == "hook"
    assert TailRequest.decode(bare.encode()) == bare


@pytest.mark.parametrize("raw, hook_event", [("SessionStart", "SessionStart"), ("", ""),
                                             ("some-future-reason", "some-future-reason")])
def test_old_and_unknown_reasons_decode_to_the_hook_reason(raw: str, hook_event: str) -> None:
    old = json.dumps({"path": "/r/a.jsonl", "session_id": "s", "agent_id": None, "final": False,
                      "reason": raw}).encode()
    req = TailRequest.decode(old)
    assert (req.reason, req.hook_event, req.session_id) == (RequestReason.HOOK, hook_event, "s")
    assert not req.reason.passive


def test_decoding_tolerates_missing_and_extra_fields() -> None:
    req = TailRequest.decode(b'{"path": "/r/a.jsonl", "new_field": 1}')
    assert req == TailRequest("/r/a.jsonl")
    assert TailRequest.decode(b'{"path": "/r/a.jsonl", "reason": 5}').reason is RequestReason.HOOK
    assert RequestReason.parse("quiet-tail") is RequestReason.QUIET_TAIL
    assert RequestReason.parse(None) is RequestReason.HOOK


def test_a_scan_sends_the_largest_file_first() -> None:
    from stream.tail.position import largest_first

    assert largest_first([("/r/b", 10), ("/r/long", 300_000_000), ("/r/a", 10), ("/r/c", 5_000)]) == [
        "/r/long", "/r/c", "/r/a", "/r/b"]
