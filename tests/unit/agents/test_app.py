"""agents.app: building the app opens nothing; the services it owns start before the agents and stop after."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.app import create_app, reset_local_state
from agents.fetch_wait import FetchWaitCap
from agents.runtime import NoStore, Runtime, Topics
from agents.store import StoreService
from stream.config import Settings


def _settings(tmp_path: Path, **kw: object) -> Settings:
    base: dict[str, object] = dict(data_dir=tmp_path / "data", claude_roots=[tmp_path / "projects"],
                                   kafka_bootstrap="127.0.0.1:1", broker_is_ephemeral=True,
                                   otlp_port=0)  # the OTLP receiver: tests/unit/otel/test_wiring.py
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


def test_building_the_app_opens_no_store_and_touches_no_file(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    (s.faust_dir / "old").mkdir(parents=True)
    create_app(s)
    assert not (s.data_dir / "clickhouse").exists(), "the chDB store is opened when the worker starts, not here"
    assert (s.faust_dir / "old").exists(), "local state is reset by the worker command, not by building the app"


def test_owned_services_come_first_so_they_start_before_the_agents(tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path))
    first = list(app._children)  # before start: only what create_app added; Faust appends its own at start
    assert [type(c) for c in first] == [FetchWaitCap, StoreService]


def test_a_team_broker_gets_no_fetch_wait_cap_and_an_edge_alone_no_store(tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path, broker_is_ephemeral=False, roles=["edge"]))
    assert list(app._children) == []


def test_the_store_loads_checkpoints_only_for_an_edge(tmp_path: Path) -> None:
    sink_only = create_app(_settings(tmp_path, roles=["sink"]))
    both = create_app(_settings(tmp_path, roles=["edge", "sink"], app_id="both"))
    stores = [c for a in (sink_only, both) for c in a._children if isinstance(c, StoreService)]
    assert [s.checkpoints_for for s in stores] == [None, Settings().host]
    assert [s.connections for s in stores] == [2, 2]


def test_reset_local_state_clears_only_for_a_broker_that_forgets(tmp_path: Path) -> None:
    kept = _settings(tmp_path, broker_is_ephemeral=False)
    (kept.faust_dir / "table").mkdir(parents=True)
    reset_local_state(kept)
    assert (kept.faust_dir / "table").exists()
    reset_local_state(_settings(tmp_path))
    assert kept.faust_dir.exists() and not (kept.faust_dir / "table").exists()


def test_runtime_without_a_store_says_so() -> None:
    app_topics = Topics(None, None, None)  # type: ignore[arg-type]
    rt = Runtime(Settings(), app_topics)
    assert rt.ch is None
    with pytest.raises(NoStore):
        rt.writer  # noqa: B018


def test_a_split_stack_declares_the_live_lane_on_both_sides_and_the_notices(tmp_path: Path) -> None:
    """Fed: the embedded stack's settings, one worker, then a split `up`'s sink and edge. Expected: raw-live
    on all three, with one name; raw-inserted only across two processes; the split edge reads its
    checkpoints through the sink (no store of its own)."""
    from agents.checkpoints import SinkCheckpoints

    one = _settings(tmp_path, up_split=False)
    sink = _settings(tmp_path, roles=["sink"])
    edge = _settings(tmp_path, roles=["edge"], app_id=sink.edge_app_id)
    assert one.live_lane and sink.live_lane and edge.live_lane
    assert (one.sink_apart, sink.sink_apart, edge.sink_apart) == (False, True, True)
    assert edge.topic_raw_live == sink.topic_raw_live == "ccstream.raw-live"
    edge_app = create_app(edge)
    assert [type(c) for c in edge_app._children] == [FetchWaitCap, SinkCheckpoints]
    names = {t for agent in edge_app.agents.values() for t in agent.channel.topics}
    assert sink.topic_raw_inserted in names
    assert not _settings(tmp_path, broker_is_ephemeral=False, roles=["sink"]).live_lane  # a team sink
