"""The dashboard: a page served by the worker (static files in stream/dashboard/static/) and the JSON
endpoints it reads, documented by an OpenAPI document at ``/dashboard/openapi.json`` (docs/dashboard.md).

Every request passes the worker's guard first (agents/web.py's middleware: token or session cookie, Host,
Origin; agents/web_guard.py). The figures come from stream/analytics/dashboard.py over
the worker's own ClickHouse connection, in the same JSONEachRow form the CLI receives through
``POST /ccstream/sql/``, so the page and ``ccstream tokens|sessions --json`` agree. The page learns of new
data by short polling ``/dashboard/api/version`` (the sink's insert counters: no query).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import faust
from faust.web import Request, Response, View

import stream
from agents.runtime import Runtime
from agents.tailer import Tailer
from stream.analytics import dashboard as dash
from stream.analytics.pricing import PriceTable, PricingError, load_pricing
from stream.analytics.queries import Query

log = logging.getLogger("ccstream.dashboard")
# package data of `stream` (pyproject.toml), wherever it is installed
STATIC = Path(stream.__file__).resolve().parent / "dashboard" / "static"
PREFIX = "/dashboard"
_STATIC_NAME = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9]+)+$")
# text types go out as UTF-8 text (aiohttp adds the charset), anything else as bytes
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
          ".txt": "text/plain", ".json": "application/json"}
# the page is self-contained: nothing from another origin, ever
_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                       "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def dashboard_url(web_url: str, login: str | None = None) -> str:
    """The address `ccstream up` prints: with a one-time login token, the link that trades it for the session
    cookie and lands on the page (agents/web.py); without, the page itself (for a browser that has the cookie)."""
    base = web_url.rstrip("/")
    return f"{base}/ccstream/?login={login}" if login else f"{base}{PREFIX}/"


def worker_status(rt: Runtime, tailer: Tailer | None) -> dict[str, Any]:
    """What this worker knows beyond the store: followed and lagging files, its counters."""
    return {"host": rt.settings.host, "roles": list(rt.settings.roles),
            "followed_files": len(tailer.followed) if tailer else 0,
            "lagging_files": tailer.lagging() if tailer else [],
            "queued_requests": len(tailer.queued) if tailer else 0,
            "rows_inserted": rt.stats.rows_inserted, "inserts": rt.stats.inserts,
            "last_insert_at": rt.stats.last_insert_at, "bad_lines": rt.stats.bad_lines,
            "session_events": rt.stats.session_events}


def version(rt: Runtime) -> str:
    """Changes whenever the sink stored something: the page refetches when it does."""
    s = rt.stats
    return f"{s.inserts}.{s.rows_inserted}.{s.session_events}"


def _query(rt: Runtime) -> Query:
    ch = rt.ch
    if ch is None:
        raise LookupError("this worker has no ClickHouse connection (edge role): open the sink's dashboard")

    def run(sql: str, params: dict[str, Any] | None) -> list[dict[str, Any]]:
        out = ch.query_formatted(sql, "JSONEachRow", params)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    return run


def _params(request: Request) -> dict[str, str]:
    return {k: str(v) for k, v in request.query.items()}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def register(app: faust.App, rt: Runtime, *, tailer: Tailer | None = None) -> None:
    """The dashboard's pages and endpoints on this worker's web server."""

    def pricing() -> PriceTable:
        return load_pricing(rt.settings.data_dir)

    async def answer(view: View, request: Request, build: Callable[[], Any]) -> Response:
        try:
            doc = await asyncio.to_thread(build)
        except dash.BadRequest as exc:
            return view.json({"error": str(exc)}, status=400, headers=dict(_HEADERS))
        except LookupError as exc:
            return view.json({"error": _one_line(exc)}, status=404, headers=dict(_HEADERS))
        except PricingError as exc:
            return view.json({"error": f"pricing: {exc}"}, status=500, headers=dict(_HEADERS))
        except Exception as exc:  # a query failed: its one-line reason, the detail in the worker's log
            log.warning("dashboard query failed: %s", exc, exc_info=True)
            return view.json({"error": f"query failed: {_one_line(exc)}"}, status=500, headers=dict(_HEADERS))
        if doc is None:
            return view.json({"error": "not found"}, status=404, headers=dict(_HEADERS))
        return view.bytes(json.dumps(doc, ensure_ascii=False, default=str).encode(),
                          content_type="application/json", headers=dict(_HEADERS))

    def static(view: View, request: Request, name: str) -> Response:
        path = STATIC / name
        if not _STATIC_NAME.match(name) or not path.is_file():
            return view.text("not found\n", status=404, headers=dict(_HEADERS))
        ctype = _TYPES.get(path.suffix, "application/octet-stream")
        if ctype.startswith("text/"):
            return view.text(path.read_text(encoding="utf-8"), content_type=ctype, headers=dict(_HEADERS))
        return view.bytes(path.read_bytes(), content_type=ctype, headers=dict(_HEADERS))

    @app.page(PREFIX)
    class Root(View):
        async def get(self, request: Request) -> Response:
            query = f"?{request.query_string}" if request.query_string else ""
            return self.text("", status=302, headers={**_HEADERS, "Location": f"{PREFIX}/{query}"})

    @app.page(PREFIX + "/")
    class Page(View):
        async def get(self, request: Request) -> Response:
            return static(self, request, "index.html")

    @app.page(PREFIX + "/static/{name}")
    class Static(View):
        async def get(self, request: Request, name: str) -> Response:
            return static(self, request, name)

    @app.page(PREFIX + "/openapi.json")
    class OpenAPI(View):
        async def get(self, request: Request) -> Response:
            return await answer(self, request, lambda: OPENAPI)

    @app.page(PREFIX + "/api/version")
    class Version(View):
        async def get(self, request: Request) -> Response:
            return self.json({"version": version(rt), "at": time.time()}, headers=dict(_HEADERS))

    @app.page(PREFIX + "/api/overview")
    class Overview(View):
        async def get(self, request: Request) -> Response:
            p = _params(request)
            return await answer(self, request, lambda: dash.overview(_query(rt), dash.filters_from(p), pricing()))

    @app.page(PREFIX + "/api/sessions")
    class Sessions(View):
        async def get(self, request: Request) -> Response:
            p = _params(request)
            return await answer(self, request, lambda: dash.sessions(
                _query(rt), dash.filters_from(p), pricing(), model=p.get("model") or None,
                host=p.get("host") or None))

    @app.page(PREFIX + "/api/sessions/{session_id}")
    class Session(View):
        async def get(self, request: Request, session_id: str) -> Response:
            return await answer(self, request, lambda: dash.session(_query(rt), session_id, pricing()))

    @app.page(PREFIX + "/api/tools")
    class Tools(View):
        async def get(self, request: Request) -> Response:
            p = _params(request)
            return await answer(self, request, lambda: dash.tools(_query(rt), dash.filters_from(p)))

    @app.page(PREFIX + "/api/pipeline")
    class Pipeline(View):
        async def get(self, request: Request) -> Response:
            status = worker_status(rt, tailer)
            if tailer is None and rt.settings.sink_apart:  # a split `up`: the tailer is the edge worker's
                from agents.web import edge_status, merge_split_status

                status = merge_split_status(status, await edge_status(rt.settings))
            return await answer(self, request, lambda: dash.pipeline(_query(rt), pricing(), status))


# ---- the OpenAPI document (served as is; docs/dashboard.md explains the fields) ------------------------

_RANGE = [
    {"name": "since", "in": "query", "schema": {"type": "string", "format": "date"},
     "description": "from this UTC day, inclusive (YYYY-MM-DD or YYYYMMDD)"},
    {"name": "until", "in": "query", "schema": {"type": "string", "format": "date"},
     "description": "to this UTC day, inclusive"},
    {"name": "project", "in": "query", "schema": {"type": "string"},
     "description": "only projects whose path (cwd) contains this text, case-insensitive"},
]


def _op(summary: str, params: list[dict[str, Any]] | None = None, schema: str = "Document") -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": params or [],
                    "responses": {"200": {"description": "OK", "content": {"application/json": {
                        "schema": {"$ref": f"#/components/schemas/{schema}"}}}},
                                  "400": {"description": "a bad query-string value",
                                          "content": {"application/json": {
                                              "schema": {"$ref": "#/components/schemas/Error"}}}}}}}


OPENAPI: Mapping[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "ccstream dashboard", "version": "1",
             "description": "The JSON the dashboard page reads. Figures equal `ccstream tokens --json` and "
                            "`ccstream sessions --json` for the same range (docs/dashboard.md)."},
    "paths": {
        f"{PREFIX}/api/overview": _op(
            "totals, cache-read share, tokens and cost by day×model, model, project, host×user, day; session "
            "counts", _RANGE),
        f"{PREFIX}/api/sessions": _op("the rows of `ccstream sessions --json`, optionally narrowed", [
            *_RANGE,
            {"name": "model", "in": "query", "schema": {"type": "string"}, "description": "substring of a model"},
            {"name": "host", "in": "query", "schema": {"type": "string"}, "description": "exact host name"}]),
        f"{PREFIX}/api/sessions/{{session_id}}": _op(
            "one session: summary row, replay turns (as `ccstream show`), tool calls, subagent tree, cost over "
            "time", [{"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}]),
        f"{PREFIX}/api/tools": _op("per tool and per MCP server: calls, errors, p50/p95; slowest and failing "
                                   "calls", _RANGE),
        f"{PREFIX}/api/pipeline": _op("importing or caught up, lag, last insert, dead letters, unknown-price "
                                      "models"),
        f"{PREFIX}/api/version": _op("a token that changes whenever the sink stored something (poll it)",
                                     schema="Version"),
    },
    "components": {"schemas": {
        "Document": {"type": "object", "additionalProperties": True},
        "Version": {"type": "object", "properties": {"version": {"type": "string"}, "at": {"type": "number"}}},
        "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
    }},
}
