"""`ccstream worker|edge|sink`: one Faust worker process with the edge role, the sink role, or both.

`ccstream edge` is everything a workstation runs: the edge role (sessions agent, tailer) and, in the same
process, the bridge (local Redis stream → Kafka ``<prefix>.sessions``) as a service of the worker, so one
systemd/launchd unit covers hook → Redis → bridge → tailer. The bridge runs only where a Redis is configured
(``CCSTREAM_REDIS_URL`` or the address `ccstream up` recorded); ``--no-bridge`` leaves it to a separate
`ccstream bridge`. `ccstream worker` never runs the bridge: `ccstream up` starts its own.

Every worker logs its partition assignment after each rebalance as one parseable line
(``ccstream assignment {"topic": [partitions...]}``), which is how sinks sharing a group are seen to split
the raw topic.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
from typing import Any

from mode import Service

from stream.config import Settings, load_settings

log = logging.getLogger("ccstream.worker")

ASSIGNMENT_LOG_PREFIX = "ccstream assignment "
BRIDGE_STOP_TIMEOUT = 15.0  # seconds the in-process bridge may take to finish its batch on shutdown


def parser(prog: str = "ccstream worker") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Run one Faust worker. The edge role follows this machine's Claude Code transcripts and "
                    "produces their lines to Kafka; the sink role inserts them into ClickHouse. "
                    "Settings come from CCSTREAM_* variables and the config file (see docs/operations.md); "
                    "secrets are never taken from the command line.")
    if prog == "ccstream worker":
        p.add_argument("--roles", default=None, help="comma list of edge,sink (default: CCSTREAM_ROLES or both)")
    if prog == "ccstream edge":
        p.add_argument("--no-bridge", action="store_true",
                       help="do not forward hook events from Redis in this process (run `ccstream bridge` "
                            "separately instead)")
    p.add_argument("--log-level", dest="loglevel", default=os.environ.get("CCSTREAM_LOGLEVEL", "info"),
                   type=str.lower, choices=("debug", "info", "warning", "error", "critical"),
                   help="debug, info, warning, error (default: info, or CCSTREAM_LOGLEVEL)")
    # the old spelling keeps working in scripts and units written for it
    p.add_argument("--loglevel", dest="loglevel", type=str.lower, help=argparse.SUPPRESS)
    return p


def format_assignment(assigned: Any) -> str:
    """`{topic: [partition, ...]}` of a set of TopicPartitions as one sorted JSON object (pure)."""
    by_topic: dict[str, list[int]] = {}
    for tp in assigned:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return json.dumps({t: sorted(ps) for t, ps in sorted(by_topic.items())}, separators=(",", ":"))


def parse_assignments(log_text: str) -> list[dict[str, list[int]]]:
    """Every assignment a worker logged, oldest first (for tests and operators reading a log)."""
    out: list[dict[str, list[int]]] = []
    for line in log_text.splitlines():
        i = line.find(ASSIGNMENT_LOG_PREFIX)
        if i >= 0:
            with contextlib.suppress(ValueError):
                out.append(json.loads(line[i + len(ASSIGNMENT_LOG_PREFIX):]))
    return out


class BridgeService(Service):
    """stream.capture.bridge.run_bridge as a child service of the Faust worker: started with it, and stopped
    before the worker's own shutdown, letting the batch in flight reach the broker (it stays pending in Redis
    otherwise and is delivered again on the next start)."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        self.settings = settings
        self._stop_bridge: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        from stream.capture.bridge import run_bridge

        self._stop_bridge = asyncio.Event()
        self._task = asyncio.ensure_future(run_bridge(self.settings, stop=self._stop_bridge))

    async def on_stop(self) -> None:
        if self._stop_bridge is None or self._task is None:
            return
        self._stop_bridge.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), BRIDGE_STOP_TIMEOUT)
        except TimeoutError:
            log.warning("bridge did not stop within %.0fs; cancelling it (its batch stays pending in Redis)",
                        BRIDGE_STOP_TIMEOUT)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        except Exception:
            log.exception("bridge failed")


def wants_bridge(settings: Settings) -> bool:
    """Run the in-process bridge only where a Redis is configured; without one an edge still ingests every
    transcript through its scans, and says so."""
    from stream.capture.hook import resolve_redis_url

    return resolve_redis_url(settings) is not None


def run(roles: list[str] | None = None, loglevel: str = "info", *, bridge: bool = False) -> int:
    from faust.worker import Worker

    from agents.app import create_app, reset_local_state

    overrides = {"roles": roles} if roles else {}
    settings = load_settings(None, **overrides)
    reset_local_state(settings)
    app = create_app(settings)

    @app.on_partitions_assigned.connect
    async def _log_assignment(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned = args[0] if args else kwargs.get("assigned", ())
        log.info("%s%s", ASSIGNMENT_LOG_PREFIX, format_assignment(assigned))

    services: list[Service] = []
    if bridge:
        if wants_bridge(settings):
            services.append(BridgeService(settings))
        else:
            log.warning("no Redis configured (CCSTREAM_REDIS_URL): hook events are not forwarded by this edge; "
                        "scans of %s still find every transcript", [str(r) for r in settings.claude_roots])
    worker = Worker(app, *services, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    worker.execute_from_commandline()  # runs until SIGTERM/SIGINT, then exits the process
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    roles = [r.strip() for r in args.roles.split(",")] if args.roles else None
    return run(roles, args.loglevel)


def main_edge(argv: list[str] | None = None) -> int:
    args = parser("ccstream edge").parse_args(argv)
    return run(["edge"], args.loglevel, bridge=not args.no_bridge)


def main_sink(argv: list[str] | None = None) -> int:
    args = parser("ccstream sink").parse_args(argv)
    return run(["sink"], args.loglevel)
