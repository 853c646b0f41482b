"""agents/insert_notices.py and stream/contract/insert_notice.py: what the sink of a split `up` inserted
reaches its edge's lanes and pacing counters, as the call in agents/sink.py does in one worker."""

from __future__ import annotations

from pathlib import Path

from agents.insert_notices import apply
from agents.runtime import Runtime, Topics
from agents.web import merge_split_status
from stream.config import Settings
from stream.contract.insert_notice import InsertNotice
from stream.tail.raw_lane import Lane


def _runtime(tmp_path: Path) -> Runtime:
    s = Settings(data_dir=tmp_path, host="h1", broker_is_ephemeral=True, roles=["edge"])
    return Runtime(s, Topics(sessions=None, raw_events=None, dead_letters=None))  # type: ignore[arg-type]


def test_a_notice_round_trips_with_paths_of_any_text() -> None:
    n = InsertNotice("h1", 12, [("/p/é \"q\".jsonl", (2, 4096)), ("/p/b.jsonl", (0, 7))])
    assert InsertNotice.decode(n.encode()) == n


def test_a_notice_clears_the_lane_and_counts_the_rows(tmp_path: Path) -> None:
    """Fed: a history chunk of a.jsonl ending at 500 produced, then the notice of it (3 rows). Expected:
    the file may take the live lane, and the pacing sees 3 rows inserted in one insert."""
    rt = _runtime(tmp_path)
    rt.lanes.produced("a.jsonl", Lane.HISTORY, (0, 500))
    apply(rt, InsertNotice("h1", 3, [("a.jsonl", (0, 500))]))
    assert rt.lanes.choose("a.jsonl", live=True) is Lane.LIVE
    assert (rt.stats.rows_inserted, rt.stats.inserts) == (3, 1)


def test_another_hosts_notice_changes_nothing(tmp_path: Path) -> None:
    rt = _runtime(tmp_path)
    rt.lanes.produced("a.jsonl", Lane.HISTORY, (0, 500))
    apply(rt, InsertNotice("h2", 3, [("a.jsonl", (0, 500))]))
    assert rt.lanes.in_flight("a.jsonl") and rt.stats.rows_inserted == 0


def test_the_split_status_takes_the_tailer_from_the_edge_and_the_inserts_from_the_sink() -> None:
    sink = {"roles": ["sink"], "followed_files": 0, "queued_requests": 0, "rows_inserted": 900,
            "records_produced": 0, "draining": False}
    edge = {"roles": ["edge"], "followed_files": 7, "queued_requests": 3, "rows_inserted": 850,
            "records_produced": 950, "draining": True}
    assert merge_split_status(sink, edge) == {"roles": ["edge", "sink"], "followed_files": 7,
                                              "queued_requests": 3, "rows_inserted": 900,
                                              "records_produced": 950, "draining": True}
    assert merge_split_status(sink, None)["edge"] == "not answering"
