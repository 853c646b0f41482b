"""Which raw topic a chunk goes to, where the sink runs beside the tailer (the embedded stack).

A backfill fills `raw-events` with hundreds of MB; a line of a session being written now must not queue
behind them. So chunks of live reads go to a topic of their own, `raw-live`, drained by a sink agent of its
own (agents/sink.py). Two topics give no order between them, and the order of one file's chunks matters:
each insert also writes the file's checkpoint (its end offset), and after a restart of a broker that forgets,
the edge reads on from the checkpoint. Chunk N inserted before chunk N-1, then a crash, would skip N-1.

The rule, owned here: **a file's chunks in flight (produced, not yet inserted) are all on one topic.** A
file switches lanes only when nothing of it is in flight; until then it stays where its chunks are.

Pure and in memory: the tailer asks `choose` before it sends and calls `produced`; the sink calls
`inserted` after a batch's commits succeeded. A restart empties it, which is safe: after a restart the edge
reads every file again from what ClickHouse holds, so whatever lands first starts at the checkpoint.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Lane(enum.Enum):
    HISTORY = "history"  # raw-events
    LIVE = "live"  # raw-live


class RawLanes:
    def __init__(self) -> None:
        self._in_flight: dict[str, tuple[Lane, int]] = {}  # path -> (its lane, chunks produced not inserted)

    def choose(self, path: str, live: bool) -> Lane:
        """The lane of the next chunk of `path`: the lane its chunks in flight are on, else the read's own."""
        current = self._in_flight.get(path)
        if current is not None:
            return current[0]
        return Lane.LIVE if live else Lane.HISTORY

    def produced(self, path: str, lane: Lane) -> None:
        current = self._in_flight.get(path)
        if current is not None and current[0] is not lane:
            raise ValueError(f"{path} has chunks in flight on {current[0].value}: its next one cannot go on "
                             f"{lane.value}")
        self._in_flight[path] = (lane, (current[1] if current else 0) + 1)

    def inserted(self, paths: Iterable[str]) -> None:
        """One chunk of each path (a path once per chunk) is in ClickHouse with its checkpoint."""
        for path in paths:
            current = self._in_flight.get(path)
            if current is None:
                continue  # produced before a restart, or by another edge
            if current[1] <= 1:
                del self._in_flight[path]
            else:
                self._in_flight[path] = (current[0], current[1] - 1)

    def in_flight(self, path: str) -> int:
        current = self._in_flight.get(path)
        return current[1] if current else 0

    def __len__(self) -> int:
        return len(self._in_flight)
