"""The worker's ClickHouse store as a mode Service: connected and migrated when the worker starts (before any
agent runs), closed when it stops (after the agents). Building the app opens nothing.

The sink writes through `writers` (one connection each: a batch is split into that many concurrent inserts,
each running on its own core inside ClickHouse). An edge beside a sink also reads its file checkpoints here at
start, for a broker that forgets everything on restart (docs/architecture.md, "The local broker is transport").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from mode import Service

from stream.config import Settings
from stream.store.client import ClickHouse, connect
from stream.store.schema import migrate
from stream.store.writer import TraceWriter
from stream.tail.cursor import Checkpoint

log = logging.getLogger("ccstream.store")


class StoreService(Service):
    def __init__(self, settings: Settings, *, connections: int = 1, checkpoints_for: str | None = None,
                 checkpoints: dict[str, Checkpoint] | None = None, **kwargs: Any) -> None:
        self.settings = settings
        self.connections = max(1, connections)
        self.checkpoints_for = checkpoints_for  # host whose file checkpoints to load on start (an edge's)
        self.checkpoints = checkpoints if checkpoints is not None else {}  # filled in place on start
        self._clients: list[ClickHouse] = []
        self.writers: list[TraceWriter] = []
        super().__init__(**kwargs)

    @property
    def ch(self) -> ClickHouse:
        if not self._clients:
            raise RuntimeError("the ClickHouse store is not started")
        return self._clients[0]

    @property
    def writer(self) -> TraceWriter:
        return self.writers[0]

    def open(self) -> None:
        """Connect, migrate, make the writers, load checkpoints (blocking: chDB has no async client)."""
        dsn = self.settings.effective_clickhouse_dsn
        first = connect(dsn)
        migrate(first)
        self._clients = [first, *(connect(dsn) for _ in range(self.connections - 1))]
        self.writers = [TraceWriter(c) for c in self._clients]
        if self.checkpoints_for is not None:
            self.checkpoints.update(self.writer.file_checkpoints(self.checkpoints_for))
            log.info("loaded %d file checkpoints from ClickHouse", len(self.checkpoints))

    def close(self) -> None:
        for c in self._clients:
            with contextlib.suppress(Exception):
                c.close()
        self._clients = []
        self.writers = []

    async def on_start(self) -> None:
        await asyncio.to_thread(self.open)

    async def on_stop(self) -> None:
        await asyncio.to_thread(self.close)
