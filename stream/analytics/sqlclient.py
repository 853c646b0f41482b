"""Run SQL against the store: through the running worker (which owns chDB) or by opening it directly.

chDB lets one process open a data dir, so while `ccstream up` runs the CLI posts its query to the worker's
web server; when nothing runs it opens the store itself. A ClickHouse server DSN is always queried directly.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from typing import Any

from stream.config import Settings
from stream.stack.rundir import RunDir
from stream.store.client import QueryLimits

FORMATS = {"json": "JSONEachRow", "csv": "CSVWithNames", "table": "PrettyCompactMonoBlock",
           "tsv": "TSVWithNames"}


class QueryError(RuntimeError):
    """The query failed; the message is ClickHouse's (or says why the store could not be reached)."""


def _worker_url(settings: Settings) -> str | None:
    return RunDir.of(settings).worker_url()


def _token(settings: Settings) -> str:
    token = settings.web_token or RunDir.of(settings).api_token()
    if not token:
        raise QueryError(f"ccstream up is running but {settings.run_dir / 'api.token'} is missing or not yours; "
                         "restart `ccstream up` (it writes a new one)")
    return token


def limits_of(settings: Settings) -> QueryLimits:
    return QueryLimits(settings.sql_max_seconds, settings.sql_max_result_rows, settings.sql_max_result_bytes)


def run_formatted(settings: Settings, sql: str, fmt: str = "JSONEachRow",
                  parameters: dict[str, Any] | None = None, *, write: bool = False) -> bytes:
    """The query's output in a ClickHouse format, from wherever the store is. Read-only unless `write`;
    never anything that reaches files, URLs, other servers or programs (stream.store.client.query_guarded)."""
    dsn = settings.effective_clickhouse_dsn
    url = _worker_url(settings) if dsn.startswith("chdb:") else None
    if url is not None:
        body = json.dumps({"sql": sql, "format": fmt, "parameters": parameters or {}, "write": write}).encode()
        req = urllib.request.Request(url + "/ccstream/sql/", data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {_token(settings)}"})
        try:
            with urllib.request.urlopen(req, timeout=settings.sql_max_seconds + 60) as resp:
                return bytes(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            with contextlib.suppress(ValueError, KeyError, TypeError):
                detail = json.loads(detail)["error"]
            raise QueryError(detail) from None
        except urllib.error.URLError as exc:
            raise QueryError(f"ccstream up is running but its worker at {url} does not answer ({exc.reason}); "
                             "it may still be starting: try again in a few seconds") from None
    if dsn.startswith("chdb:") and is_locked(settings):
        raise QueryError("ccstream up is starting or stopping and owns the store; try again in a few seconds")
    from stream.store.client import connect
    from stream.store.schema import migrate

    try:
        ch = connect(dsn)
    except Exception as exc:
        raise QueryError(str(exc)) from None
    try:
        if dsn.startswith("chdb:"):  # a server's schema is the sink's; analytics may log in read-only there
            migrate(ch)
        return bytes(ch.query_guarded(sql, fmt, parameters, write=write, limits=limits_of(settings)))
    except Exception as exc:
        msg = str(exc)
        if getattr(exc, "code", None) == 164 and not write:
            msg += " (ccstream sql is read-only: add --write for DDL and INSERT)"
        raise QueryError(msg) from None
    finally:
        ch.close()


def is_locked(settings: Settings) -> bool:
    return RunDir.of(settings).is_running()


def run_query(settings: Settings, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Rows as dicts (JSONEachRow underneath)."""
    out = run_formatted(settings, sql, "JSONEachRow", parameters)
    return [json.loads(line) for line in out.splitlines() if line.strip()]
