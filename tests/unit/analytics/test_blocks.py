"""stream/analytics/blocks.py: 5-hour windows as ccusage's identifySessionBlocks computes them."""

from __future__ import annotations

import datetime as dt

import pytest

from stream.analytics.blocks import Entry, burn_rate, floor_to_hour, identify_blocks, project, recent

T0 = dt.datetime(2024, 1, 1, 10, 0, tzinfo=dt.UTC)
LATER = T0 + dt.timedelta(days=30)  # "now" long after: nothing active


def e(minutes: float, inp: int = 1000, out: int = 500, cost: float = 0.01, model: str = "claude-sonnet-4") -> Entry:
    return Entry(T0 + dt.timedelta(minutes=minutes), model, inp, out, 0, 0, cost)


def test_no_entries_no_blocks() -> None:
    assert identify_blocks([], LATER) == []


def test_one_block_within_five_hours_sorted_and_summed() -> None:
    blocks = identify_blocks([e(120), e(0), e(60)], LATER)
    assert len(blocks) == 1
    b = blocks[0]
    assert b.start == T0 and b.end == T0 + dt.timedelta(hours=5)
    assert [x.timestamp for x in b.entries] == [T0, T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=2)]
    assert (b.total("input_tokens"), b.total("output_tokens")) == (3000, 1500)
    assert b.cost_usd == pytest.approx(0.03)
    assert not b.is_active and not b.is_gap


def test_start_floored_to_the_utc_hour() -> None:
    t = dt.datetime(2024, 1, 1, 10, 55, 30, tzinfo=dt.UTC)
    assert floor_to_hour(t) == T0
    assert identify_blocks([Entry(t)], LATER)[0].start == T0
    # an aware time in another zone floors in UTC too (ccusage floors with setUTCMinutes)
    kolkata = dt.timezone(dt.timedelta(hours=5, minutes=30))
    assert floor_to_hour(t.astimezone(kolkata)) == T0


def test_more_than_five_hours_after_the_start_opens_a_new_block() -> None:
    # 10:00, 14:30, 15:10: the third is within 5 h of the second but 5h10m after the block's start
    blocks = identify_blocks([e(0), e(270), e(310)], LATER)
    assert [len(b.entries) for b in blocks] == [2, 1]
    assert blocks[1].start == T0 + dt.timedelta(hours=5)  # 15:10 floored
    assert not any(b.is_gap for b in blocks)


def test_a_gap_longer_than_five_hours_gets_a_gap_block() -> None:
    blocks = identify_blocks([e(0), e(120), e(480)], LATER)
    assert [(b.is_gap, len(b.entries)) for b in blocks] == [(False, 2), (True, 0), (False, 1)]
    gap = blocks[1]
    assert gap.start == T0 + dt.timedelta(hours=2 + 5) and gap.end == T0 + dt.timedelta(hours=8)
    # exactly five hours apart is not a gap (ccusage: strictly longer)
    assert len(identify_blocks([e(0), e(300)], LATER)) == 1


def test_models_unique_in_order_without_synthetic() -> None:
    blocks = identify_blocks([e(0, model="claude-sonnet-4"), e(1, model="<synthetic>"), e(2, model="claude-opus-4"),
                              e(3, model="claude-sonnet-4")], LATER)
    assert blocks[0].models == ["claude-sonnet-4", "claude-opus-4"]


def test_active_block_burn_rate_and_projection() -> None:
    now = T0 + dt.timedelta(hours=1)
    entries = [Entry(T0, "m", 1000, 500, 200, 300, 0.01), Entry(T0 + dt.timedelta(minutes=1), "m", 2000, 1000,
                                                                 0, 0, 0.02)]
    (b,) = identify_blocks(entries, now)
    assert b.is_active
    rate = burn_rate(b)
    assert rate is not None
    assert rate.tokens_per_minute == pytest.approx(5000)  # all four kinds over the 1 minute between entries
    assert rate.indicator_tokens_per_minute == pytest.approx(4500)  # input + output only
    assert rate.cost_per_hour == pytest.approx(1.8)
    p = project(b, now)
    assert p is not None and p.remaining_minutes == 240
    assert p.total_tokens == 5000 + 5000 * 240
    assert p.cost_usd == pytest.approx(round(0.03 + 1.8 / 60 * 240, 2))


def test_activity_state_and_no_rate_cases() -> None:
    # active while the last entry is under 5 h old and the window has not ended
    (old,) = identify_blocks([e(0)], T0 + dt.timedelta(hours=4, minutes=59))
    assert old.is_active  # 4h59m after its only entry, still inside its window
    (done,) = identify_blocks([e(0)], T0 + dt.timedelta(hours=5))
    assert not done.is_active
    assert burn_rate(old) is None  # one entry: zero span, no rate (ccusage returns null)
    assert project(old, T0 + dt.timedelta(hours=1)) is None
    assert project(done, T0 + dt.timedelta(hours=6)) is None
    gap = identify_blocks([e(0), e(600)], LATER)[1]
    assert gap.is_gap and burn_rate(gap) is None


def test_recent_keeps_the_last_days_and_the_active_block() -> None:
    now = T0 + dt.timedelta(days=10)
    blocks = identify_blocks([e(0), e(60 * 24 * 5), Entry(now - dt.timedelta(minutes=30))], now)
    kept = recent(blocks, now, 3)
    assert [b.start for b in kept if not b.is_gap] == [blocks[-1].start]
    assert kept[-1].is_active
