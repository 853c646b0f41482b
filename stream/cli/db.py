"""`ccstream db migrate|status`: the schema's versioned migrations."""

from __future__ import annotations

import argparse
import json
import sys

from stream.config import load_settings


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="ccstream db",
        description="Apply or list ClickHouse schema migrations. Migrations are idempotent and also run "
                    "whenever a sink worker starts. With the embedded store, stop `ccstream up` first "
                    "(it owns the store and has already migrated it).")
    p.add_argument("--json", action="store_true", help="print JSON")
    # --json also after the subcommand (`db status --json`); SUPPRESS keeps a value given before it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    sub = p.add_subparsers(dest="action", required=True, metavar="{migrate,status}")
    sub.add_parser("migrate", parents=[common], help="apply every pending migration",
                   description="Apply every pending schema migration to the store (idempotent).")
    sub.add_parser("status", parents=[common], help="list migrations and whether each is applied",
                   description="List the schema migrations, each with its version, name and whether it is "
                               "applied.")
    args = p.parse_args(argv)

    from stream.stack.up import is_running
    from stream.store.client import connect
    from stream.store.schema import migrate, status

    settings = load_settings()
    dsn = settings.effective_clickhouse_dsn
    if dsn.startswith("chdb:") and is_running(settings):
        print("ccstream db: ccstream up is running and owns the embedded store (it migrates at start); "
              "stop it first, or query with `ccstream sql \"SELECT * FROM schema_migrations\"`",
              file=sys.stderr)
        return 1
    ch = connect(dsn)
    try:
        if args.action == "migrate":
            applied = migrate(ch)
            print(json.dumps({"applied": applied}) if args.json
                  else (f"applied migrations {applied}" if applied else "schema is up to date"))
        else:
            rows = status(ch)
            if args.json:
                print(json.dumps(rows, default=str))
            else:
                for r in rows:
                    print("  ".join(f"{k}={v}" for k, v in r.items()))
    finally:
        ch.close()
    return 0
