"""What an idle `ccstream up` costs: CPU per process (% of one core) and RSS, nothing happening.

Starts a real `ccstream up` on a copy of the fixture corpus, waits until every row is queryable and the
import has settled, then samples /proc/<pid>/stat (utime + stime) and VmRSS of every process of the stack
over `--seconds` (default 60) while nothing is written. Issue 15's target: the whole stack at most 2 % of one
core.

    python -m benchmarks idle [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.report import write_section

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "fixtures" / "claude-code" / "projects"
EXPECTED = 18_918
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks idle")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--settle", type=float, default=20.0, help="seconds to wait after the import (default 20)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from tests.integration.upstack import UpStack

    with tempfile.TemporaryDirectory(prefix="ccstream-idle-") as tmp:
        stack = UpStack(Path(tmp))
        stack.copy_corpus(CORPUS)
        stack.start()
        try:
            stack.wait_for(lambda: stack.scalar("SELECT count() AS n FROM claude_raw_traces FINAL") >= EXPECTED,
                           300, "every row")
            time.sleep(args.settle)
            pids = {name: int(pid) for name, pid in stack.worker_info()["children"].items()}
            pids["up"] = stack.proc.pid if stack.proc else 0
            before = {n: cpu_seconds(pid) for n, pid in pids.items()}
            t0 = time.monotonic()
            time.sleep(args.seconds)
            elapsed = time.monotonic() - t0
            after = {n: cpu_seconds(pid) for n, pid in pids.items()}
            rss = {n: rss_mb(pid) for n, pid in pids.items()}
        finally:
            stack.stop()
    pct = {n: 100 * (after[n] - before[n]) / elapsed for n in pids}
    total = sum(pct.values())
    for n in sorted(pids):
        print(f"{n:>14}: {pct[n]:5.1f} % of a core, {rss[n]:6.0f} MB")
    print(f"{'stack':>14}: {total:5.1f} % of a core, {sum(rss.values()):6.0f} MB (target <= 2 %)")
    rows = "\n".join(f"| {n} | {pct[n]:.1f} % | {rss[n]:,.0f} MB |" for n in sorted(pids))
    write_section("idle", f"""## An idle `ccstream up` (`python -m benchmarks idle`)

The stack on the fixture corpus, every row imported, then {args.settle:.0f} s to settle and {elapsed:.0f} s of
nothing happening; CPU from /proc/<pid>/stat (utime + stime), RSS from VmRSS at the end.

| process | CPU (% of one core) | RSS |
|---|---:|---:|
{rows}
| **the whole stack** | **{total:.1f} %** | **{sum(rss.values()):,.0f} MB** |

Issue 15's target is at most 2 % of one core for the whole stack.""")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
