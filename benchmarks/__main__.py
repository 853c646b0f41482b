"""Run benchmarks by name: `python -m benchmarks all`, `python -m benchmarks ingest hook_latency`, or one with its
options: `python -m benchmarks backfill --copies 3`."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ["ingest", "hook_latency", "sink_throughput", "sink_extraction", "tail_latency", "query_tokens", "backfill", "broker_memory", "idle", "redaction_speed"]


def main(argv: list[str]) -> int:
    # names first, then options for a single benchmark: `python -m benchmarks backfill --copies 3`
    flags = next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))
    argv, options = argv[:flags], argv[flags:]
    names = BENCHMARKS if not argv or argv == ["all"] else argv
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    failed = 0
    for name in names:
        try:
            mod = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as exc:
            print(f"== {name}: not available ({exc})", file=sys.stderr)
            failed += 1
            continue
        print(f"== {name}", flush=True)
        failed += 1 if mod.main(options) else 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
