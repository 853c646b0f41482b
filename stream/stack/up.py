"""`ccstream up`: the whole pipeline on one machine, on loopback.

Starts a Redis server (unless CCSTREAM_REDIS_URL names one), the Tansu broker (unless CCSTREAM_KAFKA_BOOTSTRAP
is set), the bridge, and the Faust workers: the sink (chDB in the data dir, the SQL API, the dashboard) and
the edge (the tailer), two processes so that each has a core's worth of GIL (`up_split`; one worker with
both roles otherwise). Ctrl-C stops them all;
children also die with this process (PR_SET_PDEATHSIG), so nothing is left behind and a second `up` works.

The local broker keeps messages in memory only, so it is transport, not storage: on every start the worker
clears its Faust state and takes file cursors from what ClickHouse already holds (file_checkpoints), so a
restart neither loses nor repeats a line. If a child dies, the stack is restarted the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import sys
import time
from pathlib import Path
from typing import IO

from stream.config import Settings, load_settings
from stream.stack.import_watch import ImportWatch
from stream.stack.recycle import Recycler, drain_worker
from stream.stack.rundir import AlreadyRunning, RunDir, redis_answers, strip_password
from stream.stack.servers import (
    ManagedProcess,
    RedisServer,
    ServerError,
    TansuBroker,
    free_port,
    is_loopback,
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


def acquire_lock(settings: Settings) -> IO[str]:
    try:
        return RunDir.of(settings).acquire_lock()
    except AlreadyRunning as exc:
        raise AlreadyRunning(f"ccstream up is already running for {settings.data_dir} ({exc}); "
                             "stop it with Ctrl-C in its terminal, or use another CCSTREAM_DATA_DIR") from None


def is_running(settings: Settings) -> bool:
    """True when an `up` holds the data dir (and so owns the chDB store)."""
    return RunDir.of(settings).is_running()


class Stack:
    def __init__(self, settings: Settings, out: IO[str] = sys.stdout) -> None:
        self.settings = settings
        self.out = out
        self.procs: list[ManagedProcess] = []
        self.redis_url = settings.redis_url
        self.bootstrap = settings.kafka_bootstrap
        self.web_port = settings.web_port
        self.worker: Child | None = None
        self.broker: TansuBroker | None = None  # the embedded one, when `up` started it
        self.login_url: str | None = None
        self.web_url: str | None = None  # the sink's (SQL, dashboard)
        self.edge_url: str | None = None  # the tailer's (drain): the same worker unless split

    def say(self, msg: str) -> None:
        print(msg, file=self.out, flush=True)

    def start(self) -> None:
        s = self.settings
        run = RunDir.of(s)
        run.ensure()
        logs = s.data_dir / "logs"
        embedded = False
        if self.redis_url:
            # yours, answering or not: the hook, the bridge and `status` all use it, so `up` must too (a Redis
            # of its own would take events nobody reads); the hook spools and the bridge retries meanwhile
            state = "" if redis_answers(self.redis_url) else (
                ", NOT ANSWERING yet: hooks spool their events and the bridge retries until it does")
            self.say(f"  redis     {strip_password(self.redis_url)} (yours{state})")
        else:
            redis = RedisServer(s.data_dir / "redis", password=run.redis_password(create=True))
            redis.start()
            redis.wait_ready()
            self.procs.append(redis)
            self.redis_url = redis.auth_url
            embedded = True
            self.say(f"  redis     {redis.url} (password in {run.path / 'redis.password'}, "
                     f"data {s.data_dir / 'redis'})")
        run.record_redis_url(self.redis_url, embedded=embedded)

        ephemeral = False
        if not s.kafka_bootstrap:
            broker = TansuBroker(logs)
            broker.start()
            broker.wait_ready()
            self.procs.append(broker)
            self.broker = broker
            self.bootstrap = broker.bootstrap
            ephemeral = True
            self.say(f"  kafka     {broker.bootstrap} (Tansu, in memory)")
        else:
            self.say(f"  kafka     {s.kafka_bootstrap}")

        # the worker reads both from the run dir: the API token (kept across starts) and a fresh one-time
        # token for the browser URL printed below
        if not s.web_token:
            run.api_token(create=True)
        login = run.new_login_token()
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
        host = s.web_host if s.web_host not in ("0.0.0.0", "::", "") else "127.0.0.1"

        def url(port: int) -> str:
            return f"http://{'[' + host + ']' if ':' in host else host}:{port}"

        def start_worker(name: str, argv: list[str], port: int, extra: dict[str, str] | None = None) -> Child:
            child = Child(name, [*exe, *argv], logs / f"{name}.log", dict(env, **(extra or {})), port=port)
            child.start()
            self.procs.append(child)
            child.wait_ready(timeout=120)
            return child

        web_url = self.web_url = self.edge_url = url(self.web_port)
        info: dict[str, object] = {"bridge_pid": bridge.pid, "web_url": web_url,
                                   "redis_url": strip_password(self.redis_url or ""),
                                   "kafka_bootstrap": self.bootstrap, "started_at": time.time()}
        if s.up_split:
            # two GILs: the sink (chDB, the SQL API, the dashboard) at web_url, then the edge (tailer, OTLP,
            # drain), which reads its file checkpoints through the sink (agents/checkpoints.py), so the
            # sink's address is recorded first
            worker = start_worker("sink", ["sink"], self.web_port)
            run.record_worker({**info, "pid": worker.pid, "children": {p.name: p.pid for p in self.procs}})
            edge_port = free_port(s.web_host)
            edge = start_worker("edge", ["worker", "--roles", "edge"], edge_port,
                                {"CCSTREAM_APP_ID": s.edge_app_id, "CCSTREAM_WEB_PORT": str(edge_port)})
            self.edge_url = url(edge_port)
            info.update(edge_url=self.edge_url, edge_pid=edge.pid)
            shown = [worker, edge]
        else:
            worker = start_worker("worker", ["worker"], self.web_port)
            shown = [worker]
        self.worker = worker
        run.record_worker({**info, "pid": worker.pid, "children": {p.name: p.pid for p in self.procs}})
        self.login_url = f"{web_url}/ccstream/?login={login}"
        for child in shown:
            where = self.edge_url if child.name == "edge" else web_url
            self.say(f"  {child.name:<9} pid {child.pid}, {where} (log {child.log_path})")
        self.say(f"  dashboard {self.login_url}")
        self.say(f"            (a one-time link: it logs this browser in; API token in {run.path / 'api.token'})")
        self.say(f"  bridge    pid {bridge.pid} (log {logs / 'bridge.log'})")
        self.say(f"  clickhouse {s.effective_clickhouse_dsn}")

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
        RunDir.of(self.settings).clear_worker()


def up(settings: Settings, out: IO[str] = sys.stdout) -> int:
    if not is_loopback(settings.web_host) and not settings.web_token:
        print(f"ccstream up: CCSTREAM_WEB_HOST={settings.web_host} reaches beyond this machine; set "
              "CCSTREAM_WEB_TOKEN (a long random secret) to allow it, and put TLS in front (docs/security.md)",
              file=sys.stderr)
        return 1
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
            watch = ImportWatch(settings, out)
            recycler = Recycler(settings, stack.broker.pid if stack.broker else None, stack.bootstrap,
                                drain=functools.partial(drain_worker, settings, stack.edge_url))
            recycle = False
            while not stopping:
                time.sleep(0.2)
                dead = stack.dead_child()
                if dead is not None:
                    break
                watch.tick()
                if recycler.due():
                    recycle = True
                    break
            if recycle:
                print(f"ccstream up: the local broker has grown by {recycler.grown:,.0f} MB (to "
                      f"{recycler.last_rss:,.0f} MB) with messages ClickHouse already has; restarting the stack "
                      f"to let them go (CCSTREAM_BROKER_RECYCLE_MB={settings.broker_recycle_mb})",
                      file=out, flush=True)
            stack.stop()
            if stopping:
                break
            if recycle:
                continue
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
        description="Run the whole pipeline on this machine: Redis, the Tansu broker, the bridge and two Faust "
                    "workers, the edge (the tailer) and the sink with ClickHouse embedded (chDB); "
                    "CCSTREAM_UP_SPLIT=0 runs one worker with both roles. Ingests every transcript under the Claude Code "
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
