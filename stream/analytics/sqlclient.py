"""Run SQL against the store: through the running worker (which owns chDB) or by opening it directly.

chDB lets one process open a data dir, so while `ccstream up` runs the CLI posts its query to the worker's
web server; when nothing runs it opens the store itself. A ClickHouse server DSN is always queried directly.

Every analytics command starts a process that asks one or two questions, so what this module imports is part
of each command's time: the worker, always on loopback over plain HTTP, is asked over a socket
(`post_json`, one request per connection), not through urllib (http.client, email, ssl: ~25 ms to import);
the store's client is imported only when the store is opened here.
"""

from __future__ import annotations

import contextlib
import json
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from stream.config import Settings
from stream.stack.rundir import RunDir

if TYPE_CHECKING:
    from stream.store.client import QueryLimits

FORMATS = {"json": "JSONEachRow", "csv": "CSVWithNames", "table": "PrettyCompactMonoBlock",
           "tsv": "TSVWithNames"}


class QueryError(RuntimeError):
    """The query failed; the message is ClickHouse's (or says why the store could not be reached)."""


def _worker_url(settings: Settings) -> str | None:
    return RunDir.of(settings).worker_url()


def worker_token(settings: Settings) -> str:
    """The bearer token of the running worker's API (the configured one, or the data dir's)."""
    token = settings.web_token or RunDir.of(settings).api_token()
    if not token:
        raise QueryError(f"ccstream up is running but {settings.run_dir / 'api.token'} is missing or not yours; "
                         "restart `ccstream up` (it writes a new one)")
    return token


def limits_of(settings: Settings) -> QueryLimits:
    from stream.store.client import QueryLimits

    return QueryLimits(settings.sql_max_seconds, settings.sql_max_result_rows, settings.sql_max_result_bytes)


class HttpError(OSError):
    """The worker could not be reached, or did not answer in HTTP."""


def post_json(url: str, path: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    """POST a JSON body to an ``http://host:port`` server; (status, body). HTTP/1.1, one request per
    connection (``Connection: close``), the answer read to its Content-Length, chunked, or to the close."""
    u = urlsplit(url)
    if u.scheme != "http" or not u.hostname:
        raise HttpError(f"not a plain http:// URL: {url!r}")
    head = [f"POST {path} HTTP/1.1", f"Host: {u.netloc}", "Content-Type: application/json",
            f"Content-Length: {len(body)}", "Connection: close",
            *(f"{k}: {v}" for k, v in headers.items())]
    if any(c in line for line in head for c in "\r\n"):
        raise HttpError("a header holds a line break")
    with socket.create_connection((u.hostname, u.port or 80), timeout=timeout) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        data, expected = bytearray(), None
        while chunk := sock.recv(1 << 16):
            data += chunk
            if expected is None and b"\r\n\r\n" in data:
                expected = _expected_length(data)
            if expected is not None and len(data) >= expected:
                break  # all of a Content-Length answer: no need to wait for the close
    return _parse_response(bytes(data))


def _expected_length(data: bytearray) -> int | None:
    """Header plus body length of an answer with a Content-Length (None: read to the close)."""
    head = bytes(data[:data.index(b"\r\n\r\n") + 4])
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            return len(head) + int(value.strip())
    return None


def _parse_response(data: bytes) -> tuple[int, bytes]:
    head, sep, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if not sep or len(status_line) < 2 or not status_line[0].startswith("HTTP/") or not status_line[1].isdigit():
        raise HttpError("the answer is not HTTP")
    fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    if "chunked" in fields.get("transfer-encoding", "").lower():
        out: list[bytes] = []
        i = 0
        while True:
            end = rest.find(b"\r\n", i)
            if end < 0:
                raise HttpError("a chunked answer ended early")
            size = int(rest[i:end].split(b";")[0], 16)
            if size == 0:
                return int(status_line[1]), b"".join(out)
            out.append(rest[end + 2:end + 2 + size])
            i = end + 2 + size + 2
    if "content-length" in fields:
        n = int(fields["content-length"])
        if len(rest) < n:
            raise HttpError("the answer ended early")
        rest = rest[:n]
    return int(status_line[1]), rest


def query_worker(settings: Settings, url: str, sql: str, fmt: str = "JSONEachRow",
                 parameters: dict[str, Any] | None = None, *, write: bool = False) -> bytes:
    """The query's output from the worker's SQL API at `url`, with the owner's token; QueryError when it
    does not answer or refuses the query."""
    body = json.dumps({"sql": sql, "format": fmt, "parameters": parameters or {}, "write": write}).encode()
    try:
        status, answer = post_json(url, "/ccstream/sql/", body, {"Authorization": f"Bearer {worker_token(settings)}"},
                                   timeout=settings.sql_max_seconds + 60)
    except OSError as exc:
        reason = exc if isinstance(exc, HttpError) else (exc.strerror or type(exc).__name__)
        raise QueryError(f"ccstream up is running but its worker at {url} does not answer ({reason}); "
                         "it may still be starting: try again in a few seconds") from None
    if status != 200:
        detail = answer.decode(errors="replace")
        with contextlib.suppress(ValueError, KeyError, TypeError):
            detail = json.loads(detail)["error"]
        raise QueryError(detail)
    return answer


def run_formatted(settings: Settings, sql: str, fmt: str = "JSONEachRow",
                  parameters: dict[str, Any] | None = None, *, write: bool = False) -> bytes:
    """The query's output in a ClickHouse format, from wherever the store is. Read-only unless `write`;
    never anything that reaches files, URLs, other servers or programs (stream.store.client.query_guarded)."""
    dsn = settings.effective_clickhouse_dsn
    url = _worker_url(settings) if dsn.startswith("chdb:") else None
    if url is not None:
        return query_worker(settings, url, sql, fmt, parameters, write=write)
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
