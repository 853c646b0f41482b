"""`ccstream service install|uninstall|status`: `ccstream up` as a per-user service that restarts it.

Linux: a systemd user unit, ``$XDG_CONFIG_HOME/systemd/user/ccstream.service`` (default ~/.config/...).
macOS: a launchd agent, ``~/Library/LaunchAgents/dev.ccstream.up.plist``. Both run the ccstream that
installed them (its absolute path), keep the environment's ``CCSTREAM_*`` settings that are not secrets
(secrets stay in the config file, never in a unit others may read), restart `up` when it exits, and log
to ``<data dir>/logs/service.log``.

The unit text is built by pure functions (``systemd_unit``, ``launchd_plist``) so tests check it without
touching the user's real config: ``--config-dir`` (or ``CCSTREAM_SERVICE_DIR``) writes elsewhere, and
``--no-start`` leaves systemctl/launchctl alone.
"""

from __future__ import annotations

import argparse
import os
import plistlib
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

UNIT_NAME = "ccstream.service"
AGENT_LABEL = "dev.ccstream.up"
# settings that never go into a unit file: they would sit in plain text under ~/.config
_SECRET_ENV = ("PASSWORD", "SECRET", "TOKEN", "DSN", "KEY")


class ServiceError(Exception):
    """One line for the user: what failed and what to do."""


@dataclass(frozen=True, slots=True)
class Target:
    kind: str  # systemd | launchd
    path: Path  # where the unit / plist goes


def platform_kind(platform: str | None = None) -> str:
    p = platform or sys.platform
    if p == "darwin":
        return "launchd"
    if p.startswith("linux"):
        return "systemd"
    raise ServiceError(f"`ccstream service` supports Linux (systemd) and macOS (launchd), not {p}; run "
                       "`ccstream up` under your own supervisor instead")


def target(kind: str, config_dir: Path | None = None, env: dict[str, str] | None = None) -> Target:
    """Where the unit goes: ``config_dir`` when given (tests, packagers), else the user's standard place."""
    env = dict(os.environ) if env is None else env
    if config_dir is None and env.get("CCSTREAM_SERVICE_DIR"):
        config_dir = Path(env["CCSTREAM_SERVICE_DIR"])
    if kind == "systemd":
        base = config_dir or Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "systemd" / "user"
        return Target(kind, base / UNIT_NAME)
    base = config_dir or Path.home() / "Library" / "LaunchAgents"
    return Target(kind, base / f"{AGENT_LABEL}.plist")


def service_env(env: dict[str, str]) -> dict[str, str]:
    """The CCSTREAM_* (and CLAUDE_CONFIG_DIR) settings to carry into the service, secrets left out: names
    that say secret, and URLs with a password in them."""
    from urllib.parse import urlsplit

    keep = {}
    for k, v in sorted(env.items()):
        if k != "CLAUDE_CONFIG_DIR" and not k.startswith("CCSTREAM_"):
            continue
        if any(s in k for s in _SECRET_ENV) or k == "CCSTREAM_SERVICE_DIR":
            continue
        try:
            if "://" in v and urlsplit(v).password:
                continue
        except ValueError:
            continue
        keep[k] = v
    return keep


def _systemd_quote(value: str) -> str:
    # systemd Environment= takes "KEY=value" quoted with double quotes; escape \ and "
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_unit(command: list[str], env: dict[str, str], log_file: Path) -> str:
    """A systemd user unit running ``command`` (``ccstream up``) and restarting it."""
    lines = [
        "[Unit]",
        "Description=ccstream: Claude Code sessions to ClickHouse (ccstream up)",
        "After=network-online.target",
        "Wants=network-online.target",
        "StartLimitIntervalSec=300",
        "StartLimitBurst=5",
        "",
        "[Service]",
        "Type=simple",
        "ExecStart=" + " ".join(shlex.quote(c) for c in command),
        "Restart=always",
        "RestartSec=5",
        # up stops its children on SIGINT/SIGTERM; give the worker time to finish its batch
        "KillSignal=SIGINT",
        "TimeoutStopSec=60",
        f"StandardOutput=append:{log_file}",
        f"StandardError=append:{log_file}",
        *[f"Environment={_systemd_quote(f'{k}={v}')}" for k, v in env.items()],
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


def launchd_plist(command: list[str], env: dict[str, str], log_file: Path) -> bytes:
    """A launchd agent running ``command`` at login and again whenever it exits."""
    doc = {
        "Label": AGENT_LABEL,
        "ProgramArguments": command,
        "RunAtLoad": True,
        "KeepAlive": True,
        "ThrottleInterval": 5,
        "StandardOutPath": str(log_file),
        "StandardErrorPath": str(log_file),
        "EnvironmentVariables": env,
        "ProcessType": "Background",
    }
    return plistlib.dumps(doc)


def ccstream_command() -> list[str]:
    """The absolute command of this ccstream: its console script, else this Python running the module."""
    exe = shutil.which("ccstream")
    here = Path(sys.executable).parent / "ccstream"
    if here.exists():
        exe = str(here)
    return [exe, "up"] if exe else [sys.executable, "-m", "stream.cli", "up"]


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)


def _manage(cmd: list[str]) -> None:
    if shutil.which(cmd[0]) is None:
        raise ServiceError(f"{cmd[0]} not found: the unit is written; start it with your service manager")
    r = _run(cmd)
    if r.returncode != 0:
        raise ServiceError(f"`{' '.join(cmd)}` failed: {(r.stderr or r.stdout).strip().splitlines()[-1:] or '?'}"
                           "; the unit file is in place, fix the error and run the command yourself")


def install(t: Target, start: bool = True, env: dict[str, str] | None = None) -> str:
    from stream.config import load_settings

    settings = load_settings()
    log_file = settings.data_dir / "logs" / "service.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    carried = service_env(dict(os.environ) if env is None else env)
    command = ccstream_command()
    t.path.parent.mkdir(parents=True, exist_ok=True)
    if t.kind == "systemd":
        t.path.write_text(systemd_unit(command, carried, log_file))
        if start:
            _manage(["systemctl", "--user", "daemon-reload"])
            _manage(["systemctl", "--user", "enable", "--now", UNIT_NAME])
    else:
        t.path.write_bytes(launchd_plist(command, carried, log_file))
        if start:
            _run(["launchctl", "unload", str(t.path)])  # a previous version, if loaded
            _manage(["launchctl", "load", "-w", str(t.path)])
    return f"installed {t.path}" + ("" if start else " (not started: --no-start)") + f"; logs in {log_file}"


def uninstall(t: Target, stop: bool = True) -> str:
    if not t.path.exists():
        return f"not installed ({t.path} does not exist)"
    if stop:
        if t.kind == "systemd" and shutil.which("systemctl"):
            _run(["systemctl", "--user", "disable", "--now", UNIT_NAME])
        elif t.kind == "launchd" and shutil.which("launchctl"):
            _run(["launchctl", "unload", "-w", str(t.path)])
    t.path.unlink()
    if stop and t.kind == "systemd" and shutil.which("systemctl"):
        _run(["systemctl", "--user", "daemon-reload"])
    return f"removed {t.path}"


def status(t: Target) -> tuple[int, str]:
    """(exit status, text): 0 when installed and running, 3 when installed but not running, 4 when not
    installed (the codes of `systemctl status`)."""
    if not t.path.exists():
        return 4, f"not installed ({t.path}); `ccstream service install` installs it"
    state = "unknown (no service manager here)"
    if t.kind == "systemd" and shutil.which("systemctl"):
        r = _run(["systemctl", "--user", "is-active", UNIT_NAME])
        state = (r.stdout.strip() or r.stderr.strip() or "unknown").splitlines()[0]
    elif t.kind == "launchd" and shutil.which("launchctl"):
        r = _run(["launchctl", "list", AGENT_LABEL])
        state = "active" if r.returncode == 0 else "not loaded"
    return (0 if state == "active" else 3), f"installed {t.path}: {state}"


def verify_unit(path: Path) -> tuple[bool, str]:
    """`systemd-analyze verify` on a unit file, when available: (ok, its complaints)."""
    if shutil.which("systemd-analyze") is None:
        return True, "systemd-analyze not available"
    # system mode: --user needs a user manager's runtime dir, which containers and CI often lack; the
    # syntax, directives and ExecStart checks are the same
    r = _run(["systemd-analyze", "verify", str(path)])
    text = (r.stderr + r.stdout).strip()
    # a directive it could not parse is only a warning (exit 0) but names the file: count it as a failure
    return r.returncode == 0 and path.name not in text, text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="ccstream service",
        description="Run `ccstream up` as your own background service that starts at login and restarts it "
                    "when it exits: a systemd user unit on Linux, a launchd agent on macOS "
                    "(docs/operations.md).")
    sub = p.add_subparsers(dest="action", required=True, metavar="{install,uninstall,status}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config-dir", type=Path, default=None,
                        help="write the unit here instead of the user's systemd/launchd folder")
    i = sub.add_parser("install", parents=[common], help="write the unit and start it",
                       description="Write the unit (carrying your CCSTREAM_* settings, secrets left out) and "
                                   "enable and start it.")
    i.add_argument("--no-start", action="store_true", help="only write the unit; do not enable or start it")
    u = sub.add_parser("uninstall", parents=[common], help="stop the service and remove its unit",
                       description="Stop and disable the service, then remove its unit file.")
    u.add_argument("--no-stop", action="store_true", help="only remove the unit file")
    sub.add_parser("status", parents=[common], help="whether the unit is installed and running",
                   description="Say whether the unit is installed and whether the service runs.")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        t = target(platform_kind(), args.config_dir)
        if args.action == "install":
            print(install(t, start=not args.no_start))
        elif args.action == "uninstall":
            print(uninstall(t, stop=not args.no_stop))
        else:
            code, text = status(t)
            print(text)
            return code
    except (ServiceError, OSError) as exc:
        print(f"ccstream service: {exc}", file=sys.stderr)
        return 1
    return 0
