"""Where the edge of a split `up` reads its file checkpoints: from the sink worker, which owns chDB.

A broker that forgets (the embedded Tansu) holds no tailer state across a restart, so every edge start reads
on from what ClickHouse holds of each file (docs/architecture.md, "The local broker is transport"). In one
worker the store loads them (agents/store.py); the edge of a split `up` has no store (chDB lets one process
open a data dir) and asks the sink's SQL API instead, at the address `up` recorded before it started the
edge. Started before the agents: no file is read before its checkpoint is known. If the sink does not
answer, the edge does not start (`up` restarts the stack): reading from zero would repeat every file.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from mode import Service

from stream.config import Settings
from stream.tail.cursor import Checkpoint

log = logging.getLogger("ccstream.checkpoints")
WAIT_SECONDS = 120.0  # for the sink worker to answer


class SinkUnavailable(RuntimeError):
    pass


def fetch_checkpoints(settings: Settings) -> dict[str, Checkpoint] | None:
    """This host's checkpoints through the running sink's SQL API; None when no `up` records a sink."""
    from stream.analytics.sqlclient import query_worker
    from stream.stack.rundir import RunDir
    from stream.store.writer import FILE_CHECKPOINTS_SQL, checkpoints_of

    url = RunDir.of(settings).worker_url()
    if url is None:
        return None
    answer = query_worker(settings, url, FILE_CHECKPOINTS_SQL, "JSONCompactEachRow", {"host": settings.host})
    return checkpoints_of(json.loads(line) for line in answer.splitlines() if line.strip())


class SinkCheckpoints(Service):
    """Fills `checkpoints` (the runtime's dict, in place) from the sink before the edge's agents start."""

    def __init__(self, settings: Settings, checkpoints: dict[str, Checkpoint], **kwargs: Any) -> None:
        self.settings = settings
        self.checkpoints = checkpoints
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        from stream.analytics.sqlclient import QueryError

        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_SECONDS
        while True:
            try:
                got = await asyncio.to_thread(fetch_checkpoints, self.settings)
                break
            except (QueryError, ValueError) as exc:
                if loop.time() > deadline:
                    raise SinkUnavailable(f"no file checkpoints from the sink worker within {WAIT_SECONDS:.0f}s "
                                          f"({exc}); not reading any file from the start") from exc
                await asyncio.sleep(1.0)
        if got is None:
            log.warning("no running `ccstream up` records a sink for %s: reading files from the Faust table "
                        "only", self.settings.data_dir)
            return
        self.checkpoints.update(got)
        log.info("loaded %d file checkpoints from the sink worker", len(got))
