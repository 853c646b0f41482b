"""The hook's local spool: events that could not reach Redis wait here, rejected payloads are kept for a human.

Layout of ``settings.spool_dir``::

    events.jsonl        events waiting for Redis, one SessionEvent JSON per line (appended by hooks)
    draining.jsonl      the batch a drainer took (renamed from events.jsonl), sent from ``draining.offset``
    draining.offset     byte offset in draining.jsonl up to which Redis has confirmed the events
    append.lock         held (flock) by an appender while it writes and by a drainer while it renames
    drain.lock          held by the one drainer at work; others skip instead of waiting
    rejects.jsonl       payloads the hook refused, with the reason (never sent anywhere)

Why this shape: several hooks run at once (all handlers of an event run in parallel), so an append is one
``write`` on an ``O_APPEND`` descriptor under a lock, and a drainer never reads a file a writer still holds:
it renames ``events.jsonl`` away under the same lock, so new appends start a fresh file. A drainer killed half
way leaves ``draining.jsonl`` and its offset behind; the next drainer resumes there. Events re-sent after such a
crash are not duplicated in the stream because the sender adds each event id once (see ``stream.capture.hook``).

Standard library only: the hook imports this module on every Claude Code event.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

EVENTS = "events.jsonl"
DRAINING = "draining.jsonl"
OFFSET = "draining.offset"
APPEND_LOCK = "append.lock"
DRAIN_LOCK = "drain.lock"
REJECTS = "rejects.jsonl"

DRAIN_BATCH = 200  # events per round trip to Redis

# send(list of event JSON strings) stores them all or raises; it is called with at most DRAIN_BATCH events
Sender = Callable[[list[str]], object]


def _ensure_dir(spool_dir: Path) -> None:
    spool_dir.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def _flock(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive flock on ``path``; yields False (and holds nothing) if non-blocking and busy."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock


def _append_line(path: Path, line: bytes, lock: Path) -> None:
    with _flock(lock):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)  # one write of the whole line: concurrent appends never interleave
        finally:
            os.close(fd)


def append_event(spool_dir: Path, event_json: str) -> None:
    """Spool one event (a JSON object without newlines) for a later drain."""
    _ensure_dir(spool_dir)
    _append_line(spool_dir / EVENTS, event_json.encode() + b"\n", spool_dir / APPEND_LOCK)


def append_reject(spool_dir: Path, reason: str, raw: bytes, received_at: float | None = None) -> None:
    """Record a payload the hook refused: the reason and the bytes it got (as text, lossily)."""
    _ensure_dir(spool_dir)
    entry = {
        "received_at": received_at if received_at is not None else time.time(),
        "reason": reason,
        "raw": raw[:65536].decode("utf-8", "replace"),
    }
    line = json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    _append_line(spool_dir / REJECTS, line, spool_dir / APPEND_LOCK)


def _read_offset(spool_dir: Path) -> int:
    try:
        return int((spool_dir / OFFSET).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _write_offset(spool_dir: Path, offset: int) -> None:
    tmp = spool_dir / (OFFSET + ".tmp")
    tmp.write_text(str(offset))
    os.replace(tmp, spool_dir / OFFSET)


def _count_lines(path: Path, start: int = 0) -> int:
    try:
        with path.open("rb") as fh:
            fh.seek(start)
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    except OSError:
        return 0


def pending_count(spool_dir: Path) -> int:
    """Events waiting in the spool (not yet confirmed by Redis)."""
    return _count_lines(spool_dir / EVENTS) + _count_lines(spool_dir / DRAINING, _read_offset(spool_dir))


def reject_count(spool_dir: Path) -> int:
    return _count_lines(spool_dir / REJECTS)


def has_pending(spool_dir: Path) -> bool:
    """Cheap check (two stats) the hook makes before deciding to drain."""
    return (spool_dir / EVENTS).exists() or (spool_dir / DRAINING).exists()


def read_events(path: Path, start: int = 0) -> list[tuple[int, str]]:
    """(end offset, line) for each complete line from ``start``; a torn tail without newline is left out."""
    try:
        with path.open("rb") as fh:
            fh.seek(start)
            data = fh.read()
    except FileNotFoundError:
        return []
    out: list[tuple[int, str]] = []
    pos = 0
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        out.append((start + nl + 1, data[pos:nl].decode("utf-8", "replace")))
        pos = nl + 1
    return out


def _valid_event_line(line: str) -> str | None:
    """The reason a spooled line cannot be sent, or None when it is a JSON object with an event id."""
    try:
        obj = json.loads(line)
    except ValueError:
        return "spooled line is not JSON"
    if not isinstance(obj, dict) or not obj.get("event_id"):
        return "spooled line is not an event with an event_id"
    return None


def drain(spool_dir: Path, send: Sender, *, limit: int | None = None) -> int:
    """Send spooled events with ``send`` in batches; returns how many were confirmed.

    Only one drainer works at a time; a second one returns 0 at once instead of waiting. ``send`` raising
    stops the drain; what was confirmed stays confirmed, the rest waits for the next drain. ``limit`` bounds
    the work of one call (the hook drains a little, the bridge drains everything).
    """
    if not has_pending(spool_dir):
        return 0
    sent = 0
    with _flock(spool_dir / DRAIN_LOCK, blocking=False) as got:
        if not got:
            return 0
        while limit is None or sent < limit:
            draining = spool_dir / DRAINING
            if not draining.exists():
                with _flock(spool_dir / APPEND_LOCK):
                    try:
                        os.replace(spool_dir / EVENTS, draining)
                    except FileNotFoundError:
                        return sent  # nothing new arrived
                _write_offset(spool_dir, 0)
            offset = _read_offset(spool_dir)
            lines = read_events(draining, offset)
            if limit is not None:
                lines = lines[: limit - sent]
            for i in range(0, len(lines), DRAIN_BATCH):
                batch = lines[i : i + DRAIN_BATCH]
                good: list[str] = []
                for _end, line in batch:
                    reason = _valid_event_line(line)
                    if reason is None:
                        good.append(line)
                    else:
                        append_reject(spool_dir, reason, line.encode())
                if good:
                    send(good)  # raises on failure: the offset below is not advanced
                sent += len(good)
                _write_offset(spool_dir, batch[-1][0])
            if read_events(draining, _read_offset(spool_dir)):
                continue  # limit reached with lines left: the loop condition ends the call
            # all complete lines confirmed; a torn tail (a writer died mid-write) is kept as a reject
            tail = draining.read_bytes()[_read_offset(spool_dir):]
            if tail:
                append_reject(spool_dir, "torn line in spool", tail)
            draining.unlink()
            (spool_dir / OFFSET).unlink(missing_ok=True)
    return sent
