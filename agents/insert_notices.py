"""The edge of a split `up` learns what the sink worker inserted: ``<prefix>.raw-inserted`` into the
runtime's lanes (stream/tail/raw_lane.py) and counters (the tailer's pacing, `tail_sink_lag_records`), as the
sink would tell them in one worker (agents/sink.py, `insert_raw`)."""

from __future__ import annotations

import logging
import time
from typing import Any

import faust

from agents.runtime import Runtime
from stream.contract.insert_notice import InsertNotice

log = logging.getLogger("ccstream.insert-notices")


def apply(rt: Runtime, notice: InsertNotice) -> None:
    """One notice, as `insert_raw` would have counted it beside the tailer; another host's is not ours."""
    if notice.host != rt.settings.host:
        return
    rt.lanes.inserted(notice.marks)
    rt.stats.rows_inserted += notice.rows
    rt.stats.inserts += 1
    rt.stats.last_insert_at = time.time()


def register(app: faust.App, rt: Runtime) -> None:
    assert rt.topics.raw_inserted is not None

    @app.agent(rt.topics.raw_inserted, name="ccstream.insert-notices")
    async def insert_notices(stream: Any) -> None:
        async for value in stream:
            try:
                apply(rt, InsertNotice.decode(value))
            except (ValueError, KeyError, TypeError) as exc:
                log.error("undecodable insert notice skipped: %s", exc)
