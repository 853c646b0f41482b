"""When `up` recycles the embedded broker (stream/stack/recycle.py): the decision, and how often it asks."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.config import Settings
from stream.stack.recycle import Recycler, consumed_topics, should_recycle


@pytest.mark.parametrize(("grown", "limit", "lag", "want"), [
    (300.0, 256, 0, True),      # grown past the limit, everything committed
    (256.0, 256, 0, True),      # at the limit
    (255.9, 256, 0, False),     # under it
    (300.0, 256, 1, False),     # one message not yet committed: it would be lost
    (300.0, 256, None, False),  # the broker did not say: not zero
    (9000.0, 0, 0, False),      # 0: never
])
def test_recycle_only_over_the_limit_with_nothing_uncommitted(grown: float, limit: int, lag: int | None,
                                                              want: bool) -> None:
    assert should_recycle(grown, limit, lag) is want


def subscribed(settings: Settings) -> set[str]:
    """The topics the agents of a worker with these settings read (the app built, nothing connected)."""
    from agents.app import create_app

    app = create_app(settings)
    return {t for agent in app.agents.values() for t in agent.channel.topics}


@pytest.mark.parametrize("split", [False, True])
def test_every_topic_the_stack_consumes_is_checked_for_its_group(tmp_path: Path, split: bool) -> None:
    """Fed: the embedded stack's settings, one worker or split. Expected: each consumer group's topics are
    exactly what the agents of its worker subscribe to (a topic left out would be recycled unread)."""
    s = Settings(data_dir=tmp_path, broker_is_ephemeral=True, up_split=split, kafka_bootstrap="127.0.0.1:1")
    if split:
        want = {s.app_id: subscribed(s.with_overrides(roles=["sink"])),
                s.edge_app_id: subscribed(s.with_overrides(roles=["edge"], app_id=s.edge_app_id))}
    else:
        want = {s.app_id: subscribed(s)}
    assert {g: set(ts) for g, ts in consumed_topics(s).items()} == want
    assert s.topic_raw_live in want[s.app_id]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_recycler_asks_every_interval_and_the_lag_only_over_the_limit() -> None:
    # the broker holds 20 MB when the stack is ready; the limit is on what it grows past that
    clock, rss, lags, asked = Clock(), [20.0], [5], []

    def lag(settings: Settings, bootstrap: str) -> int | None:
        asked.append(clock.now)
        return lags[0]

    r = Recycler(Settings(broker_recycle_mb=200, broker_recycle_check_seconds=30.0), 1234, "127.0.0.1:9092",
                 clock=clock, rss=lambda pid: rss[0], lag=lag)
    clock.now = 29.0
    assert not r.due()  # not yet time
    rss[0] = 210.0
    clock.now = 30.0
    assert not r.due() and asked == []  # grown by 190, under the limit: the broker is not asked
    rss[0] = 250.0
    clock.now = 45.0
    assert not r.due()  # the next check is at 60
    clock.now = 60.0
    assert not r.due() and asked == [60.0]  # over it, 5 uncommitted
    lags[0] = 0
    clock.now = 90.0
    assert r.due() and asked == [60.0, 90.0] and r.last_rss == 250.0 and r.grown == 230.0


def test_a_fresh_broker_that_starts_over_the_limit_is_not_recycled_for_it() -> None:
    # a broker that holds 300 MB from the start (the limit set below its own topics) would otherwise
    # restart the stack every check
    clock, rss = Clock(), [300.0]
    r = Recycler(Settings(broker_recycle_mb=256, broker_recycle_check_seconds=1.0), 1, "h:1",
                 clock=clock, rss=lambda pid: rss[0], lag=lambda s, b: 0)
    clock.now = 5.0
    assert not r.due()
    rss[0] = 556.0
    clock.now = 10.0
    assert r.due()


def test_no_recycle_without_an_embedded_broker_or_when_disabled() -> None:
    clock = Clock()
    clock.now = 1000.0

    def make(mb: int, pid: int | None, bootstrap: str | None, every: float = 30.0) -> Recycler:
        sizes = iter([0.0, 1e6])  # at the start, then grown by far
        return Recycler(Settings(broker_recycle_mb=mb, broker_recycle_check_seconds=every), pid, bootstrap,
                        clock=clock, rss=lambda pid: next(sizes), lag=lambda s, b: 0)

    assert not make(1, None, None).due()  # not our broker
    assert not make(0, 1, "h:1").due()  # 0: never
    assert make(1, 1, "h:1", every=0.0).due()


def over_the_limit(clock: Clock, lags: list[int], drains: list[bool], answers: bool = True) -> Recycler:
    """A broker at 20 MB when the stack is ready and at 150 MB after (limit 100, checks every 30 s), whose
    group is `lags[0]` behind; the worker records each drain asked and answers it or not."""
    def drain(on: bool) -> bool:
        drains.append(on)
        return answers

    return Recycler(Settings(broker_recycle_mb=100, broker_recycle_check_seconds=30.0), 1, "h:1", clock=clock,
                    rss=lambda pid: 20.0 if clock.now == 0 else 150.0, lag=lambda s, b: lags[0], drain=drain)


def test_over_the_limit_with_messages_in_flight_history_is_stopped_until_the_group_catches_up() -> None:
    # a backfill keeps the group behind: the recycler asks the worker to stop history reads, then checks
    # every 2 s, and recycles once the lag is 0
    clock, lags, drains = Clock(), [7], []
    r = over_the_limit(clock, lags, drains)
    clock.now = 30.0
    assert not r.due() and drains == [True]
    clock.now = 31.0
    assert not r.due()  # the next check is 2 s later, not 30
    clock.now = 32.0
    assert not r.due() and drains == [True]  # asked once
    lags[0] = 0
    clock.now = 34.0
    assert r.due()


def test_a_drain_that_does_not_catch_up_in_time_resumes_history() -> None:
    clock, drains = Clock(), []
    r = over_the_limit(clock, [3], drains)
    clock.now = 30.0
    assert not r.due() and drains == [True]
    for t in range(32, 149, 2):
        clock.now = float(t)
        assert not r.due()
    assert drains == [True]
    clock.now = 150.0
    assert not r.due() and drains == [True, False]  # 120 s after it stopped them, history reads go on
    clock.now = 178.0
    assert not r.due() and drains == [True, False]  # back to the 30 s cadence: not checked before 180
    clock.now = 180.0
    assert not r.due() and drains == [True, False, True]  # still over the limit: it tries again


def test_a_worker_that_does_not_answer_the_drain_is_asked_again_at_the_normal_cadence() -> None:
    clock, drains = Clock(), []
    r = over_the_limit(clock, [3], drains, answers=False)
    clock.now = 30.0
    assert not r.due() and drains == [True]
    clock.now = 32.0
    assert not r.due() and drains == [True]  # not draining: the next check is at 60
    clock.now = 60.0
    assert not r.due() and drains == [True, True]
