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

FORMATS = {"json": "JSONEachRow", "csv": "CSVWithNames", "table": "PrettyCompactMonoBlock",
           "tsv": "TSVWithNames"}


class QueryError(RuntimeError):
    """The query failed; the message is ClickHouse's (or says why the store could not be reached)."""


def _worker_url(settings: Settings) -> str | None:
    from stream.stack.up import is_running

    info = settings.run_dir / "worker.json"
    if not info.exists() or not is_running(settings):
        return None
    try:
        return str(json.loads(info.read_text())["web_url"])
    except (ValueError, KeyError, OSError):
        return None


def run_formatted(settings: Settings, sql: str, fmt: str = "JSONEachRow",
                  parameters: dict[str, Any] | None = None) -> bytes:
    """The query's output in a ClickHouse format, from wherever the store is."""
    dsn = settings.effective_clickhouse_dsn
    url = _worker_url(settings) if dsn.startswith("chdb:") else None
    if url is not None:
        body = json.dumps({"sql": sql, "format": fmt, "parameters": parameters or {}}).encode()
        req = urllib.request.Request(url + "/ccstream/sql/", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return bytes(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            with contextlib.suppress(ValueError, KeyError):
                detail = json.loads(detail)["error"]
            raise QueryError(detail) from None
        except urllib.error.URLError as exc:
            raise QueryError(f"ccstream up is running but its worker at {url} does not answer ({exc.reason}); "
                             "it may still be starting: try again in a few seconds") from None
    if dsn.startswith("chdb:") and is_locked(settings):
        raise QueryError("ccstream up is starting or stopping and owns the store; try again in a few seconds")
    from stream.store.client import connect
    from stream.store.schema import migrate

    ch = connect(dsn)
    try:
        migrate(ch)
        return bytes(ch.query_formatted(sql, fmt, parameters))
    except Exception as exc:
        raise QueryError(str(exc)) from None
    finally:
        ch.close()


def is_locked(settings: Settings) -> bool:
    from stream.stack.up import is_running

    return is_running(settings)


def run_query(settings: Settings, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Rows as dicts (JSONEachRow underneath)."""
    out = run_formatted(settings, sql, "JSONEachRow", parameters)
    return [json.loads(line) for line in out.splitlines() if line.strip()]
