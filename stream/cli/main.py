"""The `ccstream` command. Each subcommand lives in its own module and is imported only when used, so
`ccstream hook` (run by Claude Code on every event) imports nothing heavy."""

from __future__ import annotations

import importlib
import os
import sys

# name -> (module, function, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "up": ("stream.stack.up", "main", "run the whole pipeline on this machine (Redis, Kafka, worker, chDB)"),
    "sql": ("stream.cli.sql", "main", "run SQL against the ClickHouse store (while `up` runs, or not)"),
    "sessions": ("stream.cli.analytics", "main_sessions", "list sessions with tokens, cost, tools"),
    "show": ("stream.cli.analytics", "main_show", "replay one session's conversation"),
    "tokens": ("stream.cli.analytics", "main_tokens", "token usage and cost by day, session, model, project"),
    "tools": ("stream.cli.analytics", "main_tools", "tool calls: counts, errors, durations"),
    "status": ("stream.cli.analytics", "main_status", "pipeline health: lag, followed files, dead letters"),
    "hook": ("stream.capture.hook", "main", "(run by Claude Code) capture one hook event from stdin"),
    "hooks": ("stream.capture.hooks_settings", "main", "install, uninstall or check ccstream's Claude Code hooks"),
    "bridge": ("stream.capture.bridge", "main", "move hook events from the Redis stream to Kafka"),
    "worker": ("stream.stack.worker", "main", "run a Faust worker (edge and/or sink role)"),
    "edge": ("stream.stack.worker", "main_edge", "run the edge role (tailer + bridge): follow this machine's transcripts"),
    "sink": ("stream.stack.worker", "main_sink", "run the sink role: Kafka to ClickHouse"),
    "db": ("stream.cli.db", "main", "schema migrations: `db migrate`, `db status`"),
}


def usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: ccstream <command> [options]   (ccstream <command> --help for each)", "",
             "Claude Code sessions → Redis → Kafka → Faust → ClickHouse, queried in SQL.", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "Start with `make up` (or `ccstream up`), then `ccstream sql \"SELECT count() FROM "
              "claude_raw_traces FINAL\"`.", "Settings: CCSTREAM_* environment variables or "
              "~/.ccstream/config.toml (docs/operations.md)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "hook":  # the hot path: nothing else is imported
        from stream.capture.hook import main as hook_main

        return hook_main(args[1:])
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if args[0] in ("-V", "--version"):
        from importlib.metadata import version

        print(f"ccstream {version('ccstream')}")
        return 0
    entry = COMMANDS.get(args[0])
    if entry is None:
        print(f"ccstream: unknown command {args[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module, func, _ = entry
    fn = getattr(importlib.import_module(module), func)
    try:
        return int(fn(args[1:]) or 0)
    except BrokenPipeError:
        # the reader went away (`ccstream sessions --json | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
