"""End-to-end ingest of the fixture corpus on the embedded stack: lines/s and time to all rows queryable.

Starts a real `ccstream up` (Redis, Tansu, bridge, Faust worker, chDB) on a fresh copy of
tests/fixtures/claude-code/projects and polls `SELECT count() FROM claude_raw_traces FINAL` until all
18,918 rows are there. The clock starts when the worker answers (the stack's own start-up is reported apart).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from benchmarks.report import write_section

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "fixtures" / "claude-code" / "projects"
EXPECTED = 18_918


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(REPO))
    from tests.integration.upstack import UpStack

    with tempfile.TemporaryDirectory(prefix="ccstream-bench-") as tmp:
        stack = UpStack(Path(tmp))
        stack.copy_corpus(CORPUS)
        size = sum(p.stat().st_size for p in CORPUS.rglob("*.jsonl"))
        t0 = time.monotonic()
        stack.start()
        t_ready = time.monotonic()
        try:
            stack.wait_for(lambda: stack.scalar("SELECT count() AS n FROM claude_raw_traces") > 0, 600,
                           "the first row")
            t_first = time.monotonic()
            stack.wait_for(lambda: stack.scalar("SELECT count() AS n FROM claude_raw_traces FINAL") >= EXPECTED,
                           600, "all rows")
            t_done = time.monotonic()
            rows = stack.scalar("SELECT count() AS n FROM claude_raw_traces FINAL")
        finally:
            stack.stop()
    startup = t_ready - t0
    ingest = t_done - t_ready
    first = t_first - t_ready
    flow = t_done - t_first
    lines_s = rows / flow
    mb_s = size / 1e6 / flow
    print(f"stack start-up {startup:.1f}s; first row after {first:.1f}s (group join); all {rows} rows "
          f"({size / 1e6:.1f} MB) queryable after {ingest:.1f}s; first to last row {flow:.1f}s: "
          f"{lines_s:,.0f} lines/s, {mb_s:.1f} MB/s")
    write_section("ingest", f"""## End-to-end ingest of the fixture corpus (`python -m benchmarks ingest`)

Embedded stack (`ccstream up`: Redis, Tansu, bridge, one Faust worker with both roles, chDB), fresh data dir,
63 files / {size / 1e6:.1f} MB / {rows:,} rows. Clocks start when the worker's web server answers.

| figure | value |
|---|---|
| stack start-up (Redis, Tansu, worker process answering) | {startup:.1f} s |
| first row queryable (includes the Faust group join, ~5 s) | {first:.1f} s |
| all rows queryable (`claude_raw_traces FINAL`) | {ingest:.1f} s |
| first row to last row | {flow:.1f} s |
| throughput while flowing | {lines_s:,.0f} lines/s ({mb_s:.1f} MB/s) |

This is the baseline the tailer and sink issues improve on.""")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
