"""`ccstream hooks install|uninstall|status`: put ccstream's hook into Claude Code's settings.json, or take it out.

The merge is pure (``merge``/``unmerge`` take and return the parsed settings) so the tests can state exact
JSON. Rules: every other hook and setting stays as it was; a ccstream handler is recognised by its command
(``<path>/ccstream hook``), so installing again, or from another path, replaces ours instead of adding a second
one; the file is written only when it changes, atomically, after a backup of the previous content.

SessionStart is installed without a matcher (all sources: startup, resume, clear, compact, fork); SessionEnd and
SubagentStop likewise. The timeout is short: the hook answers in tens of milliseconds, and a large SessionEnd
timeout would raise the budget Claude Code waits on exit.

``--otel`` also points Claude Code's own OpenTelemetry at ccstream's OTLP receiver: the ``env`` block
(CLAUDE_CODE_ENABLE_TELEMETRY, the OTEL_* exporter, protocol and endpoint variables; docs/otel.md). What each
variable held before is kept in ``<file>.ccstream-otel.json``, so uninstall restores it; a variable changed by
hand since is left alone.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from stream.capture import spool
from stream.config import Settings, load_settings

EVENTS = ("SessionStart", "SessionEnd", "SubagentStop")
DEFAULT_TIMEOUT = 5  # seconds
SCOPES = ("user", "project", "local")
BACKUP_SUFFIX = ".ccstream-backup"

# `…/ccstream hook` (optionally quoted, optionally with arguments after `hook`) or `… -m stream.capture.hook` (`stream.hook` before 0.2)
_OURS = re.compile(r"""(^|[\s/"'])ccstream(\.exe)?["']?\s+hook(\s|$)|-m\s+stream(\.capture)?\.hook(\s|$)""")


class SettingsFileError(ValueError):
    """The settings file cannot be read as a JSON object; nothing is written."""


# ---- pure logic -------------------------------------------------------------------------------------------


def is_ours(handler: Any) -> bool:
    return (isinstance(handler, dict) and handler.get("type", "command") == "command"
            and isinstance(handler.get("command"), str) and bool(_OURS.search(handler["command"])))


def hook_command(executable: str) -> str:
    return f"{shlex.quote(executable)} hook"


def our_group(command: str, timeout: int = DEFAULT_TIMEOUT) -> dict[str, Any]:
    return {"hooks": [{"type": "command", "command": command, "timeout": timeout}]}


def _without_ours(groups: list[Any]) -> tuple[list[Any], int | None]:
    """The groups with our handlers removed (groups left empty by that dropped), and the index where the
    first group holding only our handler stood (so a reinstall keeps its place)."""
    out: list[Any] = []
    place: int | None = None
    for group in groups:
        handlers = group.get("hooks") if isinstance(group, dict) else None
        if not isinstance(handlers, list) or not any(is_ours(h) for h in handlers):
            out.append(group)
            continue
        kept = [h for h in handlers if not is_ours(h)]
        if kept:
            out.append({**group, "hooks": kept})
        elif place is None:
            place = len(out)
    return out, place


def merge(doc: dict[str, Any], command: str, timeout: int = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """``doc`` with ccstream's handler on each of EVENTS (exactly once), everything else unchanged."""
    new = copy.deepcopy(doc)
    hooks = new.get("hooks")
    if not isinstance(hooks, dict):
        if hooks is not None:
            raise SettingsFileError(f'"hooks" is a {type(hooks).__name__}, expected an object')
        hooks = new["hooks"] = {}
    for event in EVENTS:
        groups = hooks.get(event, [])
        if not isinstance(groups, list):
            raise SettingsFileError(f'"hooks.{event}" is a {type(groups).__name__}, expected a list')
        kept, place = _without_ours(groups)
        kept.insert(len(kept) if place is None else place, our_group(command, timeout))
        hooks[event] = kept
    return new


def unmerge(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` without any ccstream handler; event lists and the hooks object that only we filled go away."""
    new = copy.deepcopy(doc)
    hooks = new.get("hooks")
    if not isinstance(hooks, dict):
        return new
    for event in list(hooks):
        groups = hooks[event]
        if not isinstance(groups, list):
            continue
        kept, _ = _without_ours(groups)
        if len(kept) == len(groups) and kept == groups:
            continue
        if kept:
            hooks[event] = kept
        else:
            del hooks[event]
    if not hooks and doc.get("hooks"):
        del new["hooks"]
    return new


def installed_events(doc: dict[str, Any]) -> dict[str, list[str]]:
    """Event name → the ccstream commands found there."""
    found: dict[str, list[str]] = {}
    hooks = doc.get("hooks")
    if not isinstance(hooks, dict):
        return found
    for event, groups in hooks.items():
        for group in groups if isinstance(groups, list) else []:
            handlers = group.get("hooks") if isinstance(group, dict) else None
            for h in handlers if isinstance(handlers, list) else []:
                if is_ours(h):
                    found.setdefault(event, []).append(h["command"])
    return found


OTEL_SIDECAR_SUFFIX = ".ccstream-otel.json"


def otel_env(endpoint: str, token: str | None = None, protocol: str = "http/protobuf") -> dict[str, str]:
    """The variables Claude Code reads to export its metrics and events (as logs) over OTLP to `endpoint`."""
    env = {
        "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint.rstrip("/"),
    }
    if token:
        env["OTEL_EXPORTER_OTLP_HEADERS"] = f"Authorization=Bearer {token}"
    return env


def merge_env(doc: dict[str, Any], wanted: dict[str, str],
              previous: dict[str, str | None] | None = None) -> tuple[dict[str, Any], dict[str, str | None]]:
    """``doc`` with `wanted` in its ``env`` block, and what each of those variables held before (None: unset).
    `previous` from an earlier install is kept for variables it already covers, so installing twice still
    restores the original values."""
    new = copy.deepcopy(doc)
    env = new.get("env")
    if env is None:
        env = new["env"] = {}
    if not isinstance(env, dict):
        raise SettingsFileError(f'"env" is a {type(env).__name__}, expected an object')
    before: dict[str, str | None] = dict(previous or {})
    for key, value in wanted.items():
        if key not in before:
            old = env.get(key)
            before[key] = None if old is None else str(old)
        env[key] = value
    return new, before


def unmerge_env(doc: dict[str, Any], written: dict[str, str],
                previous: dict[str, str | None]) -> dict[str, Any]:
    """``doc`` with each variable we wrote (and that still holds what we wrote) back to its previous value;
    an ``env`` block only we filled goes away."""
    new = copy.deepcopy(doc)
    env = new.get("env")
    if not isinstance(env, dict):
        return new
    for key, value in written.items():
        if env.get(key) != value:
            continue  # changed by hand since: theirs now
        old = previous.get(key)
        if old is None:
            del env[key]
        else:
            env[key] = old
    if not env and isinstance(doc.get("env"), dict) and doc["env"]:
        del new["env"]
    return new


def settings_path(scope: str, project_dir: Path | None = None, env: dict[str, str] | None = None) -> Path:
    """Where Claude Code reads settings for a scope: user → $CLAUDE_CONFIG_DIR or ~/.claude, project and
    local → <project>/.claude/settings(.local).json."""
    env = dict(os.environ if env is None else env)
    if scope == "user":
        first = next((p for p in env.get("CLAUDE_CONFIG_DIR", "").split(",") if p.strip()), "")
        base = Path(first).expanduser() if first else Path(env.get("HOME", str(Path.home()))) / ".claude"
        return base / "settings.json"
    root = project_dir or Path.cwd()
    if scope == "project":
        return root / ".claude" / "settings.json"
    if scope == "local":
        return root / ".claude" / "settings.local.json"
    raise ValueError(f"unknown scope {scope!r}; one of {', '.join(SCOPES)}")


# ---- files ---------------------------------------------------------------------------------------------


def read_settings(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    if not text.strip():
        return {}
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise SettingsFileError(f"{path} is not valid JSON ({exc}); fix it first, nothing was changed") from None
    if not isinstance(doc, dict):
        raise SettingsFileError(f"{path} holds a JSON {type(doc).__name__}, not an object; nothing was changed")
    return doc


def dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def write_settings(path: Path, doc: dict[str, Any]) -> Path | None:
    """Write ``doc`` atomically after copying the previous file to ``<file>.ccstream-backup``.
    Returns the backup path (None when there was no previous file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    backup: Path | None = None
    mode = 0o644
    if path.exists():
        backup = path.with_name(path.name + BACKUP_SUFFIX)
        shutil.copy2(path, backup)
        mode = path.stat().st_mode & 0o777
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(dump(doc), encoding="utf-8")
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return backup


def install(path: Path, command: str, timeout: int = DEFAULT_TIMEOUT) -> tuple[bool, Path | None]:
    """Merge our handlers into the file. Returns (changed, backup path)."""
    doc = read_settings(path)
    new = merge(doc, command, timeout)
    if path.exists() and new == doc:
        return False, None
    return True, write_settings(path, new)


def uninstall(path: Path) -> tuple[bool, Path | None]:
    if not path.exists():
        return False, None
    doc = read_settings(path)
    new = unmerge(doc)
    if new == doc:
        return False, None
    return True, write_settings(path, new)


def otel_sidecar(path: Path) -> Path:
    return path.with_name(path.name + OTEL_SIDECAR_SUFFIX)


def install_otel(path: Path, wanted: dict[str, str]) -> tuple[bool, Path | None]:
    """Merge the env block into the file, remembering the previous values beside it. (changed, backup)."""
    doc = read_settings(path)
    side = otel_sidecar(path)
    state = _read_sidecar(side)
    new, before = merge_env(doc, wanted, state.get("previous"))
    changed = not (path.exists() and new == doc)
    backup = write_settings(path, new) if changed else None
    written = {**state.get("written", {}), **wanted}
    side.write_text(json.dumps({"written": written, "previous": before}, indent=2) + "\n", encoding="utf-8")
    return changed, backup


def uninstall_otel(path: Path) -> tuple[bool, Path | None]:
    """Restore what the env block held before install_otel; (changed, backup)."""
    side = otel_sidecar(path)
    state = _read_sidecar(side)
    if not state or not path.exists():
        return False, None
    doc = read_settings(path)
    new = unmerge_env(doc, state.get("written", {}), state.get("previous", {}))
    backup = write_settings(path, new) if new != doc else None
    side.unlink()
    return new != doc, backup


def _read_sidecar(side: Path) -> dict[str, Any]:
    try:
        state = json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise SettingsFileError(f"{side} is not valid JSON ({exc}); remove it to reinstall") from None
    return state if isinstance(state, dict) else {}


def ccstream_executable() -> str:
    """Absolute path of the installed `ccstream` command: beside this interpreter (a venv), else on PATH."""
    beside = Path(sys.executable).parent / "ccstream"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside.absolute())
    found = shutil.which("ccstream")
    if found:
        return str(Path(found).absolute())
    argv0 = Path(sys.argv[0])
    if argv0.name == "ccstream" and argv0.exists():
        return str(argv0.absolute())
    raise FileNotFoundError("cannot find the installed `ccstream` executable; pass --command '<path> hook'")


def redis_answers(settings: Settings, timeout: float = 0.5) -> tuple[bool, str]:
    from stream.capture.hook import resolve_redis_url
    from stream.capture.resp import Resp

    url = resolve_redis_url(settings)
    if url is None:
        return False, "no Redis configured (CCSTREAM_REDIS_URL unset and `ccstream up` not running)"
    try:
        with Resp(url, timeout) as client:
            reply = client.call("PING")
        return reply == "PONG", f"{url} answered {reply}"
    except Exception as exc:
        return False, f"{url} does not answer: {type(exc).__name__}: {exc}"


# ---- command line --------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ccstream hooks",
        description="Install, remove or inspect ccstream's Claude Code hooks (SessionStart for every source, "
                    "SessionEnd, SubagentStop) in a settings.json. Other hooks and settings are kept; the "
                    "previous file is saved as <file>.ccstream-backup.")
    sub = p.add_subparsers(dest="action", required=True)

    def scoped(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--scope", choices=SCOPES, default="user",
                        help="user: ~/.claude/settings.json (all projects, default); project: "
                             ".claude/settings.json (committed); local: .claude/settings.local.json")
        sp.add_argument("--project-dir", type=Path, default=None,
                        help="project root for --scope project/local (default: current directory)")
        sp.add_argument("--settings-file", type=Path, default=None,
                        help="edit this settings.json instead of the scope's")

    i = sub.add_parser("install", help="add ccstream's handlers (idempotent)",
                       description="Add ccstream's hook handlers to a Claude Code settings.json, keeping every "
                                   "other hook and setting; running it again changes nothing.")
    scoped(i)
    i.add_argument("--command", default=None,
                   help="hook command to install (default: '<absolute path of ccstream> hook')")
    i.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="handler timeout in seconds (default 5)")
    i.add_argument("--otel", action="store_true",
                   help="also export Claude Code's own telemetry to ccstream's OTLP receiver (the env block)")
    i.add_argument("--otel-endpoint", default=None,
                   help="OTLP/HTTP endpoint (default: http://127.0.0.1:<CCSTREAM_OTLP_PORT>)")
    i.add_argument("--otel-protocol", choices=("http/protobuf", "http/json"), default="http/protobuf")
    u = sub.add_parser("uninstall", help="remove ccstream's handlers (and its --otel env block), keep everything else",
                       description="Remove ccstream's hook handlers (and the env block `install --otel` wrote, restoring what it replaced) from a Claude Code settings.json; other "
                                   "hooks and settings stay as they are.")
    scoped(u)
    s = sub.add_parser("status", help="where the hooks are installed, whether Redis answers, the spool",
                       description="Show in which settings files ccstream's hooks are installed, whether the "
                                   "Redis they write to answers, and what waits in the spool.")
    s.add_argument("--project-dir", type=Path, default=None,
                   help="project root whose .claude settings to check (default: current directory)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.action in ("install", "uninstall"):
            path = args.settings_file or settings_path(args.scope, args.project_dir)
            if args.action == "install":
                command = args.command or hook_command(ccstream_executable())
                changed, backup = install(path, command, args.timeout)
                verb = "installed in" if changed else "already installed in"
            else:
                changed, backup = uninstall(path)
                verb = "removed from" if changed else "not installed in"
            print(f"ccstream hooks {verb} {path}" + (f" (backup: {backup})" if backup else ""))
            if args.action == "install" and args.otel:
                return _install_otel(path, args.otel_endpoint, args.otel_protocol)
            if args.action == "uninstall" and otel_sidecar(path).exists():
                changed, _ = uninstall_otel(path)
                print(f"ccstream telemetry env {'restored in' if changed else 'unchanged in'} {path}")
            return 0
        return status(args.project_dir)
    except (SettingsFileError, FileNotFoundError, OSError) as exc:
        print(f"ccstream hooks: {exc}", file=sys.stderr)
        return 1


def _install_otel(path: Path, endpoint: str | None, protocol: str) -> int:
    from stream.stack.servers import is_loopback

    settings = load_settings()
    if endpoint is None:
        if not settings.otlp_port:
            print("ccstream hooks: the OTLP receiver is off (CCSTREAM_OTLP_PORT=0); set a port or pass "
                  "--otel-endpoint", file=sys.stderr)
            return 1
        host = settings.otlp_host if is_loopback(settings.otlp_host) else "127.0.0.1"
        endpoint = f"http://{host}:{settings.otlp_port}"
    changed, _ = install_otel(path, otel_env(endpoint, settings.otlp_token, protocol))
    print(f"ccstream telemetry env {'written to' if changed else 'already in'} {path}: Claude Code exports to "
          f"{endpoint} (restart Claude Code to apply)")
    return 0


def status(project_dir: Path | None = None) -> int:
    """Print the hooks per scope, Redis, and the spool; exit 0 when installed somewhere and Redis answers."""
    installed_anywhere = False
    for scope in SCOPES:
        path = settings_path(scope, project_dir)
        try:
            found = installed_events(read_settings(path))
        except SettingsFileError as exc:
            print(f"{scope:8} {path}: unreadable: {exc}")
            continue
        missing = [e for e in EVENTS if e not in found]
        if found:
            installed_anywhere = True
            state = "installed" + (f" (missing: {', '.join(missing)})" if missing else "")
            cmds = sorted({c for cs in found.values() for c in cs})
            print(f"{scope:8} {path}: {state}; command {', '.join(cmds)}")
        else:
            print(f"{scope:8} {path}: not installed")
    settings = load_settings()
    ok, detail = redis_answers(settings)
    print(f"redis    {'answers' if ok else 'DOWN'}: {detail}")
    waiting = spool.pending_count(settings.spool_dir)
    rejected = spool.reject_count(settings.spool_dir)
    print(f"spool    {waiting} event(s) waiting, {rejected} rejected payload(s) in {settings.spool_dir}")
    return 0 if installed_anywhere and ok else 1
