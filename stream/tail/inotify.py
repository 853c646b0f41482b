"""Linux inotify for the tailer, read on the event loop: no thread, no timer.

watchfiles (the portable watcher, kept for other systems) runs its Rust watcher in a thread that wakes every
`step` (50 ms) and takes the GIL to check for a stop: 20 wakeups a second were ~0.2 % of a core on an idle
stack, and a change waited one to two steps plus the debounce before its read was asked for. Here the
inotify descriptor is registered with the event loop (`loop.add_reader`), so nothing runs until the kernel
has an event, and a write is seen at once.

What it reports (`Change`): a file under a watched tree was written, created, moved in, or deleted / moved
out. Directories are watched recursively; a directory created (or moved in) later is watched when its event
arrives, and the files it already holds are reported as changed, since they may have been written before
the watch existed. A queue overflow (the kernel dropped events) is reported too: the caller rescans.
Decoding (`decode`) is pure and tested on bytes; `Inotify` does the system calls.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import errno
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# <sys/inotify.h>
IN_MODIFY = 0x00000002
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000

# IN_MODIFY, not IN_CLOSE_WRITE: an append is seen as it lands, and once
WATCH_MASK = IN_MODIFY | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_ONLYDIR
_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then `len` bytes of name
READ_SIZE = 64 * 1024


class Kind(enum.Enum):
    CHANGED = "changed"  # written, created or moved in: ask for a read
    # in a directory moved in under the roots (a restore, a sync from another machine): written elsewhere,
    # so history, not a live session; read on the history lane
    ARRIVED = "arrived"
    DELETED = "deleted"  # removed or moved out: forget it
    OVERFLOW = "overflow"  # the kernel dropped events: rescan


@dataclass(frozen=True)
class Change:
    kind: Kind
    path: str = ""


@dataclass(frozen=True)
class RawEvent:
    wd: int
    mask: int
    name: str


def decode(buf: bytes) -> Iterator[RawEvent]:
    """The events in one read of the inotify descriptor (the kernel returns whole events only)."""
    offset = 0
    while offset + _HEADER.size <= len(buf):
        wd, mask, _cookie, length = _HEADER.unpack_from(buf, offset)
        offset += _HEADER.size
        name = buf[offset:offset + length].split(b"\0", 1)[0]
        offset += length
        yield RawEvent(wd, mask, os.fsdecode(name))


class InotifyUnavailable(OSError):
    """No inotify here (not Linux), or the kernel refused a watch (the per-user limit): poll instead."""


def _libc() -> ctypes.CDLL:
    name = ctypes.util.find_library("c")
    if name is None:
        raise InotifyUnavailable("no C library found")
    libc = ctypes.CDLL(name, use_errno=True)
    if not hasattr(libc, "inotify_init1"):
        raise InotifyUnavailable("this system has no inotify")
    return libc


class Inotify:
    """One inotify descriptor watching directory trees. `fd` is non-blocking: `read_changes` returns [] when
    nothing is pending, so it is called when the event loop says the descriptor is readable."""

    def __init__(self) -> None:
        self._libc = _libc()
        fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise InotifyUnavailable(err, f"inotify_init1: {os.strerror(err)}")
        self.fd: int = fd
        self._dirs: dict[int, str] = {}  # watch descriptor -> directory

    @property
    def watched(self) -> list[str]:
        return sorted(self._dirs.values())

    def add_tree(self, root: str | Path) -> list[str]:
        """Watch `root` and every directory under it; the files found in them (for a directory that appeared
        after its parent was watched, these may hold lines written before its watch existed)."""
        files: list[str] = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            self._add(dirpath)
            files.extend(os.path.join(dirpath, f) for f in filenames)
            dirnames.sort()
        return files

    def _add(self, directory: str) -> None:
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(directory), WATCH_MASK)
        if wd < 0:
            err = ctypes.get_errno()
            if err in (errno.ENOENT, errno.ENOTDIR):  # gone again before we got to it: nothing to watch
                return
            # ENOSPC is the per-user watch limit (fs.inotify.max_user_watches)
            raise InotifyUnavailable(err, f"cannot watch {directory}: {os.strerror(err)}")
        self._dirs[wd] = directory

    def read_changes(self) -> list[Change]:
        """What changed since the last call, each path once, in order of first mention."""
        changes: dict[tuple[Kind, str], None] = {}
        while True:
            try:
                buf = os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                break
            if not buf:
                break
            for ev in decode(buf):
                for change in self._interpret(ev):
                    changes[(change.kind, change.path)] = None
        return [Change(kind, path) for kind, path in changes]

    def _interpret(self, ev: RawEvent) -> list[Change]:
        if ev.mask & IN_Q_OVERFLOW:
            return [Change(Kind.OVERFLOW)]
        if ev.mask & IN_IGNORED:  # the watch is gone (its directory was removed)
            self._dirs.pop(ev.wd, None)
            return []
        directory = self._dirs.get(ev.wd)
        if directory is None or not ev.name:  # an event of a removed watch, or of the directory itself
            return []
        path = os.path.join(directory, ev.name)
        if ev.mask & IN_ISDIR:
            if ev.mask & IN_MOVED_TO:
                return [Change(Kind.ARRIVED, f) for f in self.add_tree(path)]
            if ev.mask & IN_CREATE:
                return [Change(Kind.CHANGED, f) for f in self.add_tree(path)]
            return []
        if ev.mask & (IN_DELETE | IN_MOVED_FROM):
            return [Change(Kind.DELETED, path)]
        return [Change(Kind.CHANGED, path)]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
            self._dirs.clear()

    def __enter__(self) -> Inotify:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
