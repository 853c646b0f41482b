"""Backfill of a heavy user's history on the embedded stack (issue 13): MB/s, rows/s, RSS, query times.

Builds the corpus shape of `benchmarks.corpus_shape` (cached under $TMPDIR/ccstream-backfill-<shape>), runs a
real `ccstream up` on an empty data dir, and polls `count() FROM claude_raw_traces FINAL` until every object
is queryable. Samples the RSS of every process of the stack meanwhile (peak per process, and the broker's
after the run), then times `ccstream tokens --by day` through the CLI against the running worker, and
ccusage's `daily` report on the same files when `ccusage` is on PATH (npm ccusage@20.0.24).

    python -m benchmarks backfill [--copies N]   (default: the issue's shape, ~1.07 GB; --copies 3 for a quick run)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.corpus_shape import Shape, build
from benchmarks.report import write_section
from stream.stack.servers import rss_kb

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "fixtures" / "claude-code" / "projects"


def count_objects(root: Path) -> int:
    sys.path.insert(0, str(REPO))
    from tests.integration.corpus import count_objects as count

    return sum(count(p) for p in root.rglob("*.jsonl"))


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of `pid` so far (0 when gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


WORKERS = ("worker", "sink", "edge")  # the Faust workers of `up`: one, or two when split


def python_loop_s() -> float:
    """This machine's speed today: seconds for 10M pure-Python additions (the same code's figures move
    with it from one VM to the next, docs/benchmarks.md)."""
    t = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return time.perf_counter() - t


class RssSampler(threading.Thread):
    """Peak RSS of each named process, and of the stack at once (what it holds together at its worst; the
    per-process peaks come at different moments), sampled every 0.2 s."""

    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.peak: dict[str, int] = dict.fromkeys(pids, 0)
        self.peak_sum = 0  # the processes but `up` itself, sampled together
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(0.2):
            now = {name: rss_kb(pid) for name, pid in self.pids.items()}
            for name, kb in now.items():
                self.peak[name] = max(self.peak[name], kb)
            self.peak_sum = max(self.peak_sum, sum(kb for name, kb in now.items() if name != "up"))


class LiveProbe(threading.Thread):
    """A live session during the backfill: a line appended every `every` s, and the time until each is
    queryable (by its uuid), until stopped. Each latency is split in two: append → the row's `ingested_at`
    (the tailer, Kafka and the sink's queue, up to the sink building its insert), and the rest (the insert
    itself and the probe's own query, which goes through the worker's SQL API)."""

    def __init__(self, stack: Any, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.every = every
        self.latencies: list[float] = []
        self.to_ingested: list[float] = []  # append → ingested_at, wall clock
        self.stop_event = threading.Event()
        self.session_id = str(uuid.uuid4())
        self.path = stack.projects / "-tmp-live-probe" / f"{self.session_id}.jsonl"

    def line(self, i: int) -> tuple[str, bytes]:
        u = str(uuid.uuid4())
        obj = {"type": "user", "uuid": u, "parentUuid": None, "sessionId": self.session_id,
               "timestamp": f"2026-12-01T10:{i // 60 % 60:02d}:{i % 60:02d}.000Z", "cwd": "/tmp/live-probe",
               "version": "2.1.42", "message": {"role": "user", "content": f"live line {i}"}}
        return u, json.dumps(obj).encode() + b"\n"

    def queryable(self, u: str) -> float | None:
        """The row's ingested_at (unix seconds), or None while it is not queryable."""
        try:
            # session_id leads the sorting key: a range read, not a scan of the table being backfilled
            rows = self.stack.query("SELECT toUnixTimestamp64Milli(ingested_at) AS t FROM claude_raw_traces "
                                    "WHERE session_id = {s:String} AND uuid = {u:String}",
                                    {"s": self.session_id, "u": u})
        except Exception:  # the worker busy or restarting: not yet
            return None
        return int(rows[0]["t"]) / 1000 if rows else None

    def run(self) -> None:
        i = 0
        while not self.stop_event.is_set():
            u, data = self.line(i)
            with self.path.open("ab") as fh:
                fh.write(data)
            t0, wall0 = time.monotonic(), time.time()
            while (ingested := self.queryable(u)) is None:
                if self.stop_event.wait(0.05):
                    return
            if i:  # the first line announces the session (hook): not an append to a live file
                self.latencies.append(time.monotonic() - t0)
                self.to_ingested.append(ingested - wall0)
            i += 1
            self.stop_event.wait(self.every)

    def start_session(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        self.stack.hook({"session_id": self.session_id, "transcript_path": str(self.path),
                         "cwd": "/tmp/live-probe", "hook_event_name": "SessionStart", "source": "startup"})
        self.start()


def quantile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def timed(argv: list[str], env: dict[str, str], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True, timeout=300)
        best = min(best, time.perf_counter() - t0)
    return best


NOTES = """
The live probe appends one line a second to a session of its own (a second root beside the corpus, so the
cached corpus stays read only) and times each until `SELECT ... WHERE session_id AND uuid` finds it.

What the profiles showed, 2026-12-03 (py-spy 50 Hz `--threads`, and per-thread CPU from
/proc/<pid>/task; chDB renames the Python threads that call into it, so their CPU shows as `Unknown` or
`RuntimeData`). Runs of the same code move by ±10 s here (a shared 2-core VM):

- the raw_chunks view (`sink_extraction = "clickhouse"`, the default before): 81.7 s, 13.4 MB/s, the
  worker 123 CPU ms/MB and 2.35 GB peak RSS. The insert threads held 74.9 of the worker's 134 CPU s: chDB
  analyses the view's 38 KB SELECT again for every insert, ~160 ms whatever its size (the old analyzer is
  refused on chDB 26.9, "analyzer is mandatory").
- Python extraction (the default now): 71.8-89.7 s over five runs, 12-15 MB/s, the worker 85-107 CPU ms/MB
  and 1.25-1.5 GB peak RSS. CPU: the Python threads 41-46 s, the insert threads 33-35 s (their extraction
  is Python too), ClickHouse's merges 15-17 s. The worker uses ~1.3 of the 2 cores: the GIL, not the
  cores, is the limit now. Of 4,641 py-spy samples over 40 s: chDB's `Connection.query` 1,055 (the insert
  itself, off the GIL), `redact_many` 449, `extract_row` and its helpers ~500, producer zstd 210, the event
  loop's self-pipe writes (threads handing results back) 142, `realpath` of the per-request path check 111.
- a deeper sink queue (`tail_sink_lag_records` 100,000 instead of 20,000, so every sink batch is full):
  88.6 s, peak RSS 1.67 GB, live p99 8.3 s: no faster, more memory.
- the live lane (`raw-live`, its own sink agent and connection) took the live probe from a p50 of 0.6-2.8 s
  and a p99 of ~12 s to a p50 of 0.65-1.1 s and a p99 of 2.2-4.7 s; the target (0.5 s / 1.5 s) is not
  met while the GIL is this busy.
- earlier (199 MB runs): framing through orjson (0.34 -> 0.14 s per 44 MB) and `redact_many` (1.3 -> 0.4 s
  per 44 MB); pausing history after every live chunk starved the backfill.
- 2026-12-04, another machine (load 0.3-0.7 before each run, against 4.1 the day before): the same code
  twice as fast. 809ee18 (watchfiles) 44.7 s, 24.5 MB/s, the worker 51 CPU ms/MB, live p50 0.49 s / p99
  4.19 s; with inotify on the event loop 41.1 and 43.6 s, 25-27 MB/s, 45-48 ms/MB, live p50 0.29-0.39 s /
  p99 3.3 s: within the noise for the backfill. `tokens --by day` 0.12-0.15 s, ccusage 1.12-1.16 s. The
  worker used 1.2 of the 2 cores. Of 2,910 py-spy samples over 30 s (50.2 s with py-spy attached): chDB's
  `Connection.query` 742 (off the GIL), the event loop 631, `redact_many` 316, `extract_row` 297, the
  read steps 247, building Native blocks ~280 (clickhouse-connect's chDB backend writes each to a
  temporary file for `INSERT ... FROM INFILE`: 74), producer zstd 110. Nothing dominates: 40 MB/s needs
  either half the Python per MB or the edge and the sink in two processes (two GILs, more memory).
- 2026-12-04, later, a slower machine (this section's run): where a live line waits during the backfill,
  each step timed (instrumentation not committed): inotify -> its request produced, ~1 ms; produced -> the
  live tailer has it, 10 ms-3.1 s; read, redact, produce 5-30 ms; produced -> the live sink has it,
  15 ms-1 s; the insert 20-60 ms. Both waits are Faust delivering to agents: its consumer awaits each
  message's callback, which yields to the event loop, and raw-events callbacks took 50-500 ms (~100 of them,
  14 s of a 71 s run), with no agent queue full and no wait on the producer buffer (timed in Faust's pure
  Python conductor, NO_CYTHON=1). The loop's turns are long while the GIL is busy: an asyncio.sleep(0.05)
  overslept by 100-350 ms 45 times a minute. Two history read threads instead of eight changed nothing.
  The edge and the sink as two processes on one Tansu (a benchmark of its own then, without the pacing
  and the live lane) took this corpus in 34.9-38.6 s, 28-31 MB/s, against 50-66 s for `up` on the same
  machine: the split is the lever for both the throughput and the live targets.
- 2026-12-04, evening, a machine 3x slower again (10M Python additions in 1.2-1.4 s; ccusage 4.7-5.4 s
  against 1.40 s the day before): `up` now runs the edge and the sink as two workers (`up_split`). Back to
  back on this machine: split 162.7 s against one worker 205.1 s (1.26x); live p50 0.69 s / p99 4.83 s
  against 8.89 s / 16.0 s; the stack's peak RSS, sampled together, 1,765 MB against 1,739 MB (the sink
  1,388 MB, the edge 184 MB). Earlier split runs: 85.8 and 96.7 s (then the machine was 2x, not 3x,
  slower: one worker 110.7 s), live p99 1.51-4.0 s. Scaled by ccusage's time, 162.7 s is ~42 s on the
  day before's machine: ~26 MB/s, not 40. The two cores are busy: the sink used 1.0 core (its event loop
  and chDB's threads), the edge 0.6, Tansu 0.14. py-spy on the sink (4,646 samples over 40 s): chDB's
  `Connection.query` 1,847 (inserts 1,637, the SQL API's queries 455: the benchmark's own count() poll
  at 4 Hz, now 1 Hz, and the progress display's look every 2 s), `extract_row` and its helpers 1,003, Kafka's
  zstd decode 282; on the edge (3,430): `redact_many` 702, zstd encode 345, framing 207, file reads 303.
  `up` itself used 17.2 s of CPU: its progress display walked the roots with Path.rglob and a stat per
  file every 2 s (170-260 ms for 3,216 files); one os.scandir walk takes 45 ms (6.4 s of CPU in the next
  run). The sink's RSS is 260 MB of mapped files (chDB's library) and 240-900 MB of anonymous memory that
  rises and falls with each batch. zstd costs 5.4 ms/MB to encode and 2.0 to decode (7.4 of the 237 CPU
  ms/MB): not the lever; nor ZSTD(3) on the raw column against ZSTD(1) (5.4 against 4.3 ms/MB).
- 2026-12-05, a fast machine again (10M Python additions in 0.20-0.22 s; ccusage 1.03-1.13 s). Split `up`
  as it was: 40.7 and 44.8 s (24-27 MB/s), the stack's peak 1.80-2.01 GB (the sink 1.39-1.61 GB), live p99
  1.89-3.39 s, `tokens --by day` 0.15 s. The stack used only 1.35 of the 2 cores. py-spy `--gil` on the sink:
  the GIL held 43 % of the time (431 of 1,000 samples over 20 s), so the sink was not GIL bound. Timing each
  raw batch showed why: every batch waited out the whole 0.5 s take_events window, then inserted for ~0.8 s.
  The edge keeps only `tail_sink_lag_records` lines in flight (~35 MB here), so the 200-message count was
  never reached. The sink waited for the edge and the edge for the sink: they took turns. A raw batch is now
  bounded by bytes as well (`sink_batch_bytes`, 24 MiB, agents/take_bytes.py) and goes when full. After
  that, the window wait fell from 18.7 to 7.5 s of a run (5.4 s of it the first batch), and the stack used
  1.65 cores. A deeper pacing instead (60,000 lines): 38.3 s, but the sink peaked at 1.79 GB. Four insert
  threads: 48.3 s. 16 MiB batches: 39.6-41.5 s, no less memory.
- the sink's memory at its peak: ~880 MB anonymous plus 260 MB of mapped files (chDB's library), sampled from
  /proc every 0.5 s. chDB's jemalloc keeps freed pages 5 s and runs no purge of its own, so a batch's memory
  was still held when the next came. Started with `dirty_decay_ms:500` (stream/store/client.py,
  CHDB_MALLOC_CONF) the sink peaked at 1.21 GB instead of 1.57 GB, at the same CPU. `dirty_decay_ms:0` gave
  1.12 GB but took a third more CPU (47.9 s). Four merges at once instead of chDB's 16, back to back, two runs
  each: 37.6/37.7 s at 53 ms/MB, the stack 1.67-1.71 GB, against 40.2/43.7 s at 57-63 ms/MB and 1.56-1.62 GB.
  Both together are the default now: 37.2-43.1 s over three runs (25-29 MB/s), live p99 0.54-1.00 s, the
  stack 1.64-1.71 GB.
  40 MB/s needs less CPU per MB: at 53 ms/MB, the two cores top out near 38 MB/s.
- the broker: Tansu keeps every message (~210 MB after this run). Deleting the raw topic under a running
  worker would lose rows: Faust drops messages whose offset is below the partition's read offset
  (faust/transport/consumer.py), and a recreated topic numbers from 0; DeleteRecords panics in Tansu's
  memory engine. So `up` recycles the stack once the broker has grown by `broker_recycle_mb` (256 MB) and
  the workers have committed all they hold (stream/stack/recycle.py; tests/integration/test_recycle.py
  recycles mid-import and lands every row exactly once; `python -m benchmarks broker_memory` passed
  10.9 GB through one `up`, one worker then: 6 recycles, the broker's peak 208-396 MB). This run stays
  under the limit.
"""


def cached_corpus(shape: Shape) -> tuple[Path, int]:
    """The corpus of `shape` under $TMPDIR/ccstream-backfill-<shape>/projects (built once), and its objects."""
    cache = Path(tempfile.gettempdir()) / f"ccstream-backfill-{shape.tag}"
    if not (cache / ".complete").exists():
        shutil.rmtree(cache, ignore_errors=True)
        print(f"building the corpus in {cache} ...", flush=True)
        build(CORPUS, cache / "projects", shape)
        (cache / ".complete").write_text(json.dumps({"objects": count_objects(cache / "projects")}))
    return cache, int(json.loads((cache / ".complete").read_text())["objects"])


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks backfill")
    p.add_argument("--copies", type=int, default=Shape().copies)
    args = p.parse_args(argv)
    shape = replace(Shape(), copies=args.copies)
    if args.copies < Shape().copies:
        shape = replace(shape, long_session_bytes=Shape().long_session_bytes * args.copies // Shape().copies)
    sys.path.insert(0, str(REPO))
    from tests.integration.upstack import UpStack

    cache, expected = cached_corpus(shape)
    loop_s = python_loop_s()
    files = list((cache / "projects").rglob("*.jsonl"))
    size = sum(f.stat().st_size for f in files)
    print(f"corpus: {len(files):,} files, {size / 1e6:,.0f} MB, {expected:,} objects", flush=True)

    with tempfile.TemporaryDirectory(prefix="ccstream-backfill-") as tmp:
        stack = UpStack(Path(tmp))
        # two roots: the cached corpus (read only) and the stack's own, where the live probe writes
        stack.env["CLAUDE_CONFIG_DIR"] = f"{stack.claude_dir},{cache}"
        stack.env["CCSTREAM_SCAN_INTERVAL"] = "30"
        t0 = time.monotonic()
        stack.start(timeout=300)
        t_ready = time.monotonic()
        info = stack.worker_info()
        pids = {name: int(pid) for name, pid in info.get("children", {}).items()}
        pids["up"] = stack.proc.pid if stack.proc else 0
        sampler = RssSampler(pids)
        cpu_before = {name: cpu_s(pid) for name, pid in pids.items()}
        load_before = os.getloadavg()[0]
        sampler.start()
        probe = LiveProbe(stack, every=1.0)
        probe.start_session()
        try:
            # the cheap count first: a FINAL count 4 times a second would take CPU from the backfill it times
            history = f"session_id != '{probe.session_id}'"  # the probe's lines are not the corpus's
            stack.wait_for(lambda: stack.scalar(f"SELECT count() AS n FROM claude_raw_traces WHERE {history}")
                           >= expected and stack.scalar("SELECT count() AS n FROM claude_raw_traces FINAL "
                                                        f"WHERE {history}") >= expected,
                           3600, "every object", every=1.0)  # 1 s: the poll's queries load the sink it times
            t_done = time.monotonic()
            probe.stop_event.set()
            probe.join()
            cpu = {name: cpu_s(pid) - cpu_before[name] for name, pid in pids.items()}
            load_after = os.getloadavg()[0]
            rows = stack.scalar(f"SELECT count() AS n FROM claude_raw_traces FINAL WHERE {history}")
            time.sleep(2)
            sampler.stop_event.set()
            sampler.join()
            broker_after = rss_kb(pids.get("tansu", 0))
            cli = [sys.executable, "-m", "stream.cli", "tokens", "--by", "day", "--json"]
            tokens_s = timed(cli, stack.env)
        finally:
            sampler.stop_event.set()
            probe.stop_event.set()
            stack.stop()
        ccusage_s = None
        if shutil.which("ccusage"):
            env = dict(os.environ, CLAUDE_CONFIG_DIR=str(cache))
            ccusage_s = timed(["ccusage", "daily", "--json", "--offline"], env)
    ingest = t_done - t_ready
    live = probe.latencies
    p50, p99 = quantile(live, 0.5), quantile(live, 0.99)
    i50, i99 = quantile(probe.to_ingested, 0.5), quantile(probe.to_ingested, 0.99)
    mb_s = size / 1e6 / ingest
    peak_total = sampler.peak_sum
    worker_cpu = sum(cpu.get(k, 0.0) for k in WORKERS)
    split = "sink" in pids
    print(f"every object queryable after {ingest:.1f}s: {mb_s:.1f} MB/s, {rows / ingest:,.0f} rows/s; "
          f"peak RSS {json.dumps({k: v // 1024 for k, v in sampler.peak.items()})} MB; broker after "
          f"{broker_after // 1024} MB; tokens --by day {tokens_s:.2f}s"
          + (f"; ccusage daily {ccusage_s:.2f}s" if ccusage_s is not None else "")
          + f"; live append->queryable p50 {p50:.2f}s p99 {p99:.2f}s (n={len(live)}),"
          + f" append->ingested_at p50 {i50:.2f}s p99 {i99:.2f}s"
          + f"; workers' CPU {worker_cpu * 1000 / (size / 1e6):.0f} ms/MB; stack peak {peak_total // 1024} MB"
          + f"; python loop {loop_s:.2f}s"
          + f"; CPU s {json.dumps({k: round(v, 1) for k, v in cpu.items()})}; load {load_before:.1f}/{load_after:.1f}")
    rss_rows = "\n".join(f"| peak RSS, {k} | {v / 1024:,.0f} MB |" for k, v in sorted(sampler.peak.items()))
    write_section("backfill", f"""## Backfill of a heavy user's history (`python -m benchmarks backfill`)

`benchmarks/corpus_shape.py`: {shape.copies} copies of the fixture corpus with fresh ids and shifted days, plus
{shape.long_sessions} long concatenated sessions: {len(files):,} files, {size / 1e6:,.0f} MB, {expected:,} objects.
`ccstream up` on an empty data dir ({"the edge and the sink as two workers" if split else "one worker with both roles"});
the clock starts when the workers answer (start-up took {t_ready - t0:.1f} s). This machine's speed at the
start: 10M pure-Python additions in {loop_s:.2f} s.

| figure | value |
|---|---|
| every object queryable (`claude_raw_traces FINAL`) | {ingest:.1f} s |
| throughput | {mb_s:.1f} MB/s, {rows / ingest:,.0f} rows/s |
{rss_rows}
| a line appended to a live session during the backfill → queryable, p50 / p99 (n={len(live)}) | {p50:.2f} s / {p99:.2f} s |
| of which append → the sink builds its insert (`ingested_at`), p50 / p99 | {i50:.2f} s / {i99:.2f} s |
| CPU during the backfill (user+system) | {", ".join(f"{k} {v:.1f} s" for k, v in sorted(cpu.items()) if v >= 0.1)} |
| the workers' CPU per MB of transcripts (less sensitive to the machine's load than MB/s) | {worker_cpu * 1000 / (size / 1e6):.0f} ms/MB |
| machine load average (1 min) before / after, other work included | {load_before:.1f} / {load_after:.1f} |
| peak RSS of the stack, its processes sampled together (`up` itself aside) | {peak_total / 1024:,.0f} MB |
| broker RSS after the run | {broker_after / 1024:,.0f} MB |
| `ccstream tokens --by day --json`, best of 3, wall | {tokens_s:.2f} s |
| ccusage 20.0.24 `daily --json --offline`, best of 3 | {f"{ccusage_s:.2f} s" if ccusage_s is not None else "not on PATH"} |
{NOTES}""")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
