"""Pure: API responses → 5-hour billing blocks, burn rate and projection, as ccusage computes them.

ccusage's rule (``identifySessionBlocks``): entries sorted by time; a block starts at its first entry's time
floored to the UTC hour and lasts 5 hours; an entry more than 5 hours after the block's start, or more than
5 hours after the previous entry, closes the block and starts a new one. Between two blocks whose entries
are more than 5 hours apart a *gap* block (no entries) runs from the last entry + 5 h to the next entry. A
block is *active* when its last entry is less than 5 hours ago and its end is still ahead.

Burn rate: tokens (all four kinds) per minute and cost per hour over the span from the block's first to its
last entry (none when that span is zero); ``indicator_tokens_per_minute`` counts input + output only, which
is what ccusage's HIGH/MODERATE/NORMAL indicator uses. Projection (active blocks only): the current totals
plus the burn rate over the minutes left until the block's end.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

BLOCK_HOURS = 5.0


@dataclass(frozen=True, slots=True)
class Entry:
    timestamp: dt.datetime  # aware (UTC)
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        return (self.input_tokens + self.output_tokens + self.cache_creation_input_tokens
                + self.cache_read_input_tokens)


@dataclass(slots=True)
class Block:
    start: dt.datetime
    end: dt.datetime  # start + 5 h; for a gap, the next entry's time
    entries: list[Entry] = field(default_factory=list)
    is_gap: bool = False
    is_active: bool = False

    @property
    def last_activity(self) -> dt.datetime | None:
        return self.entries[-1].timestamp if self.entries else None

    def total(self, attr: str) -> int:
        return sum(int(getattr(e, attr)) for e in self.entries)

    @property
    def total_tokens(self) -> int:
        return sum(e.total_tokens for e in self.entries)

    @property
    def cost_usd(self) -> float:
        return sum(e.cost_usd for e in self.entries)

    @property
    def models(self) -> list[str]:
        seen: dict[str, None] = {}
        for e in self.entries:
            if e.model and e.model != "<synthetic>":
                seen.setdefault(e.model, None)
        return list(seen)


@dataclass(frozen=True, slots=True)
class BurnRate:
    tokens_per_minute: float
    indicator_tokens_per_minute: float  # input + output only
    cost_per_hour: float


@dataclass(frozen=True, slots=True)
class Projection:
    total_tokens: int
    cost_usd: float
    remaining_minutes: int


def floor_to_hour(t: dt.datetime) -> dt.datetime:
    """The start of the UTC hour of ``t`` (ccusage floors in UTC whatever the display timezone)."""
    return t.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def identify_blocks(entries: Iterable[Entry], now: dt.datetime, hours: float = BLOCK_HOURS) -> list[Block]:
    """Blocks (gaps included) in time order."""
    span = dt.timedelta(hours=hours)
    ordered = sorted(entries, key=lambda e: e.timestamp)
    blocks: list[Block] = []
    current: Block | None = None
    for e in ordered:
        if current is not None:
            last = current.entries[-1].timestamp
            if e.timestamp - current.start > span or e.timestamp - last > span:
                blocks.append(_close(current, now, span))
                if e.timestamp - last > span:
                    blocks.append(Block(start=last + span, end=e.timestamp, is_gap=True))
                current = None
        if current is None:
            start = floor_to_hour(e.timestamp)
            current = Block(start=start, end=start + span)
        current.entries.append(e)
    if current is not None:
        blocks.append(_close(current, now, span))
    return blocks


def _close(block: Block, now: dt.datetime, span: dt.timedelta) -> Block:
    last = block.entries[-1].timestamp
    block.is_active = now - last < span and now < block.end
    return block


def burn_rate(block: Block) -> BurnRate | None:
    if block.is_gap or len(block.entries) < 1:
        return None
    minutes = (block.entries[-1].timestamp - block.entries[0].timestamp).total_seconds() / 60
    if minutes <= 0:
        return None
    io = block.total("input_tokens") + block.total("output_tokens")
    return BurnRate(tokens_per_minute=block.total_tokens / minutes, indicator_tokens_per_minute=io / minutes,
                    cost_per_hour=block.cost_usd / minutes * 60)


def project(block: Block, now: dt.datetime) -> Projection | None:
    """What the active block will have used by its end at the current burn rate."""
    rate = burn_rate(block)
    if not block.is_active or rate is None:
        return None
    remaining = max((block.end - now).total_seconds() / 60, 0.0)
    return Projection(total_tokens=round(block.total_tokens + rate.tokens_per_minute * remaining),
                      cost_usd=round(block.cost_usd + rate.cost_per_hour / 60 * remaining, 2),
                      remaining_minutes=round(remaining))


def recent(blocks: Sequence[Block], now: dt.datetime, days: float) -> list[Block]:
    """Blocks that started within the last ``days`` days, and the active one whenever it started."""
    cutoff = now - dt.timedelta(days=days)
    return [b for b in blocks if b.start >= cutoff or b.is_active]
