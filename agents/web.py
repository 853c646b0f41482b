"""The worker's HTTP endpoints (Faust's web server, loopback by default), behind `agents.web_guard`.

The running worker owns the chDB store (one process per data dir), so `ccstream sql` and the analytics
commands send their queries here while it runs. Every request passes one middleware (Host allow-list,
Origin and JSON body on state-changing requests, the owner's token; docs/security.md), Faust's own pages
included:

* ``POST /ccstream/sql/``   body ``{"sql": str, "parameters": {...}, "format": "JSONEachRow", "write": false}``
  → the output bytes in that ClickHouse format (400 with ClickHouse's error text on a bad or refused query).
  Read-only at the ClickHouse level unless ``write``; never file(), url() and the like; within the limits of
  ``sql_max_seconds``/``sql_max_result_rows``/``sql_max_result_bytes``. Runs on clients of its own, so a
  long query never holds the sink's connection.
* ``GET  /ccstream/status/`` → pipeline counters of this worker as JSON.
* ``POST /ccstream/drain/`` body ``{"draining": bool}`` → history reads stop (or go on): `up` asks before
  it recycles the embedded broker (stream/stack/recycle.py).
* ``GET  /ccstream/?login=<one-time token>`` → the session cookie, then a small page (the dashboard's place).
* ``GET  /ccstream/health/`` → ``{"ok": true}``, open, says nothing about the data.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import faust
from aiohttp import web as aioweb
from faust.web import Request, Response, View

from agents.runtime import Runtime
from agents.tailer import Tailer
from agents.web_guard import Guard
from stream.config import Settings
from stream.stack.rundir import RunDir
from stream.stack.servers import is_loopback
from stream.store.client import ClickHouse, ClickHouseError, QueryLimits, connect

log = logging.getLogger("ccstream.web")
STARTED = time.time()
READONLY_CODE = 164

PAGE = """<!doctype html><meta charset="utf-8"><title>ccstream</title>
<h1>ccstream</h1><p>Signed in to this worker. <a href="/ccstream/status/">status</a></p>"""


def _count(table: Any) -> int:
    """Entries of a Faust table (RocksDB: iterates the keys, fine for a status page)."""
    if table is None:
        return 0
    return sum(1 for _ in table)


def build_guard(rt: Runtime) -> Guard:
    """The guard of this worker: the configured token or the data dir's, and the one-time login token."""
    s = rt.settings
    if not is_loopback(s.web_host) and not s.web_token:
        raise SystemExit(f"ccstream worker: CCSTREAM_WEB_HOST={s.web_host} reaches beyond this machine; set "
                         "CCSTREAM_WEB_TOKEN (a long random secret) and put TLS in front (docs/security.md)")
    run = RunDir.of(s)
    token = s.web_token or run.api_token(create=True)
    assert token is not None
    allowed = list(s.web_allowed_hosts)
    if not is_loopback(s.web_host) and s.web_host not in ("0.0.0.0", "::"):
        allowed.append(s.web_host)
    try:
        return Guard(token, allowed, login_token=run.take_login_token())
    except ValueError as exc:
        raise SystemExit(f"ccstream worker: CCSTREAM_WEB_TOKEN: {exc}") from None


class QueryClients:
    """Clients of the SQL API, apart from the sink's: chDB keeps `readonly` on a client once it is set, so
    reads and writes never share one, and each query in flight has its own (a long one holds no other)."""

    def __init__(self, dsn: str, most: int = 4) -> None:
        self.dsn = dsn
        self._lock = threading.Lock()
        self._idle: dict[bool, list[ClickHouse]] = {False: [], True: []}
        self._slots = threading.BoundedSemaphore(most)

    @contextlib.contextmanager
    def client(self, write: bool) -> Iterator[ClickHouse]:
        with self._slots:
            with self._lock:
                ch = self._idle[write].pop() if self._idle[write] else None
            if ch is None:
                ch = connect(self.dsn)
            try:
                yield ch
            finally:
                with self._lock:
                    self._idle[write].append(ch)

    def query(self, sql: str, fmt: str, params: dict[str, Any] | None, write: bool, limits: QueryLimits) -> bytes:
        with self.client(write) as ch:
            return ch.query_guarded(sql, fmt, params, write=write, limits=limits)


def register(app: faust.App, rt: Runtime, *, tailer: Tailer | None = None, sessions_table: Any = None) -> None:
    """The pages of this worker behind its guard; `tailer` and `sessions_table` where it has the edge role
    (for the status page)."""
    guard = build_guard(rt)
    limits = QueryLimits(rt.settings.sql_max_seconds, rt.settings.sql_max_result_rows,
                         rt.settings.sql_max_result_bytes)
    clients = QueryClients(rt.settings.effective_clickhouse_dsn)

    @aioweb.middleware
    async def guarded(request: aioweb.Request,
                      handler: Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]) -> aioweb.StreamResponse:
        refusal = guard.check(request.method, request.path, dict(request.headers), dict(request.cookies))
        if refusal is not None:
            return aioweb.json_response({"error": refusal.reason}, status=refusal.status,
                                        headers={"Cache-Control": "no-store"})
        response = await handler(request)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    app.web.web_app.middlewares.append(guarded)  # type: ignore[attr-defined]

    @app.page("/ccstream/health/")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"ok": True})

    @app.page("/ccstream/")
    class Home(View):
        """The one-time URL `ccstream up` prints lands here: its token becomes an HttpOnly cookie."""

        async def get(self, request: Request) -> Response:
            presented = request.query.get("login")
            if presented is not None:
                cookie = guard.exchange_login(presented)
                if cookie is None:
                    return self.json({"error": "this login link was already used or is wrong; restart "
                                               "`ccstream up` for a new one"}, status=401)
                # where the data is, the dashboard (agents/dashboard.py); an edge without a store, this page
                home = "/dashboard/" if rt.ch is not None else "/ccstream/"
                return self.text("", status=303, headers={"Location": home, "Set-Cookie": cookie})
            if not guard.authorized(dict(request.headers), dict(request.cookies)):
                return self.json({"error": "missing or wrong token"}, status=401)
            return self.html(PAGE)

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
                write = body.get("write") is True
            except (ValueError, KeyError, TypeError) as exc:
                return self.json({"error": f"bad request: {exc}"}, status=400)
            try:
                out = await asyncio.to_thread(clients.query, sql, fmt, params, write, limits)
            except ClickHouseError as exc:  # the query's own error goes back to the caller
                msg = str(exc)
                if exc.code == READONLY_CODE and not write:
                    msg += " (ccstream sql is read-only: add --write for DDL and INSERT)"
                return self.json({"error": msg}, status=400)
            except Exception as exc:
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

    @app.page("/ccstream/drain/")
    class Drain(View):
        async def post(self, request: Request) -> Response:
            if tailer is None:
                return self.json({"error": "this worker has no tailer (sink role)"}, status=404)
            try:
                draining = json.loads(await self.read_request_content(request))["draining"]
            except (ValueError, KeyError, TypeError) as exc:
                return self.json({"error": f"bad request: {exc}"}, status=400)
            if not isinstance(draining, bool):
                return self.json({"error": "bad request: draining must be true or false"}, status=400)
            if draining != tailer.draining:
                log.info("history reads %s (asked by ccstream up)", "stopped" if draining else "resumed")
            tailer.draining = draining
            return self.json({"draining": tailer.draining})

    @app.page("/ccstream/status/")
    class Status(View):
        async def get(self, request: Request) -> Response:
            own = {
                "host": rt.settings.host,
                "roles": rt.settings.roles,
                "uptime_s": round(time.time() - STARTED, 1),
                # the tailer's bounded state: it returns to its baseline once sessions end or go idle
                **(tailer.status() if tailer is not None else {
                    "followed_files": 0, "lagging_files": [], "queued_requests": 0,
                    "pending_checkpoints": len(rt.checkpoints), "agent_refs": 0}),
                "draining": tailer.draining if tailer is not None else False,
                "session_entries": _count(sessions_table),
                **dataclasses.asdict(rt.stats),
            }
            if tailer is None and rt.settings.sink_apart:
                return self.json(merge_split_status(own, await edge_status(rt.settings)))
            return self.json(own)


async def edge_status(settings: Settings) -> dict[str, Any] | None:
    """The edge worker's status, asked by the sink worker of a split `up` at the address `up` recorded
    (None: not split, or the edge not answering)."""
    import aiohttp

    from stream.analytics.sqlclient import worker_token

    url = RunDir.of(settings).worker_info().get("edge_url")
    if not url:
        return None
    try:
        headers = {"Authorization": f"Bearer {worker_token(settings)}"}
        async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
                    session.get(f"{url}/ccstream/status/", headers=headers) as r):
            return dict(await r.json()) if r.status == 200 else None
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


# what the edge of a split `up` knows better than its sink: the tailer's state and the lines it produced
EDGE_FIELDS = ("followed_files", "lagging_files", "queued_requests", "pending_checkpoints", "agent_refs",
               "draining", "session_entries", "chunks_produced", "records_produced", "bad_lines", "truncations",
               "recreations", "refused_paths")


def merge_split_status(sink: dict[str, Any], edge: dict[str, Any] | None) -> dict[str, Any]:
    """One status for the two workers of a split `up`, as one worker with both roles would give it: the
    edge's tailer figures, the sink's insert figures (pure)."""
    out = dict(sink)
    if edge is None:
        out["edge"] = "not answering"
        return out
    out.update({k: edge[k] for k in EDGE_FIELDS if k in edge})
    out["roles"] = sorted(set(sink.get("roles", [])) | set(edge.get("roles", [])))
    return out
