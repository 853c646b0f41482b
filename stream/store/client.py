"""One ClickHouse client per process, from a DSN: chDB in process or a ClickHouse server over HTTP.

* ``chdb:///abs/path[?database=name]`` → chDB through clickhouse-connect (the folder is created).
* ``http(s)://user:pass@host:8123/db`` → clickhouse-connect's HTTP client, compression on; the password may
  also come from ``CCSTREAM_CLICKHOUSE_PASSWORD`` (so it stays out of config files and process lists).

The database named in the DSN is created if missing and becomes the default of every statement, so the same
unqualified SQL runs on both. Why a database in a chDB DSN at all: a process can hold only ONE chDB data path
at a time ("EmbeddedServer already initialized with path A, cannot connect with different path B" while any
client of path A is open; chdb 4.4 with clickhouse-connect 1.12 lets another path open once all are closed),
and a data path may be opened by one process only, so tests and tools that need isolation inside one process
use databases on one path.

Errors come out as two kinds, because the sink treats them differently:
`ClickHouseUnavailable` (cannot reach or use the server right now: retry later, commit nothing) and
`ClickHouseRejected` (the server refused this statement or these rows: retrying the same input cannot help).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

PASSWORD_ENV = "CCSTREAM_CLICKHOUSE_PASSWORD"

# Server error codes that say "not now" rather than "not this": timeouts, overload, network, read-only
# replicas, missing schema while another process migrates, auth (a config problem, never the rows' fault).
TRANSIENT_CODES = frozenset({
    3,    # UNEXPECTED_END_OF_FILE
    32,   # ATTEMPT_TO_READ_AFTER_EOF
    81,   # UNKNOWN_DATABASE
    60,   # UNKNOWN_TABLE
    159,  # TIMEOUT_EXCEEDED
    164,  # READONLY
    192,  # UNKNOWN_USER
    193,  # WRONG_PASSWORD
    194,  # REQUIRED_PASSWORD
    195,  # IP_ADDRESS_NOT_ALLOWED
    202,  # TOO_MANY_SIMULTANEOUS_QUERIES
    203,  # NO_FREE_CONNECTION
    209,  # SOCKET_TIMEOUT
    210,  # NETWORK_ERROR
    225,  # NO_ZOOKEEPER
    236,  # ABORTED
    241,  # MEMORY_LIMIT_EXCEEDED
    242,  # TABLE_IS_READ_ONLY
    252,  # TOO_MANY_PARTS
    285,  # TOO_FEW_LIVE_REPLICAS
    394,  # QUERY_WAS_CANCELLED
    425,  # SYSTEM_ERROR
    439,  # CANNOT_SCHEDULE_TASK
    497,  # ACCESS_DENIED
    516,  # AUTHENTICATION_FAILED
    999,  # KEEPER_EXCEPTION
})


class ClickHouseError(RuntimeError):
    """Base of the two kinds below; `code` is ClickHouse's numeric error code when known."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ClickHouseUnavailable(ClickHouseError):
    """ClickHouse cannot be reached or cannot work right now; the same call may succeed later."""


class ClickHouseRejected(ClickHouseError):
    """ClickHouse refused the statement or the data; the same call will fail again."""


def classify(exc: BaseException) -> ClickHouseError:
    """Map a clickhouse-connect / chDB / socket error to Unavailable or Rejected."""
    from clickhouse_connect.driver import exceptions as cce

    if isinstance(exc, ClickHouseError):
        return exc
    msg = str(exc) or type(exc).__name__
    code = getattr(exc, "code", None)
    if isinstance(exc, OSError | TimeoutError | ConnectionError):
        return ClickHouseUnavailable(msg)
    if isinstance(exc, cce.OperationalError):  # transport failures, retried HTTP errors, closed connections
        return ClickHouseUnavailable(msg, code)
    if isinstance(exc, cce.DatabaseError):
        if code in TRANSIENT_CODES or ("closed" in msg.lower() and code is None):
            return ClickHouseUnavailable(msg, code)
        return ClickHouseRejected(msg, code)
    if isinstance(exc, cce.ProgrammingError) and "closed" in msg.lower():
        return ClickHouseUnavailable(msg)
    # serialising a value into its column type failed on our side (ValueError, TypeError, DataError...)
    return ClickHouseRejected(msg, code)


def _quote_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


class ClickHouse:
    """Thread-safe facade over one clickhouse-connect client (chDB's is not thread-safe: one lock for all)."""

    def __init__(self, client: Any, dsn: str, is_embedded: bool, database: str) -> None:
        self._client = client
        self._lock = threading.RLock()
        self.dsn = dsn
        self.is_embedded = is_embedded
        self.database = database
        # query_guarded's read-only settings once SET on this chDB session (None: not yet), and its verdicts
        self._pinned: dict[str, Any] | None = None
        self._verdicts: OrderedDict[tuple[str, bool, tuple[tuple[str, str], ...]], _Verdict] = OrderedDict()

    @contextmanager
    def _call(self) -> Iterator[Any]:
        with self._lock:
            if self._client is None:
                raise ClickHouseUnavailable(f"the ClickHouse client for {redact_dsn(self.dsn)} is closed")
            try:
                yield self._client
            except Exception as exc:
                raise classify(exc) from exc

    def query_rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self._call() as c:
            return [tuple(r) for r in c.query(sql, parameters=parameters).result_rows]

    def query_dicts(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        with self._call() as c:
            return list(c.query(sql, parameters=parameters).named_results())

    def command(self, sql: str, parameters: dict[str, Any] | None = None,
                settings: dict[str, Any] | None = None) -> Any:
        with self._call() as c:
            return c.command(sql, parameters=parameters, settings=settings)

    def insert(self, table: str, rows: list[tuple[Any, ...]] | list[list[Any]], column_names: list[str],
               settings: dict[str, Any] | None = None) -> None:
        if not rows:
            return
        with self._call() as c:
            c.insert(table, rows, column_names=column_names, settings=settings)

    def query_formatted(self, sql: str, fmt: str, parameters: dict[str, Any] | None = None,
                        settings: dict[str, Any] | None = None) -> bytes:
        """Raw output in a ClickHouse output format (JSONEachRow, CSVWithNames, PrettyCompact, ...)."""
        with self._call() as c:
            return bytes(c.raw_query(sql, parameters=parameters, fmt=fmt, settings=settings))

    def query_guarded(self, sql: str, fmt: str, parameters: dict[str, Any] | None = None, *,
                      write: bool = False, limits: QueryLimits | None = None) -> bytes:
        """A user's query (`ccstream sql`, the worker's API): one statement, nothing that reaches files, URLs,
        other servers or programs, read-only unless `write`, within `limits`. What runs is ClickHouse's own
        formatting of the statement that was checked. Raises UnsafeQuery (a ClickHouseRejected).

        Every statement is checked; the verdict on one statement text with the same parameters (a pure
        function of them: ClickHouse's formatter and parser) is remembered by this client, so a dashboard or a
        CLI asking the same question again pays for the check once."""
        limits = limits or QueryLimits()
        if not _FORMAT_NAME.fullmatch(fmt):  # appended as "FORMAT <fmt>": it must not carry SQL of its own
            raise UnsafeQuery(f"unknown output format {fmt[:40]!r}")
        for key in parameters or {}:
            if not _PARAM_NAME.fullmatch(str(key)):
                raise UnsafeQuery(f"bad parameter name {str(key)[:40]!r}")
        # chDB keeps `readonly` on the client once set, so a client used for writes must never get it
        checks = self._per_call(query_settings(limits, write))
        verdict = self._verdict(sql, parameters, write, checks)
        if verdict.refusal is not None:
            raise UnsafeQuery(verdict.refusal)
        if verdict.rows:
            return self.query_formatted(verdict.single, fmt, parameters, settings=checks)
        # DDL, INSERT ... SELECT, OPTIMIZE, ...: nothing to format (an appended FORMAT would not parse)
        self.command(verdict.single, parameters, settings=checks)
        return b""

    def _verdict(self, sql: str, parameters: dict[str, Any] | None, write: bool,
                 checks: dict[str, Any] | None) -> _Verdict:
        """ClickHouse's one-line formatting of `sql`, whether it must be refused and whether it answers rows.
        The parser, not a regex, says what the statement is: the SQL travels as a parameter value. Parameters
        are part of the key: EXPLAIN AST substitutes them (an Identifier parameter names a table)."""
        key = (sql, write, tuple(sorted((str(k), f"{type(v).__qualname__}:{v!r}")
                                        for k, v in (parameters or {}).items())))
        with self._lock:
            known = self._verdicts.get(key)
            if known is not None:
                self._verdicts.move_to_end(key)
                return known
        single = self.query_formatted("SELECT formatQuerySingleLine({q:String})", "TSVRaw", {"q": sql},
                                      settings=checks).decode().rstrip("\n")
        ast = self.query_formatted("EXPLAIN AST " + single, "TSVRaw", parameters, settings=checks).decode()
        verdict = _Verdict(single, refusal(ast, single), ast.lstrip().startswith(ROW_STATEMENTS))
        with self._lock:
            self._verdicts[key] = verdict
            while len(self._verdicts) > VERDICTS_KEPT:
                self._verdicts.popitem(last=False)
        return verdict

    def _per_call(self, settings: dict[str, Any]) -> dict[str, Any] | None:
        """The settings to send with each call of a guarded query, or None where they are this chDB session's
        own already. clickhouse-connect applies a call's settings to chDB by reading them from system.settings,
        SETting each and SETting them back (about 10 ms a call); a read-only session could not set them back
        anyway (`readonly` forbids it), so the read-only settings are SET once, `readonly` last, and stay."""
        if not self.is_embedded or settings.get("readonly") != 1:
            return settings
        with self._lock:
            if self._pinned == settings:
                return None
            if self._pinned is not None:  # other limits on a read-only session: ClickHouse refuses them
                return settings
            with self._call() as c:
                for name, value in settings.items():
                    if not _PARAM_NAME.fullmatch(name):
                        raise UnsafeQuery(f"bad setting name {name[:40]!r}")
                    c.command(f"SET {name} = {_setting_literal(value)}")
            self._pinned = dict(settings)
            return None

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # closing must never mask the caller's own error
                client.close()


@dataclass(frozen=True)
class QueryLimits:
    """What one user query may take (ClickHouse enforces them; a read-only query cannot change them)."""

    max_seconds: float = 60.0
    max_result_rows: int = 5_000_000
    max_result_bytes: int = 1024 * 1024 * 1024


def query_settings(limits: QueryLimits, write: bool) -> dict[str, Any]:
    """Per-query settings of a user query. `readonly` comes last: once it is set, no later setting of the
    same request may be changed (ClickHouse applies them in order), and neither may the query's SETTINGS."""
    out: dict[str, Any] = {
        "max_execution_time": limits.max_seconds,
        "timeout_overflow_mode": "throw",
        "max_result_rows": limits.max_result_rows,
        "max_result_bytes": limits.max_result_bytes,
        "result_overflow_mode": "throw",
    }
    if not write:
        out["readonly"] = 1
    return out


VERDICTS_KEPT = 256  # guard verdicts remembered per client (the statement texts of a dashboard and the CLI)


@dataclass(frozen=True, slots=True)
class _Verdict:
    single: str  # ClickHouse's one-line formatting: what runs
    refusal: str | None  # why it must not run, None when it may
    rows: bool  # a statement that answers rows (else it runs as a command)


def _setting_literal(value: Any) -> str:
    """A setting's value as SQL (numbers as they are, text quoted)."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


class UnsafeQuery(ClickHouseRejected):
    """A user query that was refused before it ran; the message says why."""


# Functions, table functions, engines and backup targets that reach outside the store: files, URLs, object
# stores, other servers and databases, programs, message queues, disks. Matched on ClickHouse's own AST,
# lower-cased. readonly=1 already refuses table functions; this also covers the scalar `file()` (readonly does
# not stop it), engines of CREATE TABLE and writes with --write.
OUTSIDE_FUNCTIONS = frozenset({
    "file", "filecluster", "url", "urlcluster", "s3", "s3cluster", "gcs", "oss", "cosn", "azureblobstorage",
    "azureblobstoragecluster", "hdfs", "hdfscluster", "remote", "remotesecure", "cluster", "clusterallreplicas",
    "executable", "executablepool", "mysql", "postgresql", "materializedpostgresql", "materializedmysql",
    "sqlite", "odbc", "jdbc", "mongodb", "redis", "hive", "input", "distributed", "kafka", "rabbitmq", "nats",
    "filelog", "s3queue", "azurequeue", "disk", "ytsaurus", "arrowflight", "http", "clickhouse",
    "exttable", "externaldistributed", "embeddedrocksdb", "keepermap", "dictionary",
})
OUTSIDE_PREFIXES = ("iceberg", "deltalake", "hudi", "paimon", "datalake", "s3", "azureblob", "hdfs")
# statements refused even with --write: they write files, change the session or the server
REFUSED_STATEMENTS = ("BackupQuery", "RestoreQuery", "SYSTEM", "SetQuery", "Set", "UseQuery", "KillQueryQuery",
                      "CreateUserQuery", "GrantQuery", "CreateSQLFunctionQuery", "CreateNamedCollectionQuery",
                      "AlterNamedCollectionQuery")


_CALL = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_FORMAT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_FILE_CLAUSE = re.compile(r"\b(INTO\s+OUTFILE|FROM\s+INFILE)\b", re.IGNORECASE)
_QUOTED = re.compile(r"'(?:\\.|[^'\\])*'|`(?:\\.|[^`\\])*`|\"(?:\\.|[^\"\\])*\"", re.DOTALL)


# statements whose answer is rows (the rest run as commands)
ROW_STATEMENTS = ("SelectWithUnionQuery", "SelectIntersectExceptQuery", "Show", "Describe", "Exists", "Explain",
                  "Check")


def refusal(ast: str, formatted: str = "") -> str | None:
    """Why a statement must not run, from its `EXPLAIN AST` text and ClickHouse's one-line formatting of it
    (quoting normalised, comments gone); None when it may (pure)."""
    lines = [ln for ln in ast.splitlines() if ln.strip()]
    if not lines:
        return "empty statement"
    bare = _QUOTED.sub("''", formatted)
    if re.match(r"\s*(ATTACH|DETACH)\b", bare, re.IGNORECASE):
        return "ATTACH/DETACH take tables from paths or hide them; not allowed through ccstream"
    if _FILE_CLAUSE.search(bare):
        return "INTO OUTFILE / FROM INFILE read or write files; not allowed through ccstream"
    # functions the AST text does not show (inside SETTINGS, e.g. disk = disk(type = local, path = ...))
    for m in _CALL.finditer(bare):
        name = m.group(1).lower()
        if name in OUTSIDE_FUNCTIONS or name.startswith(OUTSIDE_PREFIXES):
            return f"{m.group(1)}() reaches files, URLs, other servers or programs; ccstream's SQL reads the store only"
    root = lines[0].strip().split(" ")[0]
    if any(root == r or root.startswith(r) for r in REFUSED_STATEMENTS):
        return f"{root} statements are not allowed through ccstream"
    if root == "InsertQuery" and not any(ln.strip().startswith("SelectWithUnionQuery") for ln in lines):
        # inline data (VALUES, FORMAT ...) is not SQL: the parser does not see it, and it could carry a second
        # statement after a ';'. INSERT ... SELECT * FROM values('x Int8', 1, 2) does the same job.
        return ("INSERT with inline data is not accepted; write INSERT INTO t SELECT ... "
                "(for literal rows: SELECT * FROM values('x Int8, s String', (1, 'a'), (2, 'b')))")
    for ln in lines[1:]:
        depth = len(ln) - len(ln.lstrip(" "))
        words = ln.split()
        if depth == 1 and words[0] == "Literal" and root in ("SelectWithUnionQuery", "InsertQuery"):
            return "INTO OUTFILE / FROM INFILE read or write files; not allowed through ccstream"
        if words[0] == "Dictionary" and len(words) > 1 and words[1] == "definition":
            return "dictionaries load from outside the store; not allowed through ccstream"
        if words[0] in ("Function", "FunctionWithKeyValueArguments", "TableFunction") and len(words) > 1:
            name = words[1].lower()
            if name in OUTSIDE_FUNCTIONS or name.startswith(OUTSIDE_PREFIXES):
                return (f"{words[1]}() reaches files, URLs, other servers or programs; ccstream's SQL reads the "
                        "store only")
    return None


def redact_dsn(dsn: str) -> str:
    """The DSN without its password, for logs and error messages."""
    u = urlparse(dsn)
    if u.password is None:
        return dsn
    netloc = f"{u.username}:***@{u.hostname}" + (f":{u.port}" if u.port else "")
    return u._replace(netloc=netloc).geturl()


def _ensure_database(client: Any, database: str) -> None:
    """Create the DSN's database if missing, then make it the default of every statement."""
    exists = client.command("SELECT count() FROM system.databases WHERE name = {db:String}",
                            parameters={"db": database})
    if not int(exists):
        client.command(f"CREATE DATABASE IF NOT EXISTS {_quote_ident(database)}")
    client.database = database


# the embedded engine's server settings. Its MemoryWorker reads the process's RSS every 50-100 ms to correct
# the memory tracker: 0.3 % of a core on an idle stack; once a second is plenty for a single-user store.
# Merges: 4 at once, not 16, on a machine of a few cores; a backfill's sink spent less CPU per MB (53 against
# 57-63 ms/MB) for ~80 MB more RSS (docs/benchmarks.md, backfill).
CHDB_OPTIONS = {"memory_worker_period_ms": 1000, "background_pool_size": 4}
# chDB's own jemalloc (read when the library loads, so set before the first chDB import): its dirty pages go
# back to the system after 0.5 s (compiled in: 5 s, without the background thread that returns them), so the
# memory of one batch is not still held when the next arrives. A backfill's sink peaked at 1.57 GB RSS without
# it, 1.21 GB with it, at the same CPU; 0 ms (immediate) cost a third more CPU (docs/benchmarks.md, backfill).
CHDB_MALLOC_CONF = "background_thread:true,dirty_decay_ms:500,muzzy_decay_ms:0"


def connect(dsn: str) -> ClickHouse:
    """A client for the DSN; raises ClickHouseUnavailable when the store cannot be opened or reached."""
    import clickhouse_connect

    u = urlparse(dsn)
    query = {k: v[-1] for k, v in parse_qs(u.query).items()}
    if u.scheme == "chdb":
        # chdb:///abs/path: the path is the location (chdb://host/... forms are not ours)
        path = unquote(u.path)
        if u.netloc or not path.startswith("/"):
            raise ValueError(f"chDB DSN must be chdb:///absolute/path[?database=name], not {dsn!r}")
        database = query.get("database") or "default"
        Path(path).mkdir(parents=True, exist_ok=True)
        if "chdb" not in sys.modules:  # the user's own JE_MALLOC_CONF wins
            os.environ.setdefault("JE_MALLOC_CONF", CHDB_MALLOC_CONF)
        try:
            client = clickhouse_connect.get_client(dsn=f"chdb://{path}", chdb_options=CHDB_OPTIONS)
            _ensure_database(client, database)
        except Exception as exc:
            err = classify(exc)
            raise ClickHouseUnavailable(f"cannot open chDB store {path}: {err}", err.code) from exc
        return ClickHouse(client, dsn, True, database)
    if u.scheme in ("http", "https"):
        database = unquote(u.path.strip("/")) or query.get("database") or "default"
        password = unquote(u.password) if u.password is not None else os.environ.get(PASSWORD_ENV, "")
        try:
            client = clickhouse_connect.get_client(
                host=u.hostname or "localhost",
                port=u.port or (8443 if u.scheme == "https" else 8123),
                username=unquote(u.username) if u.username else "default",
                password=password,
                secure=u.scheme == "https",
                compress=True,
                connect_timeout=10,
                send_receive_timeout=300,
            )
            _ensure_database(client, database)
        except Exception as exc:
            err = classify(exc)
            kind = ClickHouseRejected if isinstance(err, ClickHouseRejected) else ClickHouseUnavailable
            raise kind(f"cannot connect to ClickHouse at {redact_dsn(dsn)}: {err}", err.code) from exc
        return ClickHouse(client, dsn, False, database)
    raise ValueError(f"unsupported ClickHouse DSN {redact_dsn(dsn)!r}: use chdb:///path or http(s)://host:8123/db")
