"""Tail latency: one session file growing at a steady rate while the embedded stack runs.

A real `ccstream up` (Redis, Tansu, bridge, Faust worker with both roles, chDB). One session is announced
with a SessionStart hook (a real `ccstream hook` process), then a line is appended every ~50 ms for ~30 s.
For each line (its uuid): the append time; the time its chunk reached Kafka (an aiokafka consumer on
ccstream.raw-events and the live lane, in this process, decoding the chunks); the time it became queryable (its row's
`ingested_at`, which the sink sets when it builds the insert, confirmed by polling the row count). All clocks
are this machine's wall clock.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.report import write_section

REPO = Path(__file__).resolve().parents[1]
INTERVAL = 0.05
DURATION = 30.0
TARGET_P50, TARGET_P99 = 0.5, 1.5


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def line(session: str, i: int) -> tuple[str, bytes]:
    u = str(uuid.uuid4())
    obj = {"type": "user", "uuid": u, "sessionId": session, "timestamp": "2025-01-01T00:00:00.000Z",
           "message": {"role": "user", "content": f"line {i} " + "x" * 200}}
    return u, json.dumps(obj, separators=(",", ":")).encode() + b"\n"


async def consume(bootstrap: str, topics: list[str], seen: dict[str, float], stop: asyncio.Event) -> None:
    from aiokafka import AIOKafkaConsumer

    from stream.contract.raw_chunk import RawChunk

    # a short fetch wait so the measuring consumer itself adds next to nothing
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"bench-{uuid.uuid4().hex[:8]}", fetch_max_wait_ms=10)
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=50)
            now = time.time()
            for msgs in batches.values():
                for m in msgs:
                    chunk = RawChunk.decode(m.value)
                    for rec in chunk.records():
                        u = json.loads(rec.raw).get("uuid")
                        if isinstance(u, str):
                            seen.setdefault(u, now)
    finally:
        await consumer.stop()


def writer(path: Path, session: str, appended: dict[str, float], order: list[str]) -> None:
    t_next = time.monotonic()
    end = t_next + DURATION
    i = 1
    with path.open("ab", buffering=0) as f:
        while time.monotonic() < end:
            u, data = line(session, i)
            f.write(data)
            appended[u] = time.time()
            order.append(u)
            i += 1
            t_next += INTERVAL
            time.sleep(max(0.0, t_next - time.monotonic()))


async def run(stack: Any, session: str, path: Path) -> tuple[dict[str, float], dict[str, float], list[str]]:
    info = stack.worker_info()
    # a live session's chunks travel on the live lane (stream/tail/raw_lane.py), history on raw-events
    topics = [stack.settings.topic_raw_events, stack.settings.topic_raw_live]
    seen: dict[str, float] = {}
    stop = asyncio.Event()
    task = asyncio.create_task(consume(info["kafka_bootstrap"], topics, seen, stop))
    await asyncio.sleep(3.0)  # the consumer joins and reads what is there before the clock starts
    appended: dict[str, float] = {}
    order: list[str] = []
    await asyncio.to_thread(writer, path, session, appended, order)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(u in seen for u in order):
        await asyncio.sleep(0.1)
    stop.set()
    await task
    return appended, seen, order


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(REPO))
    from tests.integration.upstack import UpStack

    with tempfile.TemporaryDirectory(prefix="ccstream-bench-") as tmp:
        stack = UpStack(Path(tmp), {"CCSTREAM_SCAN_INTERVAL": "30"})
        session = str(uuid.uuid4())
        proj = stack.projects / "-home-bench-tail"
        proj.mkdir(parents=True)
        path = proj / f"{session}.jsonl"
        path.write_bytes(line(session, 0)[1])
        stack.start()
        try:
            done = stack.hook({"hook_event_name": "SessionStart", "session_id": session, "source": "startup",
                               "transcript_path": str(path), "cwd": str(proj)})
            assert done.returncode == 0, done.stderr
            stack.wait_for(lambda: stack.scalar("SELECT count() AS n FROM claude_raw_traces") >= 1, 120,
                           "the first line")
            appended, seen, order = asyncio.run(run(stack, session, path))
            n = len(order) + 1
            stack.wait_for(lambda: stack.scalar(
                f"SELECT count() AS n FROM claude_raw_traces FINAL WHERE session_id = '{session}'") >= n, 60,
                "every line queryable")
            rows = stack.query("SELECT uuid, toUnixTimestamp64Milli(ingested_at) AS t FROM claude_raw_traces "
                               "FINAL WHERE session_id = {s:String}", {"s": session})
        finally:
            stack.stop()
    ingested = {r["uuid"]: int(r["t"]) / 1000 for r in rows}
    missing_kafka = [u for u in order if u not in seen]
    to_kafka = [seen[u] - appended[u] for u in order if u in seen]
    to_query = [ingested[u] - appended[u] for u in order if u in ingested]
    k50, k99 = pct(to_kafka, 0.5), pct(to_kafka, 0.99)
    q50, q99 = pct(to_query, 0.5), pct(to_query, 0.99)
    ok = q50 < TARGET_P50 and q99 < TARGET_P99
    print(f"{len(order)} lines appended every {INTERVAL * 1000:.0f} ms for {DURATION:.0f}s; append→Kafka p50 "
          f"{k50 * 1000:.0f} ms p99 {k99 * 1000:.0f} ms (max {max(to_kafka) * 1000:.0f}); append→queryable p50 "
          f"{q50 * 1000:.0f} ms p99 {q99 * 1000:.0f} ms (max {max(to_query) * 1000:.0f}); "
          f"targets {'met' if ok else 'MISSED'}; not seen in Kafka: {len(missing_kafka)}")
    write_section("tail-latency", f"""## Tail latency (`python -m benchmarks tail_latency`)

Embedded stack (`ccstream up`, default settings: inotify on, 1 s poll, sink batches of up to 200 chunks or
0.5 s). One session (announced by a real SessionStart hook) whose file gets a ~300-byte line every
{INTERVAL * 1000:.0f} ms for {DURATION:.0f} s ({len(order)} lines). Append time: wall clock right after the
write. Kafka: an aiokafka consumer (fetch wait 10 ms) in the benchmark process on `ccstream.raw-events`
and the live lane `ccstream.<app>.raw-live` (where a live session's chunks go), time the chunk holding the
line's uuid was fetched. The tailer is woken by inotify read on the event loop (stream/tail/inotify.py):
with watchfiles (a 100 ms debounce and a 50 ms step) this was append → queryable p50 474 ms / p99 929 ms.
Queryable: the row's `ingested_at` (set by the sink when
it builds the insert; every row then confirmed by a count).

| latency | p50 | p99 | max | target |
|---|---|---|---|---|
| append → in Kafka | {k50 * 1000:.0f} ms | {k99 * 1000:.0f} ms | {max(to_kafka) * 1000:.0f} ms | |
| append → queryable | {q50 * 1000:.0f} ms | {q99 * 1000:.0f} ms | {max(to_query) * 1000:.0f} ms | p50 < 500 ms, p99 < 1500 ms: {'met' if ok else 'MISSED'} |

Mean append → queryable {statistics.mean(to_query) * 1000:.0f} ms over {len(to_query)} rows.

Why the worker caps its consumers' fetch wait at 50 ms on the local broker (agents/app.py): Tansu answers a
fetch only when the fetch's wait runs out, not when data arrives (probe: a message sent 0.3 s into a
1.5 s-wait fetch arrived 1.3 s after it was sent), and Faust hardcodes `fetch_max_wait_ms=1500`. Each Faust hop
(tail-requests, raw-events) then cost up to 1.5 s: before the cap this benchmark gave append → Kafka p50
408 ms / p99 1758 ms and append → queryable p50 1360 ms / p99 1926 ms (targets missed). The p99/max of
append → Kafka is above that of queryable: the measuring consumer's own delay on a few early lines (the
pipeline's rows were queryable sooner than this consumer saw them), not the tailer's.
""")
    return 0 if ok and not missing_kafka else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
