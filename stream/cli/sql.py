"""`ccstream sql`: run SQL against the store and print it as a table, JSON lines or CSV."""

from __future__ import annotations

import argparse
import sys

from stream.analytics.sqlclient import FORMATS, QueryError, run_formatted
from stream.config import load_settings


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
    p.add_argument("--format", "-f", choices=sorted(FORMATS), default="table", help="output format (default table)")
    p.add_argument("--write", action="store_true",
                   help="allow statements that change the store: INSERT, CREATE/ALTER/DROP/TRUNCATE/RENAME, "
                        "OPTIMIZE, DELETE (through the running worker with its token, or on the store directly "
                        "when `ccstream up` is not running). Still never file(), url() and the like, "
                        "SET, SYSTEM or BACKUP. Dropping a table loses its rows for good.")
    args = p.parse_args(argv)
    sql = sys.stdin.read() if args.query == "-" else args.query
    try:
        out = run_formatted(load_settings(), sql, FORMATS[args.format], write=args.write)
    except QueryError as exc:
        print(f"ccstream sql: {exc}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(out)
    if out and not out.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")
    return 0
