"""`ccstream up`: the whole pipeline on one machine, on loopback.

Starts a Redis server (unless CCSTREAM_REDIS_URL answers), the Tansu broker (unless CCSTREAM_KAFKA_BOOTSTRAP
is set), the bridge, and one Faust worker with both roles and chDB in the data dir. Ctrl-C stops them all;
children also die with this process (PR_SET_PDEATHSIG), so nothing is left behind and a second `up` works.

The local broker keeps messages in memory only, so it is transport, not storage: on every start the worker
clears its Faust state and takes file cursors from what ClickHouse already holds (file_checkpoints), so a
restart neither loses nor repeats a line. If a child dies, the stack is restarted the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import IO

from stream.config import Settings, load_settings
from stream.stack.servers import (
    ManagedProcess,
    RedisServer,
    ServerError,
    TansuBroker,
    free_port,
    port_open,
)

RESTART_LIMIT = 5  # restarts of the stack within RESTART_WINDOW before giving up
RESTART_WINDOW = 300.0


class Child(ManagedProcess):
    """A ccstream subprocess (bridge or worker); ready when its process runs (and its port answers)."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str],
                 port: int | None = None) -> None:
        super().__init__(argv, log_path, env=env)
        self.name = name
        self.port = port

    def ready(self) -> bool:
        if self.port is None:
            return self.alive()
        return port_open("127.0.0.1", self.port)


class AlreadyRunning(RuntimeError):
    pass


def acquire_lock(settings: Settings) -> IO[str]:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    fh = (settings.run_dir / "up.lock").open("a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        raise AlreadyRunning(f"ccstream up is already running for {settings.data_dir} ({fh.read().strip()}); "
                             "stop it with Ctrl-C in its terminal, or use another CCSTREAM_DATA_DIR") from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()}\n")
    fh.flush()
    return fh


def is_running(settings: Settings) -> bool:
    """True when an `up` holds the data dir (and so owns the chDB store)."""
    path = settings.run_dir / "up.lock"
    if not path.exists():
        return False
    with path.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except Exception:
        return False


class Stack:
    def __init__(self, settings: Settings, out: IO[str] = sys.stdout) -> None:
        self.settings = settings
        self.out = out
        self.procs: list[ManagedProcess] = []
        self.redis_url = settings.redis_url
        self.bootstrap = settings.kafka_bootstrap
        self.web_port = settings.web_port
        self.worker: Child | None = None

    def say(self, msg: str) -> None:
        print(msg, file=self.out, flush=True)

    def start(self) -> None:
        s = self.settings
        s.run_dir.mkdir(parents=True, exist_ok=True)
        logs = s.data_dir / "logs"
        if self.redis_url and _redis_answers(self.redis_url):
            self.say(f"  redis     {self.redis_url} (yours)")
        else:
            redis = RedisServer(s.data_dir / "redis")
            redis.start()
            redis.wait_ready()
            self.procs.append(redis)
            self.redis_url = redis.url
            self.say(f"  redis     {redis.url} (data {s.data_dir / 'redis'})")
        (s.run_dir / "redis.url").write_text(self.redis_url + "\n")

        ephemeral = False
        if not s.kafka_bootstrap:
            broker = TansuBroker(logs)
            broker.start()
            broker.wait_ready()
            self.procs.append(broker)
            self.bootstrap = broker.bootstrap
            ephemeral = True
            self.say(f"  kafka     {broker.bootstrap} (Tansu, in memory)")
        else:
            self.say(f"  kafka     {s.kafka_bootstrap}")

        if port_open(s.web_host, self.web_port):
            self.web_port = free_port(s.web_host)
        env = dict(os.environ)
        env.update({
            "CCSTREAM_DATA_DIR": str(s.data_dir),
            "CCSTREAM_REDIS_URL": self.redis_url or "",
            "CCSTREAM_KAFKA_BOOTSTRAP": self.bootstrap or "",
            "CCSTREAM_BROKER_IS_EPHEMERAL": "1" if ephemeral else "0",
            "CCSTREAM_WEB_PORT": str(self.web_port),
            "CCSTREAM_CLAUDE_ROOTS": ",".join(str(r) for r in s.claude_roots),
        })
        exe = [sys.executable, "-m", "stream.cli"]
        bridge = Child("bridge", [*exe, "bridge"], logs / "bridge.log", env)
        bridge.start()
        self.procs.append(bridge)
        worker = Child("worker", [*exe, "worker"], logs / "worker.log", env, port=self.web_port)
        worker.start()
        self.procs.append(worker)
        self.worker = worker
        worker.wait_ready(timeout=120)
        web_url = f"http://{s.web_host}:{self.web_port}"
        (s.run_dir / "worker.json").write_text(json.dumps(
            {"pid": worker.pid, "bridge_pid": bridge.pid, "web_url": web_url, "redis_url": self.redis_url,
             "children": {p.name: p.pid for p in self.procs},
             "kafka_bootstrap": self.bootstrap, "started_at": time.time()}) + "\n")
        self.say(f"  worker    pid {worker.pid}, {web_url} (log {logs / 'worker.log'})")
        self.say(f"  bridge    pid {bridge.pid} (log {logs / 'bridge.log'})")
        self.say(f"  clickhouse {s.effective_clickhouse_dsn}")
        self.say(f"  dashboard {web_url}/dashboard/")  # agents/dashboard.py; web_guard adds the one-time token

    def dead_child(self) -> ManagedProcess | None:
        for p in self.procs:
            if not p.alive():
                return p
        return None

    def stop(self) -> None:
        # worker first so it can finish its batch, brokers and Redis last
        for p in reversed(self.procs):
            with contextlib.suppress(Exception):
                p.stop(timeout=15)
        self.procs.clear()
        with contextlib.suppress(FileNotFoundError):
            (self.settings.run_dir / "worker.json").unlink()


def up(settings: Settings, out: IO[str] = sys.stdout) -> int:
    try:
        lock = acquire_lock(settings)
    except AlreadyRunning as exc:
        print(f"ccstream up: {exc}", file=sys.stderr)
        return 1
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    restarts: list[float] = []
    roots = ", ".join(str(r) for r in settings.claude_roots)
    print(f"ccstream up: data in {settings.data_dir}; following {roots}", file=out, flush=True)
    for root in settings.claude_roots:
        if not root.is_dir():
            print(f"ccstream up: {root} does not exist yet; it is picked up as soon as Claude Code creates it "
                  "(set CLAUDE_CONFIG_DIR if your Claude Code config lives elsewhere)", file=out, flush=True)
    try:
        while not stopping:
            stack = Stack(settings, out)
            try:
                stack.start()
            except ServerError as exc:
                print(f"ccstream up: {exc}", file=sys.stderr, flush=True)
                stack.stop()
                return 1
            print("ready. Query it from another terminal:\n"
                  "  ccstream sql \"SELECT count() FROM claude_raw_traces FINAL\"\n"
                  "  ccstream sessions | ccstream tokens --by day | ccstream status\n"
                  "Ctrl-C stops everything.", file=out, flush=True)
            dead = None
            while not stopping:
                time.sleep(0.2)
                dead = stack.dead_child()
                if dead is not None:
                    break
            stack.stop()
            if stopping:
                break
            assert dead is not None
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < RESTART_WINDOW] + [now]
            print(f"ccstream up: {dead.name} exited unexpectedly; last lines of {dead.log_path}:\n"
                  f"{dead.tail_log(10)}", file=sys.stderr, flush=True)
            if len(restarts) > RESTART_LIMIT:
                print(f"ccstream up: {len(restarts)} restarts within {RESTART_WINDOW:.0f}s; giving up",
                      file=sys.stderr)
                return 1
            print("ccstream up: restarting the stack (cursors resume from ClickHouse)", file=out, flush=True)
    finally:
        lock.close()
    print("ccstream up: stopped", file=out, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="ccstream up",
        description="Run the whole pipeline on this machine: Redis, the Tansu broker, the bridge and one Faust "
                    "worker with ClickHouse embedded (chDB). Ingests every transcript under the Claude Code "
                    "roots (CLAUDE_CONFIG_DIR or ~/.claude, projects/) and keeps following them. "
                    "Data goes to CCSTREAM_DATA_DIR (default ~/.ccstream).")
    p.add_argument("--data-dir", type=Path, help="where ccstream keeps its state (default ~/.ccstream)")
    p.add_argument("--roots", help="comma list of Claude Code projects/ folders to follow")
    args = p.parse_args(argv)
    overrides: dict[str, object] = {}
    if args.data_dir:
        overrides["data_dir"] = args.data_dir.expanduser().resolve()
    if args.roots:
        overrides["claude_roots"] = [Path(r).expanduser() for r in args.roots.split(",") if r]
    return up(load_settings(None, **overrides))
