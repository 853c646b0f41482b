"""Pure file cursors: where the tailer is in a file, and whether the file is still the one it was reading.

A transcript path is only a name. Between two reads the file at that name may have grown (the normal
case), been truncated in place, or been deleted/renamed away and created anew. Reading on from a stale
offset would skip or garble lines, so every read starts with :func:`decide`.

Identity, as in Vector's ``file`` source (its checksum fingerprinter) and Filebeat's registry:

* ``(dev, ino)`` tells a different file at the same name, but inode numbers are reused at once on most file
  systems (delete + create often yields the same inode), so it is not enough on its own;
* a fingerprint of the file's head (its first ``FINGERPRINT_BYTES`` bytes) tells a file rewritten from
  scratch: transcripts are append-only, so the head never changes while the file is the same. The first
  line carries a uuid and a timestamp, so two transcripts practically never share a head.
* A file shorter than 1 KiB is fingerprinted over what it had (``"<len>:<sha1>"``) and later compared over
  that same length, so appends never look like a new file; once the head is known to still match, the
  fingerprint is upgraded to the longer head (Vector does the same with its ``lines``/``bytes`` checksum
  once enough data exists), which makes later checks stronger.
* ``size < offset`` on the same inode is a truncation (``>`` redirection, an editor saving in place).
* A file truncated and written again *past* the cursor between two reads keeps its inode, its size is no
  longer below the offset, and its head may be unchanged (a truncation to a point after the first KiB).
  Reading on would start in the middle of some new line. So the cursor also keeps an ``anchor``: a digest
  of the up to ``ANCHOR_BYTES`` bytes just before its offset. If those bytes changed, the file was rewritten
  under the cursor (TRUNCATED). Together, head and anchor cover every consumed byte of a file up to 2 KiB
  and the start and end of the consumed part of a larger one; what they cannot see (a rewrite of only the
  middle of a large file with identical bytes around the cursor) no append-only writer produces.
  A restart checkpoint has no anchor: it is checked by its head fingerprint and size only.

mtime is not used to decide anything: it can go backwards (restored backups, ``touch -d``, clock steps) and
proves nothing about content.

Each truncation or recreation bumps the ``incarnation``: records are identified by
``(file id, incarnation, byte offset)``, so the new content never collides with rows of the old one.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import asdict, dataclass
from typing import Any

FINGERPRINT_BYTES = 1024
ANCHOR_BYTES = 1024  # bytes just before the cursor's offset that must not change while the file is the same


def fingerprint(head: bytes) -> str:
    """Fingerprint of a file's first min(len, FINGERPRINT_BYTES) bytes: ``"<len>:<sha1hex[:16]>"``."""
    head = head[:FINGERPRINT_BYTES]
    return f"{len(head)}:{hashlib.sha1(head).hexdigest()[:16]}"


def anchor_of(before_offset: bytes) -> str:
    """Digest of the (up to ANCHOR_BYTES) bytes that end at a cursor's offset, in the fingerprint format."""
    tail = before_offset[-ANCHOR_BYTES:] if before_offset else b""
    return f"{len(tail)}:{hashlib.sha1(tail).hexdigest()[:16]}"


def fingerprint_length(fp: str) -> int:
    """The number of head bytes a fingerprint was taken over (-1 if it is malformed)."""
    n, sep, _ = fp.partition(":")
    try:
        return int(n) if sep else -1
    except ValueError:
        return -1


def head_matches(fp: str, head: bytes) -> bool:
    """Does `head` start with the bytes `fp` was taken over? Compared over fp's own length."""
    n = fingerprint_length(fp)
    return 0 <= n <= len(head) and fingerprint(head[:n]) == fp


@dataclass(slots=True)
class Cursor:
    path: str
    dev: int
    ino: int
    fingerprint: str
    incarnation: int
    offset: int  # next unread byte
    line_no: int  # lines consumed so far (the next line is line_no + 1, unless tail_taken)
    size: int  # file size when last looked at
    mtime: float
    tail_taken: bool = False  # the last consumed line had no newline yet (taken because quiet/final)
    anchor: str = ""  # anchor_of(the bytes before offset); "" = unknown (fresh, or from a checkpoint)

    def anchor_length(self) -> int:
        """How many bytes before the offset the anchor covers (0 if there is none)."""
        return max(0, fingerprint_length(self.anchor)) if self.anchor else 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cursor:
        return cls(path=str(d["path"]), dev=int(d["dev"]), ino=int(d["ino"]), fingerprint=str(d["fingerprint"]),
                   incarnation=int(d["incarnation"]), offset=int(d["offset"]), line_no=int(d["line_no"]),
                   size=int(d["size"]), mtime=float(d["mtime"]), tail_taken=bool(d.get("tail_taken", False)),
                   anchor=str(d.get("anchor", "")))


@dataclass(slots=True)
class Checkpoint:
    """What ClickHouse knows about a file after a restart (the broker and the Faust tables may be gone)."""

    path: str
    incarnation: int
    fingerprint: str
    offset: int
    line_no: int


@dataclass(slots=True)
class FileStat:
    dev: int
    ino: int
    size: int
    mtime: float


class Action(enum.Enum):
    START = "start"  # never seen: read from the beginning
    CONTINUE = "continue"  # same file: read on from the cursor
    TRUNCATED = "truncated"  # same inode, shorter than the cursor: read again from 0, new incarnation
    RECREATED = "recreated"  # another file at the path (inode or head changed): from 0, new incarnation
    # (TRUNCATED also covers a file rewritten under the cursor: same inode and head, other bytes before it)


def _upgrade(fp: str, head: bytes) -> str:
    """A fingerprint taken over a short head becomes the longer head's, once the old one still matches."""
    if fingerprint_length(fp) < min(len(head), FINGERPRINT_BYTES):
        return fingerprint(head)
    return fp


def decide(cursor: Cursor | None, st: FileStat, head: bytes, checkpoint: Checkpoint | None = None, *,
           path: str = "", before_offset: bytes | None = None) -> tuple[Action, Cursor]:
    """What to do with the file at a path, given the stored cursor (or a restart checkpoint), its stat and
    its head bytes; returns the action and the cursor to read from (size and mtime taken from `st`).

    `before_offset`: the file's bytes just before the cursor's offset (``cursor.anchor_length()`` of them),
    when the cursor has an anchor; None skips that check.
    """
    head = head[:FINGERPRINT_BYTES]

    def fresh(incarnation: int, p: str) -> Cursor:
        return Cursor(p, st.dev, st.ino, fingerprint(head), incarnation, 0, 0, st.size, st.mtime)

    if cursor is None:
        if checkpoint is None:
            return Action.START, fresh(0, path)
        p = path or checkpoint.path
        if not head_matches(checkpoint.fingerprint, head):
            return Action.RECREATED, fresh(checkpoint.incarnation + 1, p)
        if checkpoint.offset > st.size:
            return Action.TRUNCATED, fresh(checkpoint.incarnation + 1, p)
        return Action.CONTINUE, Cursor(p, st.dev, st.ino, _upgrade(checkpoint.fingerprint, head),
                                       checkpoint.incarnation, checkpoint.offset, checkpoint.line_no,
                                       st.size, st.mtime)
    p = path or cursor.path
    if st.dev != cursor.dev or st.ino != cursor.ino:
        return Action.RECREATED, fresh(cursor.incarnation + 1, p)
    # size before head: a file emptied in place is a truncation, though its (now empty) head differs too
    if st.size < cursor.offset:
        return Action.TRUNCATED, fresh(cursor.incarnation + 1, p)
    if not head_matches(cursor.fingerprint, head):
        return Action.RECREATED, fresh(cursor.incarnation + 1, p)
    if cursor.anchor and before_offset is not None and anchor_of(before_offset) != cursor.anchor:
        return Action.TRUNCATED, fresh(cursor.incarnation + 1, p)
    return Action.CONTINUE, Cursor(p, st.dev, st.ino, _upgrade(cursor.fingerprint, head), cursor.incarnation,
                                   cursor.offset, cursor.line_no, st.size, st.mtime, cursor.tail_taken,
                                   cursor.anchor)
