"""The backfill with the edge and the sink in two processes (issue 13): what a second GIL would give `up`.

`ccstream up` runs one worker with both roles, and on 2 cores it is bound by the GIL (docs/benchmarks.md,
backfill). This runs the same corpus through the team layout on one machine: a Tansu broker, `ccstream sink`
(owning chDB) and `ccstream edge --no-bridge` (the tailer, reading the corpus), each its own process, and
counts rows through the sink's SQL API until every object is in. Not what `up` does today: the edge has no
sink beside it to pace history by (`tail_sink_lag_records`), no live lane, and no ClickHouse of its own.

    python -m benchmarks split_roles
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.backfill import REPO, cached_corpus, cpu_s
from benchmarks.corpus_shape import Shape
from benchmarks.report import write_section
from stream.analytics.sqlclient import post_json
from stream.stack.servers import TansuBroker, free_port, rss_kb


def _rows(port: int, token_file: Path) -> int | None:
    """Rows in claude_raw_traces through the sink's SQL API; None while it does not answer."""
    body = json.dumps({"sql": "SELECT count() AS n FROM claude_raw_traces", "format": "JSONEachRow"}).encode()
    try:
        status, answer = post_json(f"http://127.0.0.1:{port}", "/ccstream/sql/", body,
                                   {"Authorization": f"Bearer {token_file.read_text().strip()}"}, timeout=30)
        return int(json.loads(answer)["n"]) if status == 200 else None
    except (OSError, ValueError, KeyError):
        return None


def main(argv: list[str]) -> int:
    cache, expected = cached_corpus(Shape())
    size = sum(f.stat().st_size for f in (cache / "projects").rglob("*.jsonl"))
    with tempfile.TemporaryDirectory(prefix="ccstream-split-") as tmp_name:
        tmp = Path(tmp_name)
        broker = TansuBroker(tmp / "tansu")
        broker.start()
        broker.wait_ready()
        base = dict(os.environ, CCSTREAM_KAFKA_BOOTSTRAP=broker.bootstrap, CCSTREAM_BROKER_IS_EPHEMERAL="1",
                    CCSTREAM_OTLP_PORT="0", CCSTREAM_HOST="bench-host", CCSTREAM_SCAN_INTERVAL="30",
                    PYTHONUNBUFFERED="1")
        base.pop("CCSTREAM_REDIS_URL", None)
        sink_port, edge_port = free_port(), free_port()
        (tmp / "no-transcripts").mkdir()
        sink_env = dict(base, CCSTREAM_DATA_DIR=str(tmp / "sink"), CCSTREAM_WEB_PORT=str(sink_port),
                        CLAUDE_CONFIG_DIR=str(tmp / "no-transcripts"))
        edge_env = dict(base, CCSTREAM_DATA_DIR=str(tmp / "edge"), CCSTREAM_WEB_PORT=str(edge_port),
                        CCSTREAM_APP_ID="ccstream-edge-bench", CLAUDE_CONFIG_DIR=str(cache))
        procs: list[subprocess.Popen[bytes]] = []
        try:
            with (tmp / "sink.log").open("wb") as log:
                procs.append(subprocess.Popen([sys.executable, "-m", "stream.cli", "sink"], env=sink_env, cwd=REPO,
                                              stdout=log, stderr=subprocess.STDOUT))
            token = tmp / "sink" / "run" / "api.token"
            deadline = time.monotonic() + 300
            while _rows(sink_port, token) is None:
                if time.monotonic() > deadline or procs[0].poll() is not None:
                    print((tmp / "sink.log").read_text()[-3000:], file=sys.stderr)
                    return 1
                time.sleep(0.5)
            t0 = time.monotonic()
            with (tmp / "edge.log").open("wb") as log:
                procs.append(subprocess.Popen([sys.executable, "-m", "stream.cli", "edge", "--no-bridge"],
                                              env=edge_env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT))
            pids = {"sink": procs[0].pid, "edge": procs[1].pid, "tansu": broker.pid or 0}
            peak = dict.fromkeys(pids, 0)
            cpu0 = {k: cpu_s(p) for k, p in pids.items()}
            rows = 0
            while rows < expected and time.monotonic() - t0 < 1800:
                time.sleep(0.5)
                for k, p in pids.items():
                    peak[k] = max(peak[k], rss_kb(p))
                rows = _rows(sink_port, token) or rows
            seconds = time.monotonic() - t0
            cpu = {k: cpu_s(p) - cpu0[k] for k, p in pids.items()}
        finally:
            for p in reversed(procs):
                p.terminate()
            for p in procs:
                p.wait(60)
            broker.stop()
    done = rows >= expected
    mb_s = size / 1e6 / seconds
    print(f"{rows:,}/{expected:,} rows in {seconds:.1f} s: {mb_s:.1f} MB/s; peak RSS MB "
          f"{json.dumps({k: v // 1024 for k, v in peak.items()})}; CPU s {json.dumps({k: round(v, 1) for k, v in cpu.items()})}")
    write_section("split_roles", f"""## The backfill with the edge and the sink in two processes (`python -m benchmarks split_roles`)

The backfill's corpus ({size / 1e6:,.0f} MB, {expected:,} objects) through one Tansu, `ccstream sink` and
`ccstream edge --no-bridge` as separate processes (two GILs), the clock from the edge's start (its start-up
included) until the sink's `count()` has every object (non-FINAL). The edge runs without the sink's pacing
and without the live lane, so this is what a split `up` could reach, not what it does.

| figure | value |
|---|---|
| every object in ClickHouse | {seconds:.1f} s{"" if done else " (NOT all: timed out)"} |
| throughput | {mb_s:.1f} MB/s |
| peak RSS, sink / edge / tansu | {peak["sink"] / 1024:,.0f} / {peak["edge"] / 1024:,.0f} / {peak["tansu"] / 1024:,.0f} MB |
| CPU, sink / edge / tansu | {cpu["sink"]:.1f} / {cpu["edge"]:.1f} / {cpu["tansu"]:.1f} s |
""")
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
