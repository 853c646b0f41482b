"""How long `ccstream hook` makes Claude Code wait, beside a bare interpreter, Redis up and Redis down.

Runs the hook as Claude Code does (a new process each time, the payload on stdin) 200 times per case,
interleaved with `<venv python> -c pass` and `python3 -c pass` so that all share the machine's noise, and
prints p50/p99 of each and the ratio of the hook's p50 to the bare interpreter's. Cases: Redis up (a
redis-server of our own), Redis down (connection refused), Redis hung (SIGSTOPped: the hook waits its
50 ms timeout). Target: hook p50 <= 3 x the bare interpreter, Redis up and down.

`python -m benchmarks hook_latency [--runs N] [--no-write]` (writes its section of docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stream.stack.servers import RedisServer, free_port

REPO = Path(__file__).resolve().parents[1]
PAYLOAD = json.dumps({
    "session_id": "00893aaf-19fa-41d2-8238-13269b9b3ca0",
    "transcript_path": "/home/u/.claude/projects/-w-p/00893aaf-19fa-41d2-8238-13269b9b3ca0.jsonl",
    "cwd": "/w/p", "hook_event_name": "SessionStart", "source": "startup", "model": "claude-sonnet-5",
}).encode()


def hook_argv() -> tuple[list[str], str]:
    exe = Path(sys.executable).parent / "ccstream"
    if exe.exists():
        return [str(exe), "hook"], f"{exe} hook"
    return [sys.executable, "-m", "stream.capture.hook"], "python -m stream.capture.hook"


def run_once(argv: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, input=PAYLOAD, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False)
    return (time.perf_counter() - t) * 1000


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def measure(cmds: dict[str, list[str]], env: dict[str, str], runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for argv in cmds.values():  # warm the page cache
        run_once(argv, env)
    for _ in range(runs):
        for name, argv in cmds.items():
            times[name].append(run_once(argv, env))
    return times


def import_cost(env: dict[str, str]) -> dict[str, float]:
    """Cumulative import time (ms) of the modules on the hook's path, from -X importtime."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", "import stream.cli.main, stream.capture.hook"],
                       env=env, capture_output=True, text=True, check=False)
    out: dict[str, float] = {}
    for line in r.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)", line)
        if m and m.group(3) in ("stream.config", "stream.capture.hook", "stream.cli.main", "stream.capture.spool", "site"):
            out[m.group(3)] = int(m.group(1)) / 1000
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks hook_latency", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    args = p.parse_args(argv)

    hook_cmd, hook_label = hook_argv()
    python3 = shutil.which("python3") or "python3"
    cmds = {"bare": [sys.executable, "-c", "pass"], "python3": [python3, "-c", "pass"], "hook": hook_cmd}
    rows: list[tuple[str, dict[str, list[float]]]] = []
    with tempfile.TemporaryDirectory(prefix="ccstream-bench-") as tmp:
        base = {**os.environ, "CCSTREAM_DATA_DIR": str(Path(tmp) / "data"), "PYTHONPATH": str(REPO)}
        base.pop("CCSTREAM_CONFIG", None)
        with RedisServer(Path(tmp) / "redis") as server:
            assert isinstance(server, RedisServer)
            up = {**base, "CCSTREAM_REDIS_URL": server.url}
            rows.append(("Redis up", measure(cmds, up, args.runs)))
            n_up = int(subprocess.run(["redis-cli", "-p", str(server.port), "XLEN", "ccstream:sessions"],
                                      capture_output=True, text=True, check=False).stdout.strip() or 0)
            down = {**base, "CCSTREAM_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
            rows.append(("Redis down (refused)", measure(cmds, down, args.runs)))
            assert server.proc is not None
            server.proc.send_signal(signal.SIGSTOP)
            try:
                rows.append(("Redis hung (50 ms timeout)", measure(cmds, up, args.runs)))
            finally:
                server.proc.send_signal(signal.SIGCONT)
        from stream.capture import spool

        spooled = spool.pending_count(Path(tmp) / "data" / "spool")
        imports = import_cost(base)

    lines = [
        "## Hook latency (`python -m benchmarks hook_latency`)",
        "",
        f"`{hook_label}` run {args.runs} times per case as Claude Code runs it (a new process, the SessionStart "
        "payload on stdin), interleaved with the bare interpreters. Wall time per process, ms. Ratio = hook "
        "p50 / bare venv interpreter p50 (`python -c pass`, the interpreter the hook runs on). "
        f"`python3` is `{python3}`.",
        "",
        "| case | bare p50 | bare p99 | python3 p50 | python3 p99 | hook p50 | hook p99 | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ok = True
    for name, t in rows:
        ratio = statistics.median(t["hook"]) / statistics.median(t["bare"])
        if "hung" not in name:
            ok = ok and ratio <= 3.0
        lines.append(f"| {name} | {pct(t['bare'], 50):.1f} | {pct(t['bare'], 99):.1f} | {pct(t['python3'], 50):.1f} "
                     f"| {pct(t['python3'], 99):.1f} | **{pct(t['hook'], 50):.1f}** | {pct(t['hook'], 99):.1f} "
                     f"| **{ratio:.2f}x** |")
    lines += [
        "",
        f"Target hook p50 <= 3x bare, Redis up and down: **{'met' if ok else 'NOT met'}**. Checked: Redis held "
        f"{n_up} entries after the Redis-up case ({args.runs + 1} calls) and the spool {spooled} events after "
        f"the two other cases ({2 * (args.runs + 1)} calls).",
        "Import cost on the hook's path (cumulative, `-X importtime`, ms): "
        + ", ".join(f"{k} {v:.1f}" for k, v in sorted(imports.items())) + ". `site` includes the editable "
        "install's path finder; `stream.config` (tomllib, dataclasses, pathlib, socket) is most of the rest.",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        from benchmarks.report import write_section

        write_section("hook-latency", body)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
