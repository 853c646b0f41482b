"""`ccstream worker`: one Faust worker process with the edge role, the sink role, or both."""

from __future__ import annotations

import argparse
import logging
import os

from stream.config import load_settings


def parser(prog: str = "ccstream worker") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Run one Faust worker. The edge role follows this machine's Claude Code transcripts and "
                    "produces their lines to Kafka; the sink role inserts them into ClickHouse. "
                    "Settings come from CCSTREAM_* variables and the config file (see docs/operations.md).")
    p.add_argument("--roles", default=None, help="comma list of edge,sink (default: CCSTREAM_ROLES or both)")
    p.add_argument("--loglevel", default=os.environ.get("CCSTREAM_LOGLEVEL", "info"),
                   help="debug, info, warning, error (default: info)")
    return p


def run(roles: list[str] | None = None, loglevel: str = "info") -> int:
    from faust.worker import Worker

    from agents.app import create_app

    overrides = {"roles": roles} if roles else {}
    settings = load_settings(None, **overrides)
    app = create_app(settings)
    worker = Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    worker.execute_from_commandline()  # runs until SIGTERM/SIGINT, then exits the process
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    roles = [r.strip() for r in args.roles.split(",")] if args.roles else None
    return run(roles, args.loglevel)


def main_edge(argv: list[str] | None = None) -> int:
    args = parser("ccstream edge").parse_args(argv)
    return run(["edge"], args.loglevel)


def main_sink(argv: list[str] | None = None) -> int:
    args = parser("ccstream sink").parse_args(argv)
    return run(["sink"], args.loglevel)
