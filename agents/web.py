"""The worker's HTTP endpoints (Faust's web server, loopback by default).

The running worker owns the chDB store (one process per data dir), so `ccstream sql` and the analytics
commands send their queries here while it runs:

* ``POST /ccstream/sql``    body ``{"sql": str, "parameters": {...}, "format": "JSONEachRow"}`` → the output
  bytes in that ClickHouse format (status 400 with the ClickHouse error text on a bad query).
* ``GET  /ccstream/status`` → pipeline counters of this worker as JSON.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from typing import Any

import faust
from faust.web import Request, Response, View

from agents.runtime import Runtime
from agents.tailer import Tailer

log = logging.getLogger("ccstream.web")
STARTED = time.time()


def _count(table: Any) -> int:
    """Entries of a Faust table (RocksDB: iterates the keys, fine for a status page)."""
    if table is None:
        return 0
    return sum(1 for _ in table)


def register(app: faust.App, rt: Runtime, *, tailer: Tailer | None = None, sessions_table: Any = None) -> None:
    """The pages of this worker; `tailer` and `sessions_table` where it has the edge role (for the status page)."""
    @app.page("/ccstream/sql/")
    class SQL(View):
        async def post(self, request: Request) -> Response:
            if rt.ch is None:
                return self.json({"error": "this worker has no ClickHouse connection (edge role)"}, status=404)
            try:
                body = json.loads(await self.read_request_content(request))
                sql = str(body["sql"])
                fmt = str(body.get("format") or "JSONEachRow")
                params = body.get("parameters") or None
            except (ValueError, KeyError, TypeError) as exc:
                return self.json({"error": f"bad request: {exc}"}, status=400)
            try:
                out = await asyncio.to_thread(rt.ch.query_formatted, sql, fmt, params)
            except Exception as exc:  # the query's own error goes back to the caller
                return self.json({"error": str(exc)}, status=400)
            return self.bytes(out, content_type="application/octet-stream")

    @app.page("/ccstream/debug/tasks/")
    class Tasks(View):
        """Every asyncio task of the worker with where it waits: for diagnosing a stall."""

        async def get(self, request: Request) -> Response:
            import io

            out = []
            for task in asyncio.all_tasks():
                buf = io.StringIO()
                task.print_stack(limit=6, file=buf)
                out.append(buf.getvalue())
            return self.text("\n".join(out))

    @app.page("/ccstream/status/")
    class Status(View):
        async def get(self, request: Request) -> Response:
            return self.json({
                "host": rt.settings.host,
                "roles": rt.settings.roles,
                "uptime_s": round(time.time() - STARTED, 1),
                "followed_files": len(tailer.followed) if tailer else 0,
                "lagging_files": tailer.lagging() if tailer else [],
                "queued_requests": len(tailer.queued) if tailer else 0,
                "pending_checkpoints": len(rt.checkpoints),
                # bounded state: these return to their baseline once sessions end or go idle
                "agent_refs": sum(len(v) for v in tailer.agents_seen.values()) if tailer else 0,
                "session_entries": _count(sessions_table),
                **dataclasses.asdict(rt.stats),
            })

