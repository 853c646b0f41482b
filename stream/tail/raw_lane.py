"""Which raw topic a chunk goes to, where the sink runs beside the tailer (the embedded stack).

A backfill fills `raw-events` with hundreds of MB; a line of a session being written now must not queue
behind them. So chunks of live reads go to a topic of their own, `raw-live`, drained by a sink agent of its
own (agents/sink.py). Two topics give no order between them, and the order of one file's chunks matters:
each insert also writes the file's checkpoint (its end offset), and after a restart of a broker that forgets,
the edge reads on from the checkpoint. Chunk N inserted before chunk N-1, then a crash, would skip N-1.

The rule, owned here: **a file's chunks in flight (produced, not yet inserted) are all on one topic.** A
file switches lanes only when nothing of it is in flight; until then it stays where its chunks are.

Pure and in memory: the tailer asks `choose` before it sends and calls `produced` with the chunk's mark
(its incarnation and end offset); the sink reports each inserted chunk's mark, in the same process or, where
the edge and the sink are two processes (a split `up`), through ``<prefix>.raw-inserted``
(stream/contract/insert_notice.py). A file is clear once a mark at or past the last one produced of it is
inserted: a file's chunks on one topic share a partition and are inserted in order, so every earlier chunk
is in too. Marks, not counts, so a notice delivered twice (a sink restarted before its commit) cannot clear
a file whose newer chunk is still in flight. A restart empties it, which is safe: after a restart the edge
reads every file again from what ClickHouse holds, so whatever lands first starts at the checkpoint.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

Mark = tuple[int, int]  # (incarnation, end offset) of a chunk: a file's chunks in order


class Lane(enum.Enum):
    HISTORY = "history"  # raw-events
    LIVE = "live"  # raw-live


class RawLanes:
    def __init__(self) -> None:
        self._in_flight: dict[str, tuple[Lane, Mark]] = {}  # path -> (its lane, the last mark produced)

    def choose(self, path: str, live: bool) -> Lane:
        """The lane of the next chunk of `path`: the lane its chunks in flight are on, else the read's own."""
        current = self._in_flight.get(path)
        if current is not None:
            return current[0]
        return Lane.LIVE if live else Lane.HISTORY

    def produced(self, path: str, lane: Lane, mark: Mark) -> None:
        current = self._in_flight.get(path)
        if current is not None and current[0] is not lane:
            raise ValueError(f"{path} has chunks in flight on {current[0].value}: its next one cannot go on "
                             f"{lane.value}")
        self._in_flight[path] = (lane, mark)

    def inserted(self, marks: Iterable[tuple[str, Mark]]) -> None:
        """These chunks (path, mark) are in ClickHouse with their checkpoints."""
        for path, mark in marks:
            current = self._in_flight.get(path)
            if current is not None and mark >= current[1]:
                del self._in_flight[path]  # older marks: produced before a restart, or delivered twice

    def in_flight(self, path: str) -> bool:
        return path in self._in_flight

    def __len__(self) -> int:
        return len(self._in_flight)
