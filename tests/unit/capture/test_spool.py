"""The spool: concurrent appends stay whole lines; a drain sends each event once, resumes after a failure,
and leaves newer appends for the next drain."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from stream.capture import spool


def ev(n: int) -> str:
    return json.dumps({"event_id": f"id{n:05d}", "n": n}, separators=(",", ":"))


def _appender(spool_dir: str, start: int, count: int) -> None:
    for n in range(start, start + count):
        spool.append_event(Path(spool_dir), ev(n))


def test_concurrent_appends_from_four_processes_stay_whole_lines(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_appender, args=(str(tmp_path), k * 250, 250)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    lines = (tmp_path / spool.EVENTS).read_text().splitlines()
    assert sorted(json.loads(line)["n"] for line in lines) == list(range(1000))
    assert spool.pending_count(tmp_path) == 1000


def test_drain_sends_everything_once_in_batches(tmp_path: Path) -> None:
    for n in range(450):
        spool.append_event(tmp_path, ev(n))
    batches: list[list[str]] = []
    assert spool.drain(tmp_path, batches.append) == 450
    assert [len(b) for b in batches] == [200, 200, 50]
    assert [json.loads(x)["n"] for b in batches for x in b] == list(range(450))
    assert spool.pending_count(tmp_path) == 0
    assert not spool.has_pending(tmp_path)
    assert spool.drain(tmp_path, batches.append) == 0
    assert len(batches) == 3


def test_failed_send_keeps_the_rest_and_the_next_drain_resumes(tmp_path: Path) -> None:
    for n in range(500):
        spool.append_event(tmp_path, ev(n))
    sent: list[str] = []

    def flaky(batch: list[str]) -> None:
        if len(sent) >= 200:
            raise ConnectionError("redis went away")
        sent.extend(batch)

    with pytest.raises(ConnectionError):
        spool.drain(tmp_path, flaky)
    assert len(sent) == 200
    assert spool.pending_count(tmp_path) == 300
    spool.append_event(tmp_path, ev(500))  # arrives while the draining file is still there
    assert spool.pending_count(tmp_path) == 301
    rest: list[str] = []
    assert spool.drain(tmp_path, rest.extend) == 301
    assert [json.loads(x)["n"] for x in sent + rest] == list(range(501))
    assert spool.pending_count(tmp_path) == 0


def test_limit_bounds_one_drain(tmp_path: Path) -> None:
    for n in range(30):
        spool.append_event(tmp_path, ev(n))
    got: list[str] = []
    assert spool.drain(tmp_path, got.extend, limit=10) == 10
    assert spool.pending_count(tmp_path) == 20
    assert spool.drain(tmp_path, got.extend) == 20
    assert [json.loads(x)["n"] for x in got] == list(range(30))


def test_a_second_drainer_skips_instead_of_waiting(tmp_path: Path) -> None:
    spool.append_event(tmp_path, ev(1))
    got: list[str] = []
    with spool._flock(tmp_path / spool.DRAIN_LOCK) as held:
        assert held
        assert spool.drain(tmp_path, got.extend) == 0
    assert got == []
    assert spool.drain(tmp_path, got.extend) == 1


def test_bad_and_torn_lines_go_to_rejects(tmp_path: Path) -> None:
    spool.append_event(tmp_path, ev(1))
    with (tmp_path / spool.EVENTS).open("ab") as fh:
        fh.write(b"not json\n" + b'{"no_id":1}\n')
    spool.append_event(tmp_path, ev(2))
    with (tmp_path / spool.EVENTS).open("ab") as fh:
        fh.write(b'{"event_id":"torn"')  # a writer died mid-line
    got: list[str] = []
    assert spool.drain(tmp_path, got.extend) == 2
    assert [json.loads(x)["n"] for x in got] == [1, 2]
    rejects = [json.loads(x) for x in (tmp_path / spool.REJECTS).read_text().splitlines()]
    assert [(r["reason"], r["raw"]) for r in rejects] == [
        ("spooled line is not JSON", "not json"),
        ("spooled line is not an event with an event_id", '{"no_id":1}'),
        ("torn line in spool", '{"event_id":"torn"'),
    ]
    assert spool.reject_count(tmp_path) == 3
    assert not spool.has_pending(tmp_path)


def test_reject_records_reason_and_payload(tmp_path: Path) -> None:
    spool.append_reject(tmp_path, "payload is not JSON", b"\xffgarbage", received_at=12.5)
    [entry] = [json.loads(x) for x in (tmp_path / spool.REJECTS).read_text().splitlines()]
    assert entry == {"received_at": 12.5, "reason": "payload is not JSON", "raw": "\ufffdgarbage"}
