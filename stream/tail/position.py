"""Pure: the one owner of where every transcript file is read from, and of the tailer's per-file memory.

:class:`Positions` holds, per path,

* the stored cursors (``Cursor.to_dict()``), a ``MutableMapping`` injected: the Faust table ``file_offsets``
  in production (written only through :meth:`Positions.store`, which the tailer calls from agent context
  after the broker acknowledged the chunk), a plain dict in unit tests;
* the restart checkpoints loaded from ClickHouse at start (:class:`~stream.tail.cursor.Checkpoint`): each
  leaves at the file's first read, or at the first scan if its file is gone;
* the followed view (:class:`Followed`) that the stat poll works from, bounded: files leave it after their
  final read, when idle, deleted or missing;
* the requests in flight (``queued``) and the subagent ids already looked up per main file (``agents_seen``,
  kept while the main file is followed).

and makes every decision about them: where a read starts (:data:`ReadFrom`, after Vector's file source), what
a read step amounts to (:class:`Step`: adopt a checkpoint, produce, nothing), whether a file is followed after
a read (by :attr:`RequestReason.passive`), what a scan (:class:`Scan`) and the poll (:class:`Poll`) make of a
file's stat, forgetting, and what the status page shows. Truncation and recreation stay in
``stream.tail.cursor.decide``; the I/O (reading, producing, stat calls) stays with the tailer.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from stream.contract.tail_request import RequestReason
from stream.tail.cursor import Action, Checkpoint, Cursor, FileStat


@dataclass(frozen=True, slots=True)
class FromCursor:
    """Read on from the stored cursor (decide() still checks the file is the same one)."""

    cursor: Cursor


@dataclass(frozen=True, slots=True)
class FromCheckpoint:
    """No stored cursor, but ClickHouse holds the file up to this checkpoint (after a restart)."""

    checkpoint: Checkpoint


@dataclass(frozen=True, slots=True)
class FromBeginning:
    """Never seen: read from byte 0."""


ReadFrom = FromCursor | FromCheckpoint | FromBeginning


def read_args(start: ReadFrom) -> tuple[Cursor | None, Checkpoint | None]:
    """``(cursor, checkpoint)`` for ``stream.tail.filereader.read_step``."""
    match start:
        case FromCursor(cursor):
            return cursor, None
        case FromCheckpoint(checkpoint):
            return None, checkpoint
    return None, None


class Step(enum.Enum):
    """What one read step amounts to."""

    ADOPT = "adopt"  # ClickHouse already holds the file up to here: store the cursor, send nothing
    PRODUCE = "produce"  # send the chunk, then (after the broker's ack) store the cursor
    NOTHING = "nothing"  # nothing new: send and store nothing


def step_after_read(start: ReadFrom, action: Action | None, new: Cursor, has_output: bool) -> Step:
    """`start`: where the step read from; `action`, `new`: what read_step said; `has_output`: it found records
    or bad lines. A first read always produces (its chunk announces the file), unless it only confirms a
    checkpoint."""
    match start:
        case FromCheckpoint(ck):
            if action is Action.CONTINUE and new.offset == ck.offset and not has_output:
                return Step.ADOPT
            return Step.PRODUCE
        case FromCursor(old):
            if has_output or new.offset != old.offset or new.incarnation != old.incarnation:
                return Step.PRODUCE
            return Step.NOTHING
    return Step.PRODUCE


HISTORY_REASONS = frozenset({RequestReason.SCAN, RequestReason.ADOPT, RequestReason.CONTINUE})


def is_live(reason: RequestReason) -> bool:
    """Which lane a request takes: history (scans, adopts, continues of a long read), or live (a hook,
    inotify, the poll, a quiet tail, a subagent named by a live line). The live lane has its own topic and
    agent, so a line appended now never waits behind a backfill's thousands of queued files."""
    return reason not in HISTORY_REASONS


class Scan(enum.Enum):
    """What a scan of the roots makes of one file it found."""

    UNCHANGED = "unchanged"  # nothing new to read: no request
    ADOPT = "adopt"  # complete per its ClickHouse checkpoint: an adopt request turns it into a cursor
    READ = "read"  # changed or unknown: a scan request


class Poll(enum.Enum):
    """What the stat poll makes of one followed file."""

    GONE = "gone"  # stat failed: request a read, which notices and forgets it
    CHANGED = "changed"  # size or mtime moved: request a read
    QUIET_TAIL = "quiet-tail"  # an unterminated last line went quiet: request a read once per size
    IDLE = "idle"  # unchanged for idle_seconds: forgotten (scans and inotify bring it back)
    NOTHING = "nothing"


@dataclass(slots=True)
class Followed:
    """In-memory view of a followed file, for the poller. Bounded: idle and ended files leave it."""

    session_id: str
    agent_id: str | None
    size: int
    mtime: float
    offset: int
    last_change: float  # clock time the file last grew
    ended: bool = False
    tail_requested: bool = False  # a quiet-tail request was sent for the current size


class Positions:
    """Where every file is read from; see the module docstring. `checkpoints` is taken as is (not copied):
    it is the runtime's dict, emptied here as files are read or found gone."""

    def __init__(self, stored: MutableMapping[str, Any], checkpoints: dict[str, Checkpoint] | None = None, *,
                 quiet_seconds: float, idle_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stored = stored
        self.checkpoints: dict[str, Checkpoint] = checkpoints if checkpoints is not None else {}
        self.quiet_seconds = quiet_seconds
        self.idle_seconds = idle_seconds
        self.clock = clock
        self.followed: dict[str, Followed] = {}
        self.queued: set[str] = set()  # paths with a request in flight: don't pile up duplicates
        self.queued_live: set[str] = set()  # the same on the live lane (its own topic, never behind history)
        self.agents_seen: dict[str, set[str]] = {}
        self.first_scan_done = False

    # ---- requests ---------------------------------------------------------------------------------
    def should_send(self, path: str, *, final: bool = False, live: bool = False) -> bool:
        """A request for `path` is about to be sent on its lane (`live`: hooks, inotify, the poll; else
        history: scans, adopts, continues): False if one is already in flight on that lane (a final one is
        always sent: it must take the unterminated tail and end with forgetting). Marks it in flight. A live
        request is never held back by a history one: that one may wait behind thousands of others."""
        queued = self.queued_live if live else self.queued
        if path in queued and not final:
            return False
        queued.add(path)
        return True

    def received(self, path: str, *, live: bool = False) -> None:
        """The tailer took a request for `path` off its lane's topic."""
        (self.queued_live if live else self.queued).discard(path)

    # ---- reading ------------------------------------------------------------------------------------
    def start(self, path: str) -> ReadFrom:
        """Where the read of `path` starts. The stored cursor wins over a checkpoint; the checkpoint leaves
        either way, so it never outlives the file's first read."""
        checkpoint = self.checkpoints.pop(path, None)
        stored = self.stored.get(path)
        if stored:
            return FromCursor(Cursor.from_dict(stored))
        if checkpoint is not None:
            return FromCheckpoint(checkpoint)
        return FromBeginning()

    def cursor(self, path: str) -> Cursor | None:
        """The stored cursor of `path`, if any."""
        stored = self.stored.get(path)
        return Cursor.from_dict(stored) if stored else None

    def store(self, path: str, cursor: Cursor) -> None:
        """Write the cursor (for PRODUCE: only once the broker acknowledged the chunk)."""
        self.stored[path] = cursor.to_dict()

    @staticmethod
    def follows(step: Step, already_followed: bool, reason: RequestReason) -> bool:
        """Is the file followed after a read step? Yes if it produced, was followed already, or the request
        was not passive (a hook, a quiet tail)."""
        return step is Step.PRODUCE or already_followed or not reason.passive

    def note_read(self, path: str, session_id: str, agent_id: str | None, cursor: Cursor, *, step: Step,
                  reason: RequestReason, final: bool) -> bool:
        """Update the followed view after one read step; returns whether the file is followed."""
        f = self.followed.get(path)
        if not self.follows(step, f is not None, reason):
            return False
        now = self.clock()
        if f is None:
            self.followed[path] = Followed(session_id, agent_id, cursor.size, cursor.mtime, cursor.offset, now,
                                           ended=final)
            return True
        if cursor.size != f.size or cursor.mtime != f.mtime:
            f.last_change = now
            f.tail_requested = False
        f.size, f.mtime, f.offset = cursor.size, cursor.mtime, cursor.offset
        f.ended = f.ended or final
        return True

    def read_done(self, path: str, *, final: bool) -> None:
        """A request's reads are over. After a final one (the session ended, the file is drained) the file
        leaves memory; its stored cursor stays."""
        if final:
            self.forget(path)

    def forget(self, path: str) -> None:
        """Drop a file's in-memory state; its stored cursor stays (RocksDB), so a later request continues
        where it stopped."""
        self.followed.pop(path, None)
        self.agents_seen.pop(path, None)

    # ---- subagents ------------------------------------------------------------------------------------
    def agents_to_look_up(self, path: str, ids: Iterable[str]) -> list[str]:
        """Of the subagent ids a main file's lines named, those not found yet, in order; an id is a file
        name part, never a path."""
        seen = self.agents_seen.get(path, set())
        return sorted(a for a in set(ids) - seen if "/" not in a and a not in (".", ".."))

    def agent_found(self, path: str, agent: str) -> None:
        """`agent`'s file was found and requested: not looked up again while `path` is followed."""
        self.agents_seen.setdefault(path, set()).add(agent)

    # ---- finding work -------------------------------------------------------------------------------
    def scan_verdict(self, path: str, st: FileStat | None) -> Scan:
        """What a scan does with `path` (`st` None: it vanished since it was listed). Known from the
        followed view first, then the stored cursor, then a ClickHouse checkpoint."""
        if st is None:
            return Scan.UNCHANGED
        f = self.followed.get(path)
        if f is not None:
            same = f.size == st.size and f.mtime == st.mtime and f.offset >= st.size
            return Scan.UNCHANGED if same else Scan.READ
        c = self.cursor(path)
        if c is not None:
            same = c.size == st.size and c.offset >= st.size and c.ino == st.ino
            return Scan.UNCHANGED if same else Scan.READ
        ckpt = self.checkpoints.get(path)
        return Scan.ADOPT if ckpt is not None and ckpt.offset == st.size else Scan.READ

    def scan_finished(self, on_disk: Iterable[str]) -> None:
        """After the first full scan the checkpoints of files that no longer exist leave (the others left or
        leave with their file's first read, adopt requests being in flight for the complete ones)."""
        if self.first_scan_done:
            return
        self.first_scan_done = True
        present = set(on_disk)
        for gone in [p for p in self.checkpoints if p not in present]:
            del self.checkpoints[gone]

    def poll_file(self, path: str, st: FileStat | None, now_wall: float) -> Poll:
        """The poll's decision for a followed file (`st` None: stat failed; `now_wall`: time.time()).
        A QUIET_TAIL is given once per size; IDLE forgets the file."""
        f = self.followed.get(path)
        if f is None:
            return Poll.NOTHING
        if st is None:
            return Poll.GONE
        if st.size != f.size or st.mtime != f.mtime:
            return Poll.CHANGED
        if f.offset < st.size and not f.tail_requested and now_wall - st.mtime >= self.quiet_seconds:
            f.tail_requested = True
            return Poll.QUIET_TAIL
        if self.clock() - f.last_change > self.idle_seconds:
            self.forget(path)
            return Poll.IDLE
        return Poll.NOTHING

    # ---- status -------------------------------------------------------------------------------------
    def lagging(self) -> list[dict[str, Any]]:
        """Followed files whose cursor is behind their size (an unterminated tail waits here too)."""
        return [{"path": p, "offset": f.offset, "size": f.size, "session_id": f.session_id}
                for p, f in self.followed.items() if f.offset < f.size]

    def agent_refs(self) -> int:
        return sum(len(v) for v in self.agents_seen.values())

    def status(self) -> dict[str, Any]:
        """The tailer's part of the status page; each count returns to its baseline once sessions end."""
        return {"followed_files": len(self.followed), "lagging_files": self.lagging(),
                "queued_requests": len(self.queued) + len(self.queued_live), "pending_checkpoints": len(self.checkpoints),
                "agent_refs": self.agent_refs()}


def largest_first(sizes: Iterable[tuple[str, int]]) -> list[str]:
    """The order a scan sends its reads in: the largest file first (ties by path), so a 300 MB session is
    read beside the thousands of small files instead of after them, and the backfill does not end with one
    file read alone."""
    return [path for path, _ in sorted(sizes, key=lambda ps: (-ps[1], ps[0]))]
