"""stream/tail/raw_lane.py: a file's chunks in flight are all on one topic.

A model test: random histories of reads (live or history) of a few files, produced onto two FIFO topics,
drained by the sink in a random interleaving of batches, whose notices sometimes come again later (a sink
restarted before its commit inserts a batch again and says so again). After every batch, what ClickHouse
holds of each file must be a prefix of its chunks, in order: the checkpoint an insert writes never passes a
chunk not yet inserted. Without the rule (each chunk on its read's own lane) the same histories break it.
"""

from __future__ import annotations

import random
from collections import deque

import pytest

from stream.tail.raw_lane import Lane, RawLanes

FILES = ["a.jsonl", "b.jsonl", "c.jsonl"]


def run_history(seed: int, lanes: RawLanes, choose: object = None) -> list[str]:
    """Returns the violations seen: a file's chunk inserted while an earlier one of it was not."""
    rng = random.Random(seed)
    queues: dict[Lane, deque[tuple[str, int]]] = {Lane.HISTORY: deque(), Lane.LIVE: deque()}
    produced = dict.fromkeys(FILES, 0)
    inserted: dict[str, set[int]] = {f: set() for f in FILES}
    violations = []
    said: list[list[tuple[str, tuple[int, int]]]] = []  # every notice the sink sent
    pick = choose or lanes.choose
    for _ in range(200):
        if rng.random() < 0.55:  # a read: one or a few chunks of one file
            path = rng.choice(FILES)
            live = rng.random() < 0.4
            for _ in range(rng.randint(1, 3)):
                lane = pick(path, live)  # type: ignore[operator]
                if choose is None:
                    lanes.produced(path, lane, (0, produced[path]))
                queues[lane].append((path, produced[path]))
                produced[path] += 1
        else:  # the sink takes a batch from one topic and commits it
            lane = rng.choice(list(Lane))
            batch = [queues[lane].popleft() for _ in range(min(len(queues[lane]), rng.randint(1, 4)))]
            for path, n in batch:
                inserted[path].add(n)
            said.append([(path, (0, n)) for path, n in batch])
            lanes.inserted(said[-1])
            if rng.random() < 0.2:  # an earlier notice again
                lanes.inserted(rng.choice(said))
            for path in FILES:
                got = inserted[path]
                if got and got != set(range(max(got) + 1)):
                    violations.append(f"seed {seed}: {path} holds {sorted(got)}")
    return violations


def test_what_is_inserted_of_a_file_is_always_a_prefix() -> None:
    assert [v for seed in range(300) for v in run_history(seed, RawLanes())] == []


def test_without_the_rule_the_same_histories_break() -> None:
    broken = [v for seed in range(200) for v in run_history(
        seed, RawLanes(), choose=lambda path, live: Lane.LIVE if live else Lane.HISTORY)]
    assert broken, "the model must be able to see an out-of-order insert"


def test_a_file_changes_lane_only_when_nothing_of_it_is_in_flight() -> None:
    lanes = RawLanes()
    lanes.produced("a", lanes.choose("a", live=False), (0, 100))
    lanes.produced("a", lanes.choose("a", live=False), (0, 200))
    assert lanes.choose("a", live=True) is Lane.HISTORY and lanes.in_flight("a")
    with pytest.raises(ValueError, match="in flight on history"):
        lanes.produced("a", Lane.LIVE, (0, 300))
    lanes.inserted([("a", (0, 100))])  # the first chunk only: the second is still in flight
    assert lanes.choose("a", live=True) is Lane.HISTORY
    lanes.inserted([("a", (0, 200))])
    assert lanes.choose("a", live=True) is Lane.LIVE and len(lanes) == 0
    lanes.inserted([("never-produced", (0, 5))])  # from before a restart: ignored
    assert len(lanes) == 0


def test_a_notice_delivered_twice_does_not_clear_a_newer_chunk() -> None:
    """Fed: chunk (0, 100) produced and inserted; chunk (0, 200) produced; the first notice comes again.
    Expected: the file is still in flight on history, so its next live read follows it there."""
    lanes = RawLanes()
    lanes.produced("a", Lane.HISTORY, (0, 100))
    lanes.inserted([("a", (0, 100))])
    lanes.produced("a", Lane.HISTORY, (0, 200))
    lanes.inserted([("a", (0, 100))])
    assert lanes.choose("a", live=True) is Lane.HISTORY


def test_a_truncated_file_orders_by_incarnation_first() -> None:
    """Fed: chunk (0, 5000) in flight, then the file truncated and read again: chunk (1, 40). Expected: the
    notice of (0, 5000) does not clear (1, 40); that of (1, 40) does."""
    lanes = RawLanes()
    lanes.produced("a", Lane.HISTORY, (0, 5000))
    lanes.produced("a", Lane.HISTORY, (1, 40))
    lanes.inserted([("a", (0, 5000))])
    assert lanes.in_flight("a")
    lanes.inserted([("a", (1, 40))])
    assert not lanes.in_flight("a")
