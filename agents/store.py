"""The worker's ClickHouse store as a mode Service: connected and migrated when the worker starts (before any
agent runs), closed when it stops (after the agents). Building the app opens nothing.

The sink writes through `writers` (one connection each: a batch is split into that many concurrent inserts,
each running on its own core inside ClickHouse), on the store's own threads (`run`): an insert never waits
behind the tailer's file reads in asyncio's default pool. An edge beside a sink also reads its file checkpoints here at
start, for a broker that forgets everything on restart (docs/architecture.md, "The local broker is transport").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from mode import Service

from stream.config import Settings
from stream.store.client import ClickHouse, connect
from stream.store.schema import migrate
from stream.store.writer import TraceWriter
from stream.tail.cursor import Checkpoint

log = logging.getLogger("ccstream.store")
T = TypeVar("T")


class StoreService(Service):
    def __init__(self, settings: Settings, *, connections: int = 1, checkpoints_for: str | None = None,
                 checkpoints: dict[str, Checkpoint] | None = None, live: bool = False,
                 **kwargs: Any) -> None:
        self.settings = settings
        self.connections = max(1, connections)
        self.checkpoints_for = checkpoints_for  # host whose file checkpoints to load on start (an edge's)
        self.checkpoints = checkpoints if checkpoints is not None else {}  # filled in place on start
        self._clients: list[ClickHouse] = []
        self.writers: list[TraceWriter] = []
        self.live = live  # a connection of its own for the live lane's inserts
        self._live_writer: TraceWriter | None = None
        self._pool: ThreadPoolExecutor | None = None
        super().__init__(**kwargs)

    async def run(self, fn: Callable[[], T]) -> T:
        """`fn` (a blocking store call) on one of the store's threads: one per connection."""
        if self._pool is None:
            # one thread per connection (the live one included), plus one for the other sinks' small inserts
            self._pool = ThreadPoolExecutor(self.connections + 2, thread_name_prefix="ccstream-insert")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    @property
    def ch(self) -> ClickHouse:
        if not self._clients:
            raise RuntimeError("the ClickHouse store is not started")
        return self._clients[0]

    @property
    def writer(self) -> TraceWriter:
        return self.writers[0]

    @property
    def live_writer(self) -> TraceWriter:
        return self._live_writer or self.writers[0]

    def open(self) -> None:
        """Connect, migrate, make the writers, load checkpoints (blocking: chDB has no async client)."""
        dsn = self.settings.effective_clickhouse_dsn
        first = connect(dsn)
        migrate(first)
        self._clients = [first, *(connect(dsn) for _ in range(self.connections - 1))]
        if self.live:
            self._clients.append(connect(dsn))
        in_clickhouse = self.settings.sink_extraction == "clickhouse"
        writers = [TraceWriter(c, extract_in_clickhouse=in_clickhouse) for c in self._clients]
        self.writers = writers[:self.connections]
        self._live_writer = writers[self.connections] if self.live else None
        if self.checkpoints_for is not None:
            self.checkpoints.update(self.writer.file_checkpoints(self.checkpoints_for))
            log.info("loaded %d file checkpoints from ClickHouse", len(self.checkpoints))

    def close(self) -> None:
        for c in self._clients:
            with contextlib.suppress(Exception):
                c.close()
        self._clients = []
        self.writers = []
        self._live_writer = None

    async def on_start(self) -> None:
        await asyncio.to_thread(self.open)

    async def on_stop(self) -> None:
        await asyncio.to_thread(self.close)
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
