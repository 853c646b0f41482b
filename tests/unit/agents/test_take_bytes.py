"""agents/take_bytes.py's budget: a raw batch is full at max_bytes or max_events, whichever comes first, and
goes over max_bytes by its last event at most (the Faust mechanics around it run in tests/integration/
test_sink.py, on a real worker)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from agents.take_bytes import BatchBudget, value_size


def batches(sizes: list[int], max_events: int, max_bytes: int) -> list[list[int]]:
    """The batches a stream of events of `sizes` is cut into (the last one partial, as the window yields it)."""
    budget = BatchBudget(max_events, max_bytes)
    out: list[list[int]] = [[]]
    for n in sizes:
        out[-1].append(n)
        if budget.add(n):
            out.append([])
            budget.reset()
    return [b for b in out if b]


def test_full_by_bytes_before_the_count() -> None:
    assert batches([300, 300, 300, 300, 10], max_events=200, max_bytes=500) == [[300, 300], [300, 300], [10]]


def test_full_by_count_when_the_events_are_small() -> None:
    assert batches([1] * 7, max_events=3, max_bytes=1_000_000) == [[1, 1, 1], [1, 1, 1], [1]]


def test_an_event_larger_than_the_budget_is_a_batch_of_its_own() -> None:
    assert batches([10, 5_000, 10], max_events=100, max_bytes=100) == [[10, 5_000], [10]]


def test_random_streams_keep_every_event_in_order_and_each_batch_within_one_event_of_the_budget() -> None:
    rng = random.Random(13)
    for _ in range(300):
        sizes = [rng.choice((1, 50, 500, 5_000, 524_288)) for _ in range(rng.randint(1, 80))]
        max_events, max_bytes = rng.randint(1, 20), rng.randint(1, 2_000_000)
        got = batches(sizes, max_events, max_bytes)
        assert [n for b in got for n in b] == sizes
        for b in got[:-1]:  # every batch but the last was cut by the budget, and not one event later
            assert len(b) == max_events or sum(b) >= max_bytes
            assert len(b) < max_events and sum(b[:-1]) < max_bytes or len(b) == max_events
        assert all(len(b) <= max_events and sum(b[:-1]) < max_bytes for b in got)


def test_an_empty_budget_is_refused() -> None:
    with pytest.raises(ValueError):
        BatchBudget(0, 10)
    with pytest.raises(ValueError):
        BatchBudget(10, 0)


def test_value_size_is_the_messages_value_in_bytes() -> None:
    assert value_size(SimpleNamespace(value=b"abc")) == 3
    assert value_size(SimpleNamespace(value=None)) == 0
