"""The edge redactor's speed over the real corpus (it runs on every line before it leaves the machine).

    python -m benchmarks redaction_speed

Best of 3 passes over every JSON object of tests/fixtures/claude-code/projects, line by line (`redact`) and a
read step at a time (`redact_many`, one prefilter pass over a step's records, as the tailer calls it).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from benchmarks.report import write_section

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "fixtures" / "claude-code" / "projects"
STEP = 200  # records per read step, about what a 1 MiB step of this corpus holds


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(REPO))
    from stream.tail.redaction import Redactor
    from tests.unit.tail.test_redaction import corpus_objects

    raws = [raw for _, _, raw in corpus_objects(CORPUS)]
    size = sum(map(len, raws))
    redactor = Redactor()

    def best(fn: object) -> float:
        out = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            fn()  # type: ignore[operator]
            out = min(out, time.perf_counter() - t0)
        return out

    one = best(lambda: [redactor.redact(r) for r in raws])
    many = best(lambda: [redactor.redact_many(raws[i:i + STEP]) for i in range(0, len(raws), STEP)])
    print(f"redaction: {size / 1e6:.1f} MB; redact {size / one / 1e6:.0f} MB/s, redact_many {size / many / 1e6:.0f} MB/s")
    write_section("redaction-speed", f"""## Edge redaction speed (`python -m benchmarks redaction_speed`)

Every JSON object of the fixture corpus ({len(raws):,} objects, {size / 1e6:.1f} MB), best of 3, one core.

| call | time | rate |
|---|---:|---:|
| `redact`, line by line | {one:.2f} s | {size / one / 1e6:.0f} MB/s |
| `redact_many`, {STEP} records a step (the tailer's call) | {many:.2f} s | {size / many / 1e6:.0f} MB/s |""")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
