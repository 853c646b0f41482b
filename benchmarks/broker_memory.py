"""The broker's memory over an always-on `up` (issue 13): GBs of history pass through, the broker is let go.

A real `ccstream up` on an empty data dir follows a root of its own; every wave moves a copy of the backfill
corpus (`benchmarks/backfill.py`, ~1.09 GB) into it under new project folders (new paths, so new rows) and waits
until every object so far is queryable (`claude_raw_traces FINAL`). Meanwhile it samples the RSS of every
process of the stack (the broker's pid changes with each recycle, so `worker.json` is read again each time)
and counts `up`'s recycle lines. At the end every row is checked: one per object, no dead letters.

    python -m benchmarks broker_memory [--waves N] [--limit MB]   (default: 10 waves, ~11 GB; the default limit)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.backfill import REPO, cached_corpus
from benchmarks.corpus_shape import Shape
from benchmarks.report import write_section
from stream.stack.servers import rss_kb

RECYCLE_LINE = "restarting the stack to let them go"


class StackSampler(threading.Thread):
    """Every 0.5 s: the RSS of each process of the stack, whichever pids it has now."""

    def __init__(self, stack: Any) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.peak_broker = self.peak_total = 0  # KB, since the last take()
        self.last_broker = 0

    def pids(self) -> dict[str, int]:
        try:
            children = json.loads((self.stack.data_dir / "run" / "worker.json").read_text())["children"]
        except (OSError, ValueError, KeyError):  # between two stacks (a recycle)
            return {}
        return {str(k): int(v) for k, v in children.items()}

    def run(self) -> None:
        up_pid = self.stack.proc.pid if self.stack.proc else 0
        while not self.stop_event.wait(0.5):
            pids = self.pids()
            if not pids:
                continue
            sizes = {name: rss_kb(pid) for name, pid in pids.items()}
            total = sum(sizes.values()) + rss_kb(up_pid)
            with self.lock:
                self.last_broker = sizes.get("tansu", 0)
                self.peak_broker = max(self.peak_broker, self.last_broker)
                self.peak_total = max(self.peak_total, total)

    def take(self) -> tuple[int, int, int]:
        """(broker now, broker peak, stack peak) in KB; the peaks start again."""
        with self.lock:
            out = (self.last_broker, self.peak_broker, self.peak_total)
            self.peak_broker = self.peak_total = 0
        return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks broker_memory")
    p.add_argument("--waves", type=int, default=10, help="copies of the ~1.09 GB corpus fed one after another")
    p.add_argument("--limit", type=int, default=None, help="CCSTREAM_BROKER_RECYCLE_MB (default: the setting's)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from stream.config import Settings
    from tests.integration.upstack import UpStack

    shape = Shape()
    cache, per_wave = cached_corpus(shape)
    src = cache / "projects"
    size = sum(f.stat().st_size for f in src.rglob("*.jsonl"))
    limit = args.limit if args.limit is not None else Settings().broker_recycle_mb
    print(f"{args.waves} waves of {size / 1e6:,.0f} MB ({per_wave:,} objects each); recycle limit {limit} MB",
          flush=True)
    waves: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="ccstream-broker-") as tmp:
        stack = UpStack(Path(tmp), {"CCSTREAM_SCAN_INTERVAL": "30", "CCSTREAM_BROKER_RECYCLE_MB": str(limit)})
        stack.start(timeout=300)
        sampler = StackSampler(stack)
        sampler.start()
        t_start = time.monotonic()
        try:
            for k in range(args.waves):
                t0 = time.monotonic()
                # copied beside the root, then moved in, folder by folder: files that arrive whole (a restore,
                # a sync) are history (stream/tail/inotify.py, Kind.ARRIVED); a copy into the root would be
                # seen write by write as live sessions
                staging = Path(tmp) / f"staging-{k}"
                for folder in sorted(src.iterdir()):
                    shutil.copytree(folder, staging / f"{folder.name}-w{k}")
                t0 = time.monotonic()
                for folder in sorted(staging.iterdir()):
                    folder.rename(stack.projects / folder.name)
                want = per_wave * (k + 1)
                stack.wait_for(lambda want=want: stack.scalar("SELECT count() AS n FROM claude_raw_traces") >= want
                               and stack.scalar("SELECT count() AS n FROM claude_raw_traces FINAL") >= want,
                               3600, f"wave {k + 1}'s objects")
                broker, peak_broker, peak_total = sampler.take()
                recycles = stack.log_path.read_text().count(RECYCLE_LINE)
                waves.append({"wave": k + 1, "gb": size * (k + 1) / 1e9, "seconds": time.monotonic() - t0,
                              "broker": broker / 1024, "peak_broker": peak_broker / 1024,
                              "peak_total": peak_total / 1024, "recycles": recycles})
                print(f"wave {k + 1}: {size * (k + 1) / 1e9:.1f} GB in, {time.monotonic() - t0:.0f} s; broker "
                      f"{broker / 1024:.0f} MB (peak {peak_broker / 1024:.0f}), stack peak "
                      f"{peak_total / 1024:,.0f} MB, recycles so far {recycles}", flush=True)
            total_s = time.monotonic() - t_start
            time.sleep(3)  # a repeat would show up now
            rows = int(stack.scalar("SELECT count() AS n FROM claude_raw_traces FINAL"))
            dead = int(stack.scalar("SELECT count() AS n FROM dead_letters FINAL"))
        finally:
            sampler.stop_event.set()
            stack.stop()
    want = per_wave * args.waves
    exact = rows == want and dead == 0
    print(f"{rows:,} rows for {want:,} objects, {dead} dead letters: {'exact' if exact else 'NOT EXACT'}")
    first, last = waves[0], waves[-1]
    unbounded = (f"Without a recycle the broker keeps everything: it held {first['broker']:.0f} MB after the first "
                 f"wave, so ~{first['broker'] / first['gb'] * last['gb']:,.0f} MB after {last['gb']:.1f} GB at that rate."
                 if first["recycles"] == 0 else "")
    table = "\n".join(
        f"| {int(w['wave'])} | {w['gb']:.1f} | {w['seconds']:.0f} | {w['broker']:.0f} | {w['peak_broker']:.0f} | "
        f"{w['peak_total']:,.0f} | {int(w['recycles'])} |" for w in waves)
    write_section("broker_memory", f"""## The broker's memory over an always-on `up` (`python -m benchmarks broker_memory`)

One `ccstream up` on an empty data dir; {args.waves} waves, each a copy of the backfill corpus ({size / 1e6:,.0f} MB,
{per_wave:,} objects) moved in under new project folders, the next when every object so far is queryable. Recycle
limit `CCSTREAM_BROKER_RECYCLE_MB={limit}` (checked every 30 s): once the broker has grown that much since
it started and the worker's group has committed all it holds, `up` restarts the stack (stream/stack/recycle.py).
Rows at the end: {rows:,} for {want:,} objects, {dead} dead letters ({'exact' if exact else 'NOT EXACT'}), in {total_s:.0f} s.
{unbounded}

| wave | GB through the stack | s | broker RSS after, MB | broker peak in the wave, MB | stack peak in the wave, MB | recycles so far |
|---|---|---|---|---|---|---|
{table}
""")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
