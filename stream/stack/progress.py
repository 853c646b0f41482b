"""Pure: import progress and backlog, from snapshots to the figures and lines people read.

``backlog`` compares the transcripts on disk with the store's file checkpoints: what is left to import
(`ccstream status`: "caught up" or "N files (X MB) behind"). ``Progress`` turns successive snapshots of
(files done, bytes done) against the totals into a rate and a time left, and ``line`` into one plain line
for a log or a non-terminal; `ccstream up` feeds it (stream/stack/import_watch.py). Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Backlog:
    files: int  # files with bytes not yet in the store
    bytes: int  # those bytes

    @property
    def caught_up(self) -> bool:
        return self.files == 0

    def text(self) -> str:
        if self.caught_up:
            return "caught up"
        return f"{self.files} file{'' if self.files == 1 else 's'} ({human_bytes(self.bytes)}) behind"


def backlog(on_disk: Mapping[str, int], checkpoints: Mapping[str, int]) -> Backlog:
    """``on_disk``: path → size; ``checkpoints``: path → bytes the store has up to. A file shorter than its
    checkpoint was truncated or recreated and will be read again from the start: all of it counts."""
    files = size = 0
    for path, n in on_disk.items():
        done = checkpoints.get(path)
        left = n if done is None or n < done else n - done
        if left > 0:
            files += 1
            size += left
    return Backlog(files, size)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover - the loop always returns


def human_seconds(s: float) -> str:
    s = max(int(round(s)), 0)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


@dataclass(slots=True)
class Progress:
    """Import progress against fixed totals; the rate is the average over the last ``window`` seconds."""

    total_files: int
    total_bytes: int
    window: float = 10.0
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (time, files done, bytes done)

    def update(self, now: float, files_done: int, bytes_done: int) -> None:
        self.samples.append((now, files_done, bytes_done))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.window:
            self.samples.pop(0)

    @property
    def files_done(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    @property
    def bytes_done(self) -> int:
        return self.samples[-1][2] if self.samples else 0

    @property
    def rate(self) -> float | None:
        """Bytes per second, None until two samples apart in time."""
        if len(self.samples) < 2:
            return None
        (t0, _, b0), (t1, _, b1) = self.samples[0], self.samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else None

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate; 0 when done, None when unknown (no rate yet, or stalled)."""
        left = max(self.total_bytes - self.bytes_done, 0)
        if left == 0:
            return 0.0
        rate = self.rate
        return left / rate if rate else None

    @property
    def done(self) -> bool:
        return self.bytes_done >= self.total_bytes and self.files_done >= self.total_files

    def line(self) -> str:
        """'importing: 12/63 files, 4.1 MB/20.3 MB (20%), 2.0 MB/s, 8s left'"""
        pct = 100 * self.bytes_done / self.total_bytes if self.total_bytes else 100.0
        rate, eta = self.rate, self.eta
        return (f"importing: {self.files_done}/{self.total_files} files, {human_bytes(self.bytes_done)}/"
                f"{human_bytes(self.total_bytes)} ({pct:.0f}%), "
                f"{human_bytes(rate) + '/s' if rate is not None else '? /s'}, "
                f"{human_seconds(eta) + ' left' if eta is not None else 'time left unknown'}")


def caught_up_line(rows: int, sessions: int, files: int, seconds: float) -> str:
    return f"caught up: {rows:,} rows, {sessions:,} sessions, {files:,} files in {seconds:.1f} s"
