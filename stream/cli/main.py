"""The `ccstream` command. Each subcommand lives in its own module and is imported only when used, so
`ccstream hook` (run by Claude Code on every event) imports nothing heavy.

What is the same for every subcommand lives here: `--debug` (anywhere on the line: show the traceback of a
failure), `ccstream version`, "did you mean" for a mistyped command, and one line on stderr, exit status 1,
for a mistake a user can fix (a bad setting, an unusable data dir, no Kafka configured for `edge`/`sink`)
instead of a traceback.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from pathlib import Path

# name -> (module, function, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "up": ("stream.stack.up", "main", "run the whole pipeline on this machine (Redis, Kafka, worker, chDB)"),
    "status": ("stream.cli.analytics", "main_status", "pipeline health: caught up or behind, lag, dead letters"),
    "sql": ("stream.cli.sql", "main", "run SQL against the ClickHouse store (while `up` runs, or not)"),
    "sessions": ("stream.cli.analytics", "main_sessions", "list sessions with tokens, cost, tools"),
    "show": ("stream.cli.analytics", "main_show", "replay one session's conversation"),
    "tokens": ("stream.cli.analytics", "main_tokens",
               "token usage and cost by day, week, month, session, model, project"),
    "blocks": ("stream.cli.analytics", "main_blocks", "5-hour billing windows: usage, burn rate, projection"),
    "tools": ("stream.cli.analytics", "main_tools", "tool calls: counts, errors, durations"),
    "hook": ("stream.capture.hook", "main", "(run by Claude Code) capture one hook event from stdin"),
    "hooks": ("stream.capture.hooks_settings", "main", "install, uninstall or check ccstream's Claude Code hooks"),
    "service": ("stream.stack.service", "main", "run `ccstream up` as a systemd user unit or a launchd agent"),
    "bridge": ("stream.capture.bridge", "main", "move hook events from the Redis stream to Kafka"),
    "worker": ("stream.stack.worker", "main", "run a Faust worker (edge and/or sink role)"),
    "edge": ("stream.stack.worker", "main_edge", "run the edge role (tailer + bridge): follow this machine's transcripts"),
    "sink": ("stream.stack.worker", "main_sink", "run the sink role: Kafka to ClickHouse"),
    "db": ("stream.cli.db", "main", "schema migrations: `db migrate`, `db status`"),
    "version": ("stream.cli.main", "main_version", "print ccstream's version"),
}

# commands that keep state in the data dir (chDB, Redis, Faust tables, run files) when the store is embedded
_USES_DATA_DIR = {"up", "worker", "edge", "sink", "status", "sql", "sessions", "show", "tokens", "blocks", "tools",
                  "db"}
_NEEDS_KAFKA = {"edge", "sink"}


class UserError(Exception):
    """A mistake the user can fix; the message is one line that says what is wrong and what to do."""


def usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: ccstream <command> [options]   (ccstream <command> --help for each)", "",
             "Claude Code sessions → Redis → Kafka → Faust → ClickHouse, queried in SQL.", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "options for every command: --debug (show the traceback of a failure), --help",
              "", "Start with `make up` (or `ccstream up`), then `ccstream sessions` or `ccstream sql \"SELECT "
              "count() FROM claude_raw_traces FINAL\"`.", "Settings: CCSTREAM_* environment variables or "
              "~/.ccstream/config.toml (docs/operations.md)."]
    return "\n".join(lines)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return f"ccstream {dist_version('ccstream')}"
    except PackageNotFoundError:
        return "ccstream (not installed as a package)"


def main_version(argv: list[str] | None = None) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print("usage: ccstream version\n\nPrint ccstream's version.")
        return 0
    print(version())
    return 0


def suggest(name: str) -> str:
    """' (did you mean `ccstream tokens`?)' for a near miss, else ''."""
    close = difflib.get_close_matches(name, list(COMMANDS), n=2, cutoff=0.75)
    if not close:
        close = [c for c in COMMANDS if c.startswith(name)] if len(name) >= 2 else []
    return f"; did you mean {' or '.join(f'`ccstream {c}`' for c in close[:2])}?" if close else ""


def check_data_dir(path: Path) -> None:
    """The data dir must be a directory we can write (created when missing, as every command that keeps
    state would create it anyway); say which and what to do otherwise."""
    fix = "set CCSTREAM_DATA_DIR to a directory you can write (default ~/.ccstream)"
    if path.exists() and not path.is_dir():
        raise UserError(f"the data dir {path} is not a directory; {fix}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"the data dir {path} cannot be created ({exc.strerror or exc}); {fix}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"the data dir {path} is not writable by this user; {fix}")


def preflight(command: str, args: list[str]) -> None:
    """Settings, data dir and Kafka checks before a command runs (so a mistake is one line, not a traceback
    from deep inside a server start)."""
    if command not in _USES_DATA_DIR or any(a in ("-h", "--help") for a in args):
        return
    from stream.config import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        raise UserError(f"{exc} (fix the setting, or unset it to get the default)") from exc
    if command == "up" or command in _NEEDS_KAFKA or settings.effective_clickhouse_dsn.startswith("chdb:"):
        data_dir = settings.data_dir
        if command == "up" and "--data-dir" in args[:-1]:
            data_dir = Path(args[args.index("--data-dir") + 1]).expanduser()
        check_data_dir(data_dir)
    if command in _NEEDS_KAFKA and not settings.kafka_bootstrap:
        raise UserError(f"`ccstream {command}` needs a Kafka cluster and none is configured: set "
                        "CCSTREAM_KAFKA_BOOTSTRAP=host:9092 (and CCSTREAM_KAFKA_SECURITY_PROTOCOL etc. if it "
                        "needs them), or run `ccstream up` to run everything on this machine")


def _strip_debug(args: list[str]) -> tuple[list[str], bool]:
    # `--debug` belongs to ccstream, never to a subcommand, and only before a `--` (a query may contain it)
    end = args.index("--") if "--" in args else len(args)
    debug = "--debug" in args[:end]
    return [a for i, a in enumerate(args) if not (a == "--debug" and i < end)], debug


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "hook":  # the hot path: nothing else is imported
        from stream.capture.hook import main as hook_main

        return hook_main(args[1:])
    args, debug = _strip_debug(list(args))
    debug = debug or os.environ.get("CCSTREAM_DEBUG", "") not in ("", "0")
    if not args or args[0] in ("-h", "--help", "help"):
        if len(args) > 1 and args[0] == "help" and args[1] in COMMANDS:  # `ccstream help tokens`
            args = [args[1], "--help"]
        else:
            print(usage())
            return 0
    if args[0] in ("-V", "--version"):
        return main_version([])
    entry = COMMANDS.get(args[0])
    if entry is None:
        print(f"ccstream: unknown command {args[0]!r}{suggest(args[0])} (`ccstream --help` lists them)",
              file=sys.stderr)
        return 2
    command = args[0]
    module, func, _ = entry
    try:
        preflight(command, args[1:])
        fn = getattr(importlib.import_module(module), func)
        return int(fn(args[1:]) or 0)
    except BrokenPipeError:
        # the reader went away (`ccstream sessions --json | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    except SystemExit:
        raise  # argparse's own errors and --help
    except Exception as exc:
        if debug:
            raise
        from stream.config import ConfigError

        hint = "" if isinstance(exc, UserError | ConfigError) else " (--debug shows the traceback)"
        print(f"ccstream {command}: {one_line(exc)}{hint}", file=sys.stderr)
        return 1


def one_line(exc: BaseException) -> str:
    """What went wrong, in one line a user can act on."""
    from stream.config import ConfigError

    if isinstance(exc, UserError | ConfigError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, PermissionError | NotADirectoryError | IsADirectoryError | FileExistsError
                  | FileNotFoundError):
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        return (f"cannot use{where}: {exc.strerror or exc}; check CCSTREAM_DATA_DIR and the paths in the "
                "config file")
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'no message'}"


if __name__ == "__main__":
    sys.exit(main())
