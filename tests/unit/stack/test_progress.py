"""stream/stack/progress.py: backlog against checkpoints; rate, time left and the lines."""

from __future__ import annotations

from stream.stack.progress import Backlog, Progress, backlog, caught_up_line, human_bytes, human_seconds


def test_backlog() -> None:
    disk = {"a": 100, "b": 50, "c": 10, "d": 0}
    b = backlog(disk, {"a": 100, "b": 20, "c": 30})
    # a done; b 30 left; c shorter than its checkpoint (truncated: read again, all 10); d empty
    assert b == Backlog(2, 40)
    assert b.text() == "2 files (40 B) behind"
    assert backlog({"a": 5}, {"a": 5}).text() == "caught up"
    assert backlog({"x": 3_500_000}, {}).text() == "1 file (3.5 MB) behind"


def test_human_units() -> None:
    assert human_bytes(999) == "999 B" and human_bytes(1500) == "1.5 KB" and human_bytes(2_000_000_000) == "2.0 GB"
    assert human_seconds(5) == "5s" and human_seconds(65) == "1m05s" and human_seconds(3725) == "1h02m"


def test_rate_and_time_left() -> None:
    p = Progress(total_files=10, total_bytes=1000, window=10)
    assert p.rate is None and p.eta is None
    p.update(0.0, 0, 0)
    p.update(2.0, 2, 200)
    assert p.rate == 100 and p.eta == 8
    assert p.line() == "importing: 2/10 files, 200 B/1.0 KB (20%), 100 B/s, 8s left"
    p.update(4.0, 10, 1000)
    assert p.done and p.eta == 0
    stalled = Progress(1, 100)
    stalled.update(0, 0, 10)
    stalled.update(5, 0, 10)
    assert stalled.rate == 0 and stalled.eta is None and "time left unknown" in stalled.line()


def test_rate_is_over_the_window() -> None:
    p = Progress(1, 10_000, window=10)
    for t in range(0, 31):
        p.update(float(t), 0, t * (10 if t < 20 else 100))  # fast for the last 10 s
    assert p.rate is not None and p.rate > 50


def test_caught_up_line() -> None:
    assert caught_up_line(18918, 54, 63, 12.34) == "caught up: 18,918 rows, 54 sessions, 63 files in 12.3 s"
