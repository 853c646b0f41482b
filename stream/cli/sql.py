"""`ccstream sql`: run SQL against the store and print it as a table, one JSON document, JSON lines or CSV.

A query that ends in its own ``FORMAT <name>`` (ClickHouse users type it out of habit) is printed in that
format: the clause is taken off and its name used as the output format, since the transport adds its own.
"""

from __future__ import annotations

import argparse
import re
import sys

from stream.analytics.sqlclient import FORMATS, QueryError, run_formatted
from stream.config import load_settings

# --format name -> ClickHouse output format; "json" is one document (an array of row objects), built from
# JSONEachRow so it streams from the same code path
OUTPUT_FORMATS = {**FORMATS, "json": "JSONEachRow", "ndjson": "JSONEachRow"}

# a trailing FORMAT clause, optionally followed by a semicolon and/or a line comment
_OWN_FORMAT = re.compile(r"\bFORMAT\s+([A-Za-z][A-Za-z0-9_]*)\s*;?\s*(--[^\n]*)?\s*$", re.IGNORECASE)


def split_format(sql: str) -> tuple[str, str | None]:
    """(the query without its trailing FORMAT clause, that format's name) or (sql, None). Pure."""
    m = _OWN_FORMAT.search(sql)
    if m is None or _inside_string(sql, m.start()):
        return sql, None
    return sql[:m.start()].rstrip().rstrip(";").rstrip(), m.group(1)


def _inside_string(sql: str, pos: int) -> bool:
    """True when ``pos`` lies inside a quoted literal (an odd number of unescaped quotes before it)."""
    quotes = re.findall(r"(?<!\\)'", sql[:pos])
    return len(quotes) % 2 == 1


def as_document(ndjson: bytes) -> bytes:
    """JSONEachRow output → one JSON array of the row objects."""
    lines = [line for line in ndjson.splitlines() if line.strip()]
    return b"[" + b",\n".join(lines) + b"]\n" if lines else b"[]\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="ccstream sql",
        description="Run one SQL statement against ccstream's ClickHouse store. While `ccstream up` runs the "
                    "query goes to its worker (which owns the embedded store); otherwise the store is opened "
                    "directly. Tables: claude_raw_traces (use FINAL for exact counts), session_events, "
                    "dead_letters, file_checkpoints, and the views in docs/clickhouse-schema.md. Read-only: "
                    "SELECT, SHOW, DESCRIBE, EXPLAIN. Never file(), url(), s3(), remote(), executable() and the "
                    "like, nor INTO OUTFILE: the store is all it reads. A query is cut after "
                    "CCSTREAM_SQL_MAX_SECONDS (60) or past CCSTREAM_SQL_MAX_RESULT_ROWS/_BYTES.")
    p.add_argument("query", help="the SQL, e.g. \"SELECT count() FROM claude_raw_traces FINAL\" ('-' reads stdin)")
    p.add_argument("--format", "-f", choices=sorted(OUTPUT_FORMATS), default=None,
                   help="table (default), json (one document: an array of rows), ndjson (a JSON object per "
                        "line), csv or tsv; a query's own trailing FORMAT clause is used when given")
    p.add_argument("--write", action="store_true",
                   help="allow statements that change the store: INSERT, CREATE/ALTER/DROP/TRUNCATE/RENAME, "
                        "OPTIMIZE, DELETE (through the running worker with its token, or on the store directly "
                        "when `ccstream up` is not running). Still never file(), url() and the like, "
                        "SET, SYSTEM or BACKUP. Dropping a table loses its rows for good.")
    args = p.parse_args(argv)
    sql = sys.stdin.read() if args.query == "-" else args.query
    sql, own = split_format(sql)
    if own is not None and args.format is not None:
        p.error(f"the query says FORMAT {own} and --format says {args.format}: keep one")
    name = args.format or "table"
    fmt = own or OUTPUT_FORMATS[name]
    try:
        out = run_formatted(load_settings(), sql, fmt, write=args.write)
    except QueryError as exc:
        print(f"ccstream sql: {exc}", file=sys.stderr)
        return 1
    if own is None and name == "json":
        out = as_document(out)
    sys.stdout.buffer.write(out)
    if out and not out.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")
    return 0
